/// An RGB image or video frame, tightly packed (`width * height * 3` bytes, row-major).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Frame {
    /// Wraps packed RGB bytes; `None` when the buffer does not match the size.
    pub fn new(width: u32, height: u32, rgb: Vec<u8>) -> Option<Frame> {
        (width > 0 && height > 0 && rgb.len() == width as usize * height as usize * 3)
            .then_some(Frame { width, height, rgb })
    }
}
