//! A result document's index (`results/<id>.json.index`): where each block of frames starts in
//! the result file, where the frames end, and which classes appear in each block with their
//! best score. With it the API answers a frame range, the timeline and the summary of a
//! three-hour video by reading a few kilobytes, not the whole document (hundreds of megabytes).
//!
//! The merge builds the index as it writes the document ([`IndexBuilder`] fed with the byte
//! offsets it wrote). A document without one (written before indexes existed, or by
//! `argus detect --output`) is indexed by [`scan`], which reads it once; the two agree byte for
//! byte, which the tests check. An index records the length of the document it describes, so a
//! stale one is never trusted.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::FrameDetections;

/// The index format's version.
pub const INDEX_VERSION: u32 = 1;

/// Blocks a video's frames are cut into, at most: a finer timeline is wider than any screen,
/// and a frame range reads at most one block more than it asked for at each end.
pub const MAX_BLOCKS: u64 = 4096;

/// Frames per block for a video of `frame_count` frames.
pub fn block_frames(frame_count: u64) -> u64 {
    frame_count.div_ceil(MAX_BLOCKS).max(1)
}

/// Where one class appears: `(block, best score in that block)`, blocks ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    pub label: String,
    pub class_id: u32,
    pub blocks: Vec<(u64, f32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultIndex {
    pub version: u32,
    /// The length in bytes of the document this index describes.
    pub result_len: u64,
    pub frame_count: u64,
    pub block_frames: u64,
    /// `offsets[k]`: where the first frame with index ≥ k·`block_frames` starts; the last entry
    /// (one per block, plus one) is where the `frames` array's closing `]` is.
    pub offsets: Vec<u64>,
    /// One lane per class seen, by class id.
    pub lanes: Vec<Lane>,
}

impl ResultIndex {
    /// Blocks in the video.
    pub fn blocks(&self) -> u64 {
        self.offsets.len() as u64 - 1
    }

    /// The bytes of the document that hold every frame in `from..to` (and perhaps a few around
    /// them: whole blocks are read).
    pub fn byte_range(&self, from: u64, to: u64) -> std::ops::Range<u64> {
        let blocks = self.blocks();
        let first = (from / self.block_frames).min(blocks);
        let last = to.div_ceil(self.block_frames).clamp(first, blocks);
        self.offsets[first as usize]..self.offsets[last as usize]
    }

    /// Where what follows the frames starts (`,"skipped_frames":…,"summary":…}`).
    pub fn tail_offset(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0) + 1
    }

    /// Whether this index can describe a document of `len` bytes.
    pub fn describes(&self, len: u64) -> bool {
        // The block size first: it bounds what follows (no division by 0, at most 4097 offsets).
        self.version == INDEX_VERSION
            && self.block_frames == block_frames(self.frame_count)
            && self.result_len == len
            && self.offsets.len() as u64 == self.frame_count.div_ceil(self.block_frames) + 1
            && self.offsets.windows(2).all(|w| w[0] <= w[1])
            && self.offsets.last().is_some_and(|&end| end < len)
    }
}

/// Parses the frames in `bytes`, a slice of the `frames` array cut at frame boundaries
/// (`{…},{…},`, trailing comma or not).
pub fn parse_frames(bytes: &[u8]) -> serde_json::Result<Vec<FrameDetections>> {
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b',' | b' ' | b'\n' | b'\r' | b'\t') {
        end -= 1;
    }
    let mut array = Vec::with_capacity(end + 2);
    array.push(b'[');
    array.extend_from_slice(&bytes[..end]);
    array.push(b']');
    serde_json::from_slice(&array)
}

/// The frames in `from..to` of the document in `file`, read through `index`.
pub fn read_frames<F: std::io::Read + std::io::Seek>(
    file: &mut F,
    index: &ResultIndex,
    from: u64,
    to: u64,
) -> std::io::Result<Vec<FrameDetections>> {
    let range = index.byte_range(from, to);
    file.seek(std::io::SeekFrom::Start(range.start))?;
    let mut bytes = Vec::with_capacity((range.end - range.start) as usize);
    file.take(range.end - range.start).read_to_end(&mut bytes)?;
    let mut frames = parse_frames(&bytes).map_err(std::io::Error::other)?;
    frames.retain(|f| (from..to).contains(&f.index));
    Ok(frames)
}

/// Builds an index from the frames of a document in index order, with where each starts.
pub struct IndexBuilder {
    frame_count: u64,
    block_frames: u64,
    offsets: Vec<u64>,
    lanes: BTreeMap<u32, Lane>,
}

impl IndexBuilder {
    pub fn new(frame_count: u64) -> IndexBuilder {
        IndexBuilder {
            frame_count,
            block_frames: block_frames(frame_count),
            offsets: Vec::new(),
            lanes: BTreeMap::new(),
        }
    }

    /// `frame` starts at byte `offset` of the document.
    pub fn frame(&mut self, offset: u64, frame: &FrameDetections) {
        let block = frame.index / self.block_frames;
        // Blocks without a frame start where the next frame does.
        while self.offsets.len() as u64 <= block {
            self.offsets.push(offset);
        }
        for d in &frame.detections {
            let lane = self.lanes.entry(d.class_id).or_insert_with(|| Lane {
                label: d.label.clone(),
                class_id: d.class_id,
                blocks: Vec::new(),
            });
            match lane.blocks.last_mut() {
                Some((b, best)) if *b == block => *best = best.max(d.score),
                _ => lane.blocks.push((block, d.score)),
            }
        }
    }

    /// The index, given where the `frames` array's `]` is and the document's length.
    pub fn finish(mut self, frames_end: u64, result_len: u64) -> ResultIndex {
        let blocks = self.frame_count.div_ceil(self.block_frames);
        while (self.offsets.len() as u64) < blocks + 1 {
            self.offsets.push(frames_end);
        }
        ResultIndex {
            version: INDEX_VERSION,
            result_len,
            frame_count: self.frame_count,
            block_frames: self.block_frames,
            offsets: self.offsets,
            lanes: self.lanes.into_values().collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("reading the result: {0}")]
    Io(#[from] std::io::Error),
    #[error("the result is not a result document: {0}")]
    Format(String),
}

/// Indexes a result document by reading it once: a byte-level walk that finds each element of
/// the top-level `frames` array (strings and nesting tracked, nothing else parsed), then each
/// frame parsed on its own. `frame_count` is the video's (the document's `video.frame_count`).
pub fn scan(reader: impl Read, frame_count: u64) -> Result<ResultIndex, ScanError> {
    let bad = |what: &str| ScanError::Format(what.to_string());
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
    let mut builder = IndexBuilder::new(frame_count);
    let mut buf = [0u8; 1 << 16];
    let (mut offset, mut depth) = (0u64, 0u32);
    let (mut in_string, mut escaped) = (false, false);
    // The last string closed at depth 1 (a key of the document), and whether it was `frames`.
    let mut key = Vec::new();
    let mut last_key_frames = false;
    let (mut in_frames, mut frames_end) = (false, None);
    // The frame being read: its start and bytes.
    let mut frame: Option<(u64, Vec<u8>)> = None;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &byte in &buf[..n] {
            if let Some((_, bytes)) = frame.as_mut() {
                bytes.push(byte);
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                    if depth == 1 {
                        last_key_frames = key == b"frames";
                    }
                } else if depth == 1 && key.len() <= 8 {
                    key.push(byte);
                }
            } else {
                match byte {
                    b'"' => {
                        in_string = true;
                        key.clear();
                    }
                    b'{' | b'[' => {
                        if depth == 1 && byte == b'[' && last_key_frames && frames_end.is_none() {
                            in_frames = true;
                        } else if depth == 2 && in_frames && byte == b'{' {
                            frame = Some((offset, vec![b'{']));
                        }
                        depth += 1;
                    }
                    b'}' | b']' => {
                        depth = depth.checked_sub(1).ok_or_else(|| bad("unbalanced"))?;
                        if depth == 2 && in_frames && byte == b'}' {
                            let (start, bytes) = frame.take().ok_or_else(|| bad("a frame"))?;
                            let parsed: FrameDetections = serde_json::from_slice(&bytes)
                                .map_err(|e| ScanError::Format(e.to_string()))?;
                            builder.frame(start, &parsed);
                        } else if depth == 1 && in_frames {
                            in_frames = false;
                            frames_end = Some(offset);
                        }
                    }
                    b':' | b',' => {
                        if depth == 1 && byte == b',' {
                            last_key_frames = false;
                        }
                    }
                    _ => {}
                }
            }
            offset += 1;
        }
    }
    let frames_end = frames_end.ok_or_else(|| bad("no frames array"))?;
    Ok(builder.finish(frames_end, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoundingBox, Detection};

    fn frame(index: u64, labels: &[(&str, u32, f32)]) -> FrameDetections {
        FrameDetections {
            predicted: false,
            index,
            pts_ms: index as f64 * 40.0,
            detections: labels
                .iter()
                .map(|&(label, class_id, score)| Detection {
                    label: label.into(),
                    class_id,
                    score,
                    bbox: BoundingBox::from([1.0, 2.0, 3.0, 4.0]),
                    track_id: None,
                    predicted: false,
                    landmarks: None,
                    embedding: None,
                })
                .collect(),
        }
    }

    /// A document as the merge writes it, with the offsets of its frames.
    fn document(frames: &[FrameDetections]) -> (Vec<u8>, ResultIndex) {
        let mut out =
            br#"{"video":{"frames":[1,2],"s":"\"frames\":["},"model":{},"frames":["#.to_vec();
        let mut builder = IndexBuilder::new(10_000);
        for (i, f) in frames.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            builder.frame(out.len() as u64, f);
            serde_json::to_writer(&mut out, f).unwrap();
        }
        let end = out.len() as u64;
        out.extend_from_slice(br#"],"warnings":["a ] } \" {"],"summary":{"frames_processed":3}}"#);
        let len = out.len() as u64;
        (out, builder.finish(end, len))
    }

    #[test]
    fn the_scan_finds_what_the_writer_recorded() {
        // 10,000 frames: 3 per block; a gap (skipped frames) and a label with brackets.
        let frames: Vec<_> = (0..10_000)
            .filter(|i| !(100..110).contains(i))
            .map(|i| {
                frame(
                    i,
                    &[
                        ("person", 0, 0.5 + (i % 7) as f32 / 20.0),
                        ("a]{\"", 9, 0.3),
                    ],
                )
            })
            .collect();
        let (doc, written) = document(&frames);
        assert_eq!(written.block_frames, 3);
        assert!(written.describes(doc.len() as u64));
        let scanned = scan(&doc[..], 10_000).unwrap();
        assert_eq!(scanned, written);
        assert_eq!(written.lanes.len(), 2);
        // Blocks 34 and 35 (frames 102..108) have no frame.
        assert_eq!(written.lanes[0].blocks.len() as u64, written.blocks() - 2);
    }

    #[test]
    fn a_range_reads_its_frames_and_the_tail_is_the_rest() {
        let frames: Vec<_> = (0..10_000).map(|i| frame(i, &[("car", 2, 0.9)])).collect();
        let (doc, index) = document(&frames);
        for (from, to) in [
            (0, 1),
            (5, 305),
            (9_990, 10_000),
            (4_000, 4_000),
            (9_999, 20_000),
        ] {
            let range = index.byte_range(from, to);
            let got = parse_frames(&doc[range.start as usize..range.end as usize]).unwrap();
            let wanted: Vec<_> = frames[from as usize..(to as usize).min(10_000)].to_vec();
            let kept: Vec<_> = got
                .into_iter()
                .filter(|f| (from..to).contains(&f.index))
                .collect();
            assert_eq!(kept, wanted, "{from}..{to}");
        }
        let tail = &doc[index.tail_offset() as usize..];
        assert!(
            tail.starts_with(br#","warnings""#),
            "{}",
            String::from_utf8_lossy(tail)
        );
    }

    #[test]
    fn a_stale_or_foreign_index_is_not_trusted() {
        let (doc, index) = document(&[frame(0, &[])]);
        assert!(index.describes(doc.len() as u64));
        assert!(!index.describes(doc.len() as u64 + 1));
        let mut other = index.clone();
        other.version += 1;
        assert!(!other.describes(doc.len() as u64));
        // A torn or forged index is refused, never a panic.
        for (block_frames, frame_count) in [(0, 1), (1, u64::MAX), (7, 1)] {
            let forged = ResultIndex {
                block_frames,
                frame_count,
                ..index.clone()
            };
            assert!(!forged.describes(doc.len() as u64));
        }
        assert!(scan(&b"{\"video\":{}}"[..], 1).is_err());
        assert!(scan(&b"]]]"[..], 1).is_err());
    }
}
