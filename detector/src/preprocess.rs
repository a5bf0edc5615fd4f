//! Letterboxing: scale a frame to fit the model input keeping its aspect ratio, pad the
//! bottom/right with black, and remember how to map boxes back to source pixels.
//!
//! On the CPU, frames are resized in Rust straight into the batch ([`crate::resample`]); on a
//! GPU, in libtorch on the device, so that the frame travels once as bytes and never returns.

use tch::{Device, Kind, Tensor};

use crate::{BoundingBox, Frame};

/// How one source frame sits in the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Model-input pixels per source pixel.
    pub scale: f32,
    pub src_width: u32,
    pub src_height: u32,
    /// Size of the scaled frame inside the input (the rest is padding).
    pub width: u32,
    pub height: u32,
}

impl Letterbox {
    pub fn new(src_width: u32, src_height: u32, input_width: u32, input_height: u32) -> Self {
        let (scale, width, height) =
            argus_common::frame::fit(src_width, src_height, input_width, input_height);
        Letterbox {
            scale,
            src_width,
            src_height,
            width,
            height,
        }
    }

    /// Maps a box in model-input pixels to source pixels, clamped to the source frame.
    pub fn to_source(&self, b: BoundingBox) -> BoundingBox {
        let (w, h) = (self.src_width as f32, self.src_height as f32);
        let x = |v: f32| (v / self.scale).clamp(0.0, w);
        let y = |v: f32| (v / self.scale).clamp(0.0, h);
        BoundingBox {
            x1: x(b.x1),
            y1: y(b.y1),
            x2: x(b.x2),
            y2: y(b.y2),
        }
    }
}

/// Builds the `[N, H, W, 3]` float batch (RGB, 0..255) for `frames` on `device`.
///
/// On the CPU the frames are resized by [`crate::resample`] straight into the batch; on a GPU
/// by libtorch on the device ([`letterbox_batch_torch`]), so that a frame travels once, as bytes.
pub fn letterbox_batch(
    frames: &[&Frame],
    input_width: u32,
    input_height: u32,
    device: Device,
) -> Result<(Tensor, Vec<Letterbox>), tch::TchError> {
    if device != Device::Cpu {
        return letterbox_batch_torch(frames, input_width, input_height, device);
    }
    let (iw, ih) = (input_width as usize, input_height as usize);
    let batch = Tensor::f_zeros(
        [frames.len() as i64, ih as i64, iw as i64, 3],
        (Kind::Float, Device::Cpu),
    )?;
    let slot = ih * iw * 3;
    // SAFETY: `batch` is a fresh contiguous float tensor of exactly frames × slot elements on
    // the CPU, and nothing else refers to it while this slice lives.
    let data = unsafe {
        std::slice::from_raw_parts_mut(batch.data_ptr() as *mut f32, frames.len() * slot)
    };
    let mut boxes = Vec::with_capacity(frames.len());
    for (frame, slot) in frames.iter().zip(data.chunks_exact_mut(slot)) {
        let lb = Letterbox::new(frame.source.0, frame.source.1, input_width, input_height);
        check_size(frame)?;
        crate::resample::resize_rgb_into(
            &frame.rgb,
            (frame.width as usize, frame.height as usize),
            slot,
            iw * 3,
            (lb.width as usize, lb.height as usize),
        );
        boxes.push(lb);
    }
    Ok((batch, boxes))
}

fn check_size(frame: &Frame) -> Result<(), tch::TchError> {
    let (h, w) = (frame.height as usize, frame.width as usize);
    if frame.rgb.len() != h * w * 3 {
        return Err(tch::TchError::Shape(format!(
            "frame of {w}x{h} holds {} bytes, not {}",
            frame.rgb.len(),
            h * w * 3
        )));
    }
    Ok(())
}

/// [`letterbox_batch`] in libtorch ops on `device`: the frame's bytes go to the device, become
/// planar floats there and are resized by `_upsample_bilinear2d_aa`. The GPU path, and on the
/// CPU the reference the resampler is held to (it was the CPU path before issue 12).
pub fn letterbox_batch_torch(
    frames: &[&Frame],
    input_width: u32,
    input_height: u32,
    device: Device,
) -> Result<(Tensor, Vec<Letterbox>), tch::TchError> {
    let (iw, ih) = (input_width as i64, input_height as i64);
    let batch = Tensor::f_zeros([frames.len() as i64, ih, iw, 3], (Kind::Float, device))?;
    let mut boxes = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        // A frame the decoder already scaled to fit (see `RgbConverter::fitting`) is copied
        // as it is; boxes still map to its source size.
        let lb = Letterbox::new(frame.source.0, frame.source.1, input_width, input_height);
        let (h, w) = (frame.height as i64, frame.width as i64);
        check_size(frame)?;
        // SAFETY: the length is checked above; the view borrows `frame.rgb` (h*w*3 bytes,
        // packed) only until `to_kind` below has made an owned float copy; `frame` outlives
        // this statement. Wrapping instead of copying saves a full-size copy.
        let bytes = unsafe {
            Tensor::f_from_blob(
                frame.rgb.as_ptr(),
                &[1, h, w, 3],
                &[h * w * 3, w * 3, 3, 1],
                Kind::Uint8,
                Device::Cpu,
            )?
        };
        // Contiguous NCHW float: the antialiased resize is faster on it than on channels-last.
        // Made contiguous while still bytes: a quarter of the memory of a float copy.
        let nchw = bytes
            .f_to_device(device)?
            .f_permute([0, 3, 1, 2])?
            .f_contiguous()?
            .f_to_kind(Kind::Float)?;
        let size = [lb.height as i64, lb.width as i64];
        // Antialiased bilinear: plain bilinear aliases badly when a 4K frame shrinks to 512.
        let resized = if size == [h, w] {
            nchw
        } else {
            nchw.f_internal_upsample_bilinear2d_aa(size, false, None, None)?
        };
        batch
            .f_narrow(0, i as i64, 1)?
            .f_narrow(1, 0, size[0])?
            .f_narrow(2, 0, size[1])?
            .f_copy_(&resized.f_permute([0, 2, 3, 1])?)?;
        boxes.push(lb);
    }
    Ok((batch, boxes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_aspect_and_maps_boxes_back() {
        let lb = Letterbox::new(1000, 500, 512, 512);
        assert_eq!((lb.width, lb.height), (512, 256));
        let b = lb.to_source(BoundingBox::from([51.2, 25.6, 600.0, 300.0]));
        assert!((b.x1 - 100.0).abs() < 1e-3 && (b.y1 - 50.0).abs() < 1e-3);
        assert_eq!(
            (b.x2, b.y2),
            (1000.0, 500.0),
            "overshoot is clamped to the frame"
        );
    }

    #[test]
    fn batch_places_each_frame_top_left_and_pads_with_zero() {
        let white = Frame::new(4, 2, vec![255; 4 * 2 * 3]).unwrap();
        let tall = Frame::new(1, 2, vec![100; 2 * 3]).unwrap();
        let (t, lbs) = letterbox_batch(&[&white, &tall], 8, 8, Device::Cpu).unwrap();
        assert_eq!(t.size(), vec![2, 8, 8, 3]);
        assert_eq!((lbs[0].width, lbs[0].height), (8, 4));
        assert_eq!((lbs[1].width, lbs[1].height), (4, 8));
        let at = |n: i64, y: i64, x: i64| t.double_value(&[n, y, x, 0]);
        assert_eq!(at(0, 0, 0), 255.0);
        assert_eq!(at(0, 3, 7), 255.0);
        assert_eq!(at(0, 4, 0), 0.0, "padding below the wide frame");
        assert!((at(1, 7, 3) - 100.0).abs() < 1e-3);
        assert_eq!(at(1, 0, 4), 0.0, "padding right of the tall frame");
    }

    #[test]
    fn the_cpu_path_matches_the_torch_path() {
        let pattern = |w: u32, h: u32| {
            let rgb = (0..w * h * 3).map(|v| (v * 7 % 251) as u8).collect();
            Frame::new(w, h, rgb).unwrap()
        };
        let (wide, tall, small) = (pattern(97, 41), pattern(30, 77), pattern(9, 5));
        let frames = [&wide, &tall, &small];
        let (ours, lb_ours) = letterbox_batch(&frames, 64, 48, Device::Cpu).unwrap();
        let (torch, lb_torch) = letterbox_batch_torch(&frames, 64, 48, Device::Cpu).unwrap();
        assert_eq!(lb_ours, lb_torch);
        assert_eq!(ours.size(), torch.size());
        let diff = (ours - torch).abs().max().double_value(&[]);
        assert!(diff < 1e-3, "max |diff| {diff}");
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_an_error_not_a_panic() {
        let mut bad = Frame::new(4, 4, vec![0; 48]).unwrap();
        bad.rgb.truncate(40);
        for device_path in [letterbox_batch, letterbox_batch_torch] {
            let err = device_path(&[&bad], 8, 8, Device::Cpu).unwrap_err();
            assert!(err.to_string().contains("holds 40 bytes"), "{err}");
        }
    }

    #[test]
    fn a_frame_scaled_on_decoding_is_copied_as_is_and_boxes_map_to_its_source() {
        // A 1000x500 picture the decoder already scaled to 8x4 for an 8x8 input.
        let mut small = Frame::new(8, 4, (0..8 * 4 * 3).map(|v| v as u8).collect()).unwrap();
        small.source = (1000, 500);
        let (t, lbs) = letterbox_batch(&[&small], 8, 8, Device::Cpu).unwrap();
        assert_eq!((lbs[0].width, lbs[0].height), (8, 4));
        assert_eq!((lbs[0].src_width, lbs[0].src_height), (1000, 500));
        let at = |y: i64, x: i64, c: i64| t.double_value(&[0, y, x, c]);
        assert_eq!(at(3, 7, 2), (3 * 8 * 3 + 7 * 3 + 2) as f64, "no resampling");
        assert_eq!(at(4, 0, 0), 0.0, "padding below");
        let b = lbs[0].to_source(BoundingBox::from([4.0, 2.0, 8.0, 4.0]));
        let got = [b.x1, b.y1, b.x2, b.y2];
        let want = [500.0, 250.0, 1000.0, 500.0];
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.01),
            "{got:?}"
        );
    }
}
