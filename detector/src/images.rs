//! Photos as detector input: decoding (by content, not by file name) and streaming a collection
//! of them through the model in batches, so that ten thousand photos never sit in memory at once.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::{Detection, Detector, DetectorError, Frame};

/// Largest photo a collection's task decodes, in pixels (a 50 MP camera's): a file claiming more
/// is refused before a byte of it is decoded.
pub const MAX_PHOTO_PIXELS: u64 = 50_000_000;
/// Longest side a collection's photo keeps once decoded: the model sees far less, and a
/// face's crop for its embedding stays sharp (boxes are still reported in the photo's own
/// pixels: see `Frame::source`).
pub const PHOTO_SIDE: u32 = 2048;

/// [`load_image`] for photos from users: refused above [`MAX_PHOTO_PIXELS`] (and the decoder's
/// memory capped), scaled down to [`PHOTO_SIDE`] once decoded.
pub fn load_photo(path: &Path) -> Result<Frame, DetectorError> {
    let frame = decode(path, Some(MAX_PHOTO_PIXELS))?;
    let longest = frame.width.max(frame.height);
    if longest <= PHOTO_SIDE {
        return Ok(frame);
    }
    let scale = PHOTO_SIDE as f32 / longest as f32;
    let (w, h) = (
        ((frame.width as f32 * scale).round() as u32).max(1),
        ((frame.height as f32 * scale).round() as u32).max(1),
    );
    let source = (frame.width, frame.height);
    let image = image::RgbImage::from_raw(frame.width, frame.height, frame.rgb)
        .expect("a frame's buffer fits its size");
    let small = image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle);
    let mut frame = Frame::new(w, h, small.into_raw()).expect("positive size");
    frame.source = source;
    Ok(frame)
}

/// Decodes an image file into an RGB frame, upright (EXIF orientation applied, as a phone's
/// photo viewer would show it).
pub fn load_image(path: &Path) -> Result<Frame, DetectorError> {
    decode(path, None)
}

fn decode(path: &Path, max_pixels: Option<u64>) -> Result<Frame, DetectorError> {
    let bad = |reason: String| DetectorError::Image {
        path: path.to_path_buf(),
        reason,
    };
    // Judge by content: a text file named .jpg should say "not an image", not "bad JPEG".
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| bad(e.to_string()))?;
    let format = image::guess_format(&head[..n])
        .map_err(|_| bad("not a supported image (jpeg, png, webp, bmp, tiff, gif)".into()))?;
    let mut reader = ImageReader::open(path).map_err(|e| bad(e.to_string()))?;
    reader.set_format(format);
    if let Some(max) = max_pixels {
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(max * 4 + (64 << 20));
        reader.limits(limits);
    }
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    if let Some(max) = max_pixels {
        let (w, h) = decoder.dimensions();
        if w as u64 * h as u64 > max {
            return Err(bad(format!(
                "{w}×{h} is over the {} megapixels a photo may have",
                max / 1_000_000
            )));
        }
    }
    let orientation = decoder.orientation().map_err(|e| bad(e.to_string()))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    image.apply_orientation(orientation);
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    Frame::new(width, height, rgb.into_raw()).ok_or_else(|| bad("image has no pixels".into()))
}

/// Whether a file is meant as a photo: by its name, else by its content. (A text file named
/// .jpg is a photo that fails to load, with that error; a photo named .mp4 is still a photo.)
pub fn is_image(path: &Path) -> bool {
    if looks_like_image_name(path) {
        return true;
    }
    let mut head = [0u8; 64];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .is_ok_and(|n| image::guess_format(&head[..n]).is_ok())
}

fn looks_like_image_name(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        ext.as_str(),
        "jpg" | "jpeg" | "png" | "webp" | "bmp" | "tif" | "tiff" | "gif"
    )
}

/// What became of one input image.
#[derive(Debug)]
pub struct ImageOutcome {
    pub path: PathBuf,
    pub result: Result<(Frame, Vec<Detection>), DetectorError>,
}

/// Runs every image through `detector`, in input order, calling `on_outcome` for each as soon
/// as its batch is done. A bad image yields its own error and does not stop the others.
///
/// Decoding runs on a separate thread, one batch ahead of inference.
pub fn detect_images(
    detector: &Detector,
    paths: &[PathBuf],
    mut on_outcome: impl FnMut(ImageOutcome),
) -> Result<(), DetectorError> {
    let batch_size = detector.max_batch();
    let (tx, rx) = mpsc::sync_channel::<(PathBuf, Result<Frame, DetectorError>)>(batch_size);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for path in paths {
                if tx.send((path.clone(), load_image(path))).is_err() {
                    return; // inference stopped early
                }
            }
        });
        let mut pending: Vec<(PathBuf, Frame)> = Vec::with_capacity(batch_size);
        let flush = |pending: &mut Vec<(PathBuf, Frame)>,
                     on_outcome: &mut dyn FnMut(ImageOutcome)|
         -> Result<(), DetectorError> {
            if pending.is_empty() {
                return Ok(());
            }
            let frames: Vec<&Frame> = pending.iter().map(|(_, f)| f).collect();
            let detections = detector.detect(&frames)?;
            for ((path, frame), dets) in pending.drain(..).zip(detections) {
                on_outcome(ImageOutcome {
                    path,
                    result: Ok((frame, dets)),
                });
            }
            Ok(())
        };
        for (path, loaded) in rx {
            match loaded {
                Ok(frame) => {
                    pending.push((path, frame));
                    if pending.len() == batch_size {
                        flush(&mut pending, &mut on_outcome)?;
                    }
                }
                // Report in input order: finish the images queued before this one first.
                Err(e) => {
                    flush(&mut pending, &mut on_outcome)?;
                    on_outcome(ImageOutcome {
                        path,
                        result: Err(e),
                    });
                }
            }
        }
        flush(&mut pending, &mut on_outcome)
    })
}
