//! Antialiased bilinear resampling of packed RGB bytes straight into the model's float input,
//! on the CPU.
//!
//! The weights are libtorch's `_upsample_bilinear2d_aa` (itself Pillow's "triangle" filter),
//! computed with the same float steps, so a frame resized here matches the torch letterbox
//! to float rounding (about 1e-5 of a 0..255 pixel): detections do not move. What changes is
//! the cost: torch needs the frame as a planar float tensor first (a 1080p frame: a 6 MB
//! byte transpose, then 25 MB of floats) and resizes each plane; here the bytes are read once,
//! rows first (a vertical pass that vectorises across the whole row), then along each
//! shrunken row, and the result lands in the batch's NHWC slot with no permute.

/// The taps of a 1-D resampling: for output `i`, `len[i]` weights from input `start[i]` on.
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    /// `stride` weights per output, the first `len[i]` of them used.
    weights: Vec<f32>,
    stride: usize,
}

impl Taps {
    /// libtorch's antialiased bilinear taps (`HelperInterpBase::_compute_indices_min_size_weights_aa`
    /// with `align_corners = false`), step for step in the same precision: a float scale and
    /// weights, double where C++ promotes to it.
    fn new(input: usize, output: usize) -> Taps {
        let scale = input as f32 / output as f32;
        let support: f32 = if scale >= 1.0 { scale } else { 1.0 };
        let stride = support.ceil() as usize * 2 + 1;
        let invscale: f32 = if scale >= 1.0 {
            (1.0 / scale as f64) as f32
        } else {
            1.0
        };
        let mut taps = Taps {
            start: Vec::with_capacity(output),
            len: Vec::with_capacity(output),
            weights: vec![0.0; output * stride],
            stride,
        };
        for i in 0..output {
            let center = (scale as f64 * (i as f64 + 0.5)) as f32;
            let min = (((center - support) as f64 + 0.5) as i64).max(0);
            let end = (((center + support) as f64 + 0.5) as i64).min(input as i64);
            let len = (end - min).clamp(0, stride as i64) as usize;
            let w = &mut taps.weights[i * stride..][..len];
            let mut total = 0.0f32;
            for (j, w) in w.iter_mut().enumerate() {
                let x =
                    ((((j as i64 + min) as f32 - center) as f64 + 0.5) * invscale as f64) as f32;
                let x = x.abs();
                *w = if x < 1.0 {
                    (1.0 - x as f64) as f32
                } else {
                    0.0
                };
                total += *w;
            }
            if total != 0.0 {
                w.iter_mut().for_each(|w| *w /= total);
            }
            taps.start.push(min as usize);
            taps.len.push(len);
        }
        taps
    }

    fn of(&self, i: usize) -> (usize, &[f32]) {
        (
            self.start[i],
            &self.weights[i * self.stride..][..self.len[i]],
        )
    }
}

/// Resizes packed RGB `src` (`width`×`height`) to `out_width`×`out_height` into `dst`, whose
/// rows are `dst_stride` floats apart (the model input's row; the rest of each row and the rows
/// below are left as they are: the letterbox's padding). Values stay in 0..255.
///
/// Panics if `src` or `dst` is too short for the sizes given (callers check frames first).
pub fn resize_rgb_into(
    src: &[u8],
    (width, height): (usize, usize),
    dst: &mut [f32],
    dst_stride: usize,
    (out_width, out_height): (usize, usize),
) {
    let row_len = width * 3;
    assert!(
        src.len() >= row_len * height,
        "source shorter than its size"
    );
    assert!(
        out_width * 3 <= dst_stride
            && dst.len() >= dst_stride * out_height.saturating_sub(1) + out_width * 3,
        "destination shorter than the output"
    );
    let rows = Taps::new(height, out_height);
    let cols = (width != out_width).then(|| Taps::new(width, out_width));
    // One source-width row of the vertical pass, reused for every output row.
    let mut row = vec![0.0f32; row_len];
    for oy in 0..out_height {
        let (first, weights) = if height == out_height {
            (oy, &[1.0f32][..])
        } else {
            rows.of(oy)
        };
        vertical(src, row_len, first, weights, &mut row);
        let out = &mut dst[oy * dst_stride..][..out_width * 3];
        match &cols {
            None => out.copy_from_slice(&row),
            Some(cols) => horizontal(&row, cols, out),
        }
    }
}

/// `row = Σ weights[j] · src row (first + j)`, element by element: a straight loop over the
/// row that the compiler vectorises.
fn vertical(src: &[u8], row_len: usize, first: usize, weights: &[f32], row: &mut [f32]) {
    let line = |j: usize| &src[(first + j) * row_len..][..row_len];
    let w0 = weights[0];
    for (r, &s) in row.iter_mut().zip(line(0)) {
        *r = s as f32 * w0;
    }
    for (j, &w) in weights.iter().enumerate().skip(1) {
        for (r, &s) in row.iter_mut().zip(line(j)) {
            *r += s as f32 * w;
        }
    }
}

/// Each output pixel's three channels from its taps along the (already shrunken) row.
fn horizontal(row: &[f32], cols: &Taps, out: &mut [f32]) {
    for (ox, px) in out.chunks_exact_mut(3).enumerate() {
        let (first, weights) = cols.of(ox);
        let taps = &row[first * 3..][..weights.len() * 3];
        let (mut r, mut g, mut b) = (0.0f32, 0.0f32, 0.0f32);
        for (p, &w) in taps.chunks_exact(3).zip(weights) {
            r += p[0] * w;
            g += p[1] * w;
            b += p[2] * w;
        }
        px[0] = r;
        px[1] = g;
        px[2] = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// torch's antialiased resize of the same bytes, as NHWC floats.
    fn torch_resize(src: &[u8], (w, h): (usize, usize), (ow, oh): (usize, usize)) -> Vec<f32> {
        let t = Tensor::from_slice(src)
            .view([1, h as i64, w as i64, 3])
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float)
            .contiguous();
        let r = if (ow, oh) == (w, h) {
            t
        } else {
            t.internal_upsample_bilinear2d_aa([oh as i64, ow as i64], false, None, None)
        };
        let r = r.permute([0, 2, 3, 1]).contiguous().view([-1]);
        Vec::<f32>::try_from(&r.to_device(Device::Cpu)).unwrap()
    }

    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn matches_torch_shrinking_growing_and_copying() {
        for (src, out) in [
            ((1920, 1080), (512, 288)),
            ((640, 272), (512, 218)),
            ((176, 144), (512, 419)),
            ((37, 211), (23, 131)),
            ((300, 40), (512, 68)),
            ((64, 48), (64, 48)),
            ((64, 48), (64, 20)),
            ((64, 48), (20, 48)),
        ] {
            let bytes = noise(src.0 * src.1 * 3, (src.0 * 31 + out.1) as u32);
            let want = torch_resize(&bytes, src, out);
            let stride = out.0 * 3 + 6; // a wider destination row: padding stays untouched
            let mut got = vec![-1.0f32; stride * out.1];
            resize_rgb_into(&bytes, src, &mut got, stride, out);
            let mut worst = 0.0f32;
            for y in 0..out.1 {
                let row = &got[y * stride..][..stride];
                for (i, (g, w)) in row
                    .iter()
                    .zip(&want[y * out.0 * 3..][..out.0 * 3])
                    .enumerate()
                {
                    assert!(g.is_finite(), "{src:?}->{out:?} at row {y}, {i}");
                    worst = worst.max((g - w).abs());
                }
                assert!(
                    row[out.0 * 3..].iter().all(|&v| v == -1.0),
                    "padding touched"
                );
            }
            assert!(worst < 2e-3, "{src:?} -> {out:?}: max |diff| {worst}");
        }
    }

    #[test]
    fn a_flat_frame_stays_flat() {
        let bytes = vec![200u8; 99 * 70 * 3];
        let mut got = vec![0.0f32; 40 * 3 * 28];
        resize_rgb_into(&bytes, (99, 70), &mut got, 40 * 3, (40, 28));
        assert!(
            got.iter().all(|v| (v - 200.0).abs() < 1e-3),
            "weights sum to one"
        );
    }
}
