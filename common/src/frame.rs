/// An RGB image or video frame, tightly packed (`width * height * 3` bytes, row-major).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// Size of the picture this frame shows, in which detections are reported: `(width,
    /// height)` unless the frame was scaled down on decoding (to fit a model's input).
    pub source: (u32, u32),
}

impl Frame {
    /// Wraps packed RGB bytes; `None` when the buffer does not match the size.
    pub fn new(width: u32, height: u32, rgb: Vec<u8>) -> Option<Frame> {
        (width > 0 && height > 0 && rgb.len() == width as usize * height as usize * 3).then_some(
            Frame {
                width,
                height,
                rgb,
                source: (width, height),
            },
        )
    }
}

/// How a `src_width` × `src_height` picture fits a `box_width` × `box_height` box keeping its
/// aspect ratio: the scale (box pixels per source pixel) and the scaled size (at least 1×1,
/// at most the box). One definition for the decoder that scales frames down and the
/// letterbox that maps boxes back, so that both agree to the pixel.
pub fn fit(src_width: u32, src_height: u32, box_width: u32, box_height: u32) -> (f32, u32, u32) {
    let scale = (box_width as f32 / src_width as f32).min(box_height as f32 / src_height as f32);
    let size = |src: u32, max: u32| ((src as f32 * scale).round() as u32).clamp(1, max);
    (
        scale,
        size(src_width, box_width),
        size(src_height, box_height),
    )
}
