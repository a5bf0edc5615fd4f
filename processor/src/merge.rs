//! Merging chunk results: frames in presentation order, each exactly once (or listed as
//! skipped: it could not be decoded), and the summary.
//!
//! [`MergeWriter`] streams: it takes the chunks in order, one at a time, and writes the result
//! document as it goes, so that a merge's memory is one chunk's, not the video's (a long video's
//! result is hundreds of megabytes of JSON). `argus detect` and the workers both merge through
//! it: the merge task is the only merge there is.

use std::collections::BTreeMap;
use std::io::Write;

use argus_common::result_index::{IndexBuilder, ResultIndex};

use crate::tracks::{Tracked, Tracks};
use argus_common::video::{ClassSummary, PeakFrame};
use argus_common::zones::{LineResult, ZoneResult};
use argus_common::{FrameDetections, ModelInfo, Summary, VideoInfo};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("frame {0} is missing from the chunk results")]
    Missing(u64),
    #[error("frame {0} appears twice in the chunk results")]
    Duplicate(u64),
    #[error("frame {index} is beyond the video's {frame_count} frames")]
    OutOfRange { index: u64, frame_count: u64 },
    #[error("writing the result: {0}")]
    Io(#[from] std::io::Error),
}

impl PartialEq for MergeError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// What a merge found, besides the document it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub summary: Summary,
    pub warnings: Vec<String>,
    /// The document's index (where its frames are), for `results/<id>.json.index`.
    pub index: ResultIndex,
}

/// A writer that counts what went through it: the index records byte offsets.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a video's result document (the JSON of [`VideoResult`], byte for byte as serde
/// writes it) from its chunks, given in frame order: every frame of the video must come once,
/// detected or reported skipped; a gap or a double is an error, never papered over.
pub struct MergeWriter<W: Write> {
    out: Counting<W>,
    index: IndexBuilder,
    /// The video's tracks, when tracking is on ([`MergeWriter::track`]).
    tracks: Option<Tracks>,
    frame_count: u64,
    /// The next frame expected.
    next: u64,
    skipped: Vec<u64>,
    summary: SummaryBuilder,
    device_seconds: f64,
    /// Frames settled by the tracker, to write (reused).
    ready: Vec<FrameDetections>,
}

impl<W: Write> MergeWriter<W> {
    /// Starts the document: the video and the model.
    pub fn start(out: W, video: &VideoInfo, model: &ModelInfo) -> Result<Self, MergeError> {
        let mut out = Counting {
            inner: out,
            written: 0,
        };
        out.write_all(b"{\"video\":")?;
        serde_json::to_writer(&mut out, video).map_err(std::io::Error::from)?;
        out.write_all(b",\"model\":")?;
        serde_json::to_writer(&mut out, model).map_err(std::io::Error::from)?;
        out.write_all(b",\"frames\":[")?;
        Ok(MergeWriter {
            out,
            index: IndexBuilder::new(video.frame_count),
            tracks: None,
            frame_count: video.frame_count,
            next: 0,
            skipped: Vec::new(),
            summary: SummaryBuilder::default(),
            device_seconds: 0.0,
            ready: Vec::new(),
        })
    }

    /// Follows objects across frames (before the first chunk): each detection gets its
    /// `track_id`, the document its `tracks` (and its zones' and lines' counts), the summary
    /// its counts of different objects, passed-over frames their predicted boxes.
    pub fn track(mut self, tracks: Tracks) -> Self {
        self.tracks = Some(tracks);
        self
    }

    /// Device time the chunks' detection took (summed into the summary).
    pub fn add_device_seconds(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds > 0.0 {
            self.device_seconds += seconds;
        }
    }

    /// Writes the frames the tracker has settled (or `frame` itself without a tracker).
    fn write_ready(&mut self) -> Result<(), MergeError> {
        for frame in std::mem::take(&mut self.ready) {
            self.write_frame(&frame)?;
        }
        Ok(())
    }

    fn write_frame(&mut self, frame: &FrameDetections) -> Result<(), MergeError> {
        self.summary.add(frame);
        if self.summary.frames > 1 {
            self.out.write_all(b",")?;
        }
        self.index.frame(self.out.written, frame);
        serde_json::to_writer(&mut self.out, frame).map_err(std::io::Error::from)?;
        Ok(())
    }

    /// The next chunk: its frames and the indices it could not decode, in any order. Its first
    /// frame must follow the previous chunk's last.
    pub fn chunk(
        &mut self,
        mut frames: Vec<FrameDetections>,
        mut skipped: Vec<u64>,
    ) -> Result<(), MergeError> {
        frames.sort_unstable_by_key(|f| f.index);
        skipped.sort_unstable();
        skipped.dedup();
        let mut skipped = skipped.into_iter().peekable();
        let mut frames = frames.into_iter().peekable();
        loop {
            let next_frame = frames.peek().map(|f| f.index);
            let next_skipped = skipped.peek().copied();
            let (index, is_frame) = match (next_frame, next_skipped) {
                (None, None) => return Ok(()),
                (Some(f), Some(s)) if s == f => return Err(MergeError::Duplicate(f)),
                (Some(f), Some(s)) if s < f => (s, false),
                (Some(f), _) => (f, true),
                (None, Some(s)) => (s, false),
            };
            if index >= self.frame_count {
                return Err(MergeError::OutOfRange {
                    index,
                    frame_count: self.frame_count,
                });
            }
            if index < self.next {
                return Err(MergeError::Duplicate(index));
            }
            if index > self.next {
                return Err(MergeError::Missing(self.next));
            }
            self.next += 1;
            if is_frame {
                let frame = frames.next().expect("peeked");
                match &mut self.tracks {
                    Some(tracks) => {
                        tracks.push(frame, &mut self.ready);
                        self.write_ready()?;
                    }
                    None => self.write_frame(&frame)?,
                }
            } else {
                if let Some(tracks) = &mut self.tracks {
                    tracks.gap(index, &mut self.ready);
                    self.write_ready()?;
                }
                self.skipped.push(skipped.next().expect("peeked"));
            }
        }
    }

    /// Ends the document: the skipped frames, the warnings and the summary.
    pub fn finish(
        mut self,
        video: &VideoInfo,
        chunks: u32,
        wall_time_s: f64,
        warnings: Vec<String>,
    ) -> Result<(W, Merged), MergeError> {
        let mut warnings = warnings;
        if self.next < self.frame_count {
            return Err(MergeError::Missing(self.next));
        }
        if !self.skipped.is_empty() {
            warnings.push(format!(
                "{} of {} frames could not be decoded (damaged data) and were skipped: see skipped_frames",
                self.skipped.len(),
                self.frame_count
            ));
        }
        let tracked: Option<Tracked> = match self.tracks.take() {
            Some(tracks) => {
                let tracked = tracks.finish(&mut self.ready);
                self.write_ready()?;
                Some(tracked)
            }
            None => None,
        };
        let mut summary = self.summary.finish(video, chunks, wall_time_s);
        summary.frames_skipped = self.skipped.len() as u64;
        summary.device_seconds = self.device_seconds;
        if video.duration_s > 0.0 {
            summary.device_seconds_per_video_hour = self.device_seconds * 3600.0 / video.duration_s;
        }
        if let Some(tracked) = &tracked {
            let tracks = &tracked.tracks;
            summary.tracks = Some(tracks.len() as u64);
            for class in &mut summary.classes {
                class.tracks = Some(
                    tracks
                        .iter()
                        .filter(|t| t.class_id == class.class_id)
                        .count() as u64,
                );
            }
            // The counts; each visit and crossing is in the document only.
            summary.zones = tracked
                .zones
                .iter()
                .map(|z| ZoneResult {
                    events: Vec::new(),
                    ..z.clone()
                })
                .collect();
            summary.lines = tracked
                .lines
                .iter()
                .map(|l| LineResult {
                    events: Vec::new(),
                    ..l.clone()
                })
                .collect();
        }
        let frames_end = self.out.written;
        {
            let out = &mut self.out;
            out.write_all(b"]")?;
            if let Some(tracked) = &tracked {
                write_list(out, "tracks", &tracked.tracks)?;
                write_list(out, "zones", &tracked.zones)?;
                write_list(out, "lines", &tracked.lines)?;
            }
            if !self.skipped.is_empty() {
                out.write_all(b",\"skipped_frames\":")?;
                serde_json::to_writer(&mut *out, &self.skipped).map_err(std::io::Error::from)?;
            }
            if !warnings.is_empty() {
                out.write_all(b",\"warnings\":")?;
                serde_json::to_writer(&mut *out, &warnings).map_err(std::io::Error::from)?;
            }
            out.write_all(b",\"summary\":")?;
            serde_json::to_writer(&mut *out, &summary).map_err(std::io::Error::from)?;
            out.write_all(b"}")?;
            out.flush()?;
        }
        let index = self.index.finish(frames_end, self.out.written);
        Ok((
            self.out.inner,
            Merged {
                summary,
                warnings,
                index,
            },
        ))
    }
}

/// `,"name":[...]` when `items` has any.
fn write_list<T: serde::Serialize>(
    out: &mut impl Write,
    name: &str,
    items: &[T],
) -> std::io::Result<()> {
    if !items.is_empty() {
        write!(out, ",\"{name}\":")?;
        serde_json::to_writer(&mut *out, items).map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// The summary, a frame at a time.
#[derive(Default)]
struct SummaryBuilder {
    frames: u64,
    detected: u64,
    classes: BTreeMap<u32, ClassSummary>,
    most_persons: Option<PeakFrame>,
}

impl SummaryBuilder {
    fn add(&mut self, frame: &FrameDetections) {
        self.frames += 1;
        if frame.predicted {
            return; // its boxes are estimates: counts are of detections
        }
        self.detected += 1;
        let mut in_frame: BTreeMap<u32, u64> = BTreeMap::new();
        for d in &frame.detections {
            *in_frame.entry(d.class_id).or_default() += 1;
            self.classes
                .entry(d.class_id)
                .or_insert_with(|| ClassSummary {
                    label: d.label.clone(),
                    class_id: d.class_id,
                    objects: 0,
                    frames: 0,
                    most_at_once: 0,
                    most_at_once_frame: 0,
                    tracks: None,
                });
        }
        for (class_id, count) in in_frame {
            let class = self.classes.get_mut(&class_id).expect("inserted above");
            class.objects += count;
            class.frames += 1;
            if count > class.most_at_once {
                class.most_at_once = count;
                class.most_at_once_frame = frame.index;
            }
        }
        let persons = frame
            .detections
            .iter()
            .filter(|d| d.label == "person")
            .count() as u64;
        if persons > 0 && self.most_persons.as_ref().is_none_or(|p| persons > p.count) {
            self.most_persons = Some(PeakFrame {
                index: frame.index,
                count: persons,
            });
        }
    }

    fn finish(self, video: &VideoInfo, chunks: u32, wall_time_s: f64) -> Summary {
        let mut classes: Vec<ClassSummary> = self.classes.into_values().collect();
        classes.sort_by(|a, b| b.objects.cmp(&a.objects).then(a.class_id.cmp(&b.class_id)));
        Summary {
            frames_processed: self.frames,
            frames_detected: self.detected,
            device_seconds: 0.0,
            device_seconds_per_video_hour: 0.0,
            frames_skipped: 0,
            video_duration_s: video.duration_s,
            wall_time_s,
            frames_per_second: if wall_time_s > 0.0 {
                self.frames as f64 / wall_time_s
            } else {
                0.0
            },
            chunks,
            top_classes: classes.iter().take(3).map(|c| c.label.clone()).collect(),
            classes,
            most_persons: self.most_persons,
            tracks: None,
            zones: Vec::new(),
            lines: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_common::{BoundingBox, Detection, VideoResult};

    /// The merge of `chunks` (each in any order, the chunks in frame order) as a result.
    fn merge_chunks(
        video: VideoInfo,
        model: ModelInfo,
        chunks: impl IntoIterator<Item = Vec<FrameDetections>>,
        skipped: Vec<u64>,
        chunk_count: u32,
        wall_time_s: f64,
        warnings: Vec<String>,
    ) -> Result<VideoResult, MergeError> {
        let mut writer = MergeWriter::start(Vec::new(), &video, &model)?;
        let frames: Vec<FrameDetections> = chunks.into_iter().flatten().collect();
        writer.chunk(frames, skipped)?;
        let (json, _) = writer.finish(&video, chunk_count, wall_time_s, warnings)?;
        Ok(serde_json::from_slice(&json).expect("the document is a result"))
    }

    fn info(frame_count: u64) -> VideoInfo {
        VideoInfo {
            container: "mp4".into(),
            codec: "h264".into(),
            width: 100,
            height: 100,
            rotation: 0,
            fps: 25.0,
            frame_count,
            duration_s: frame_count as f64 / 25.0,
            stream_index: 0,
            time_base: [1, 25],
            start_pts: 0,
        }
    }

    fn model() -> ModelInfo {
        ModelInfo {
            name: "m".into(),
            adapter: "centernet".into(),
            input_size: [512, 512],
            score_threshold: 0.3,
            devices: vec!["cpu".into()],
        }
    }

    fn frame(index: u64, labels: &[(&str, u32)]) -> FrameDetections {
        FrameDetections {
            predicted: false,
            index,
            pts_ms: index as f64 * 40.0,
            detections: labels
                .iter()
                .map(|&(label, class_id)| Detection {
                    label: label.into(),
                    class_id,
                    score: 0.9,
                    bbox: BoundingBox::from([0.0, 0.0, 1.0, 1.0]),
                    track_id: None,
                    predicted: false,
                    landmarks: None,
                    embedding: None,
                })
                .collect(),
        }
    }

    #[test]
    fn orders_frames_and_summarizes() {
        let chunk_b = vec![
            frame(2, &[("person", 0), ("person", 0), ("car", 2)]),
            frame(3, &[]),
        ];
        let chunk_a = vec![
            frame(0, &[("person", 0)]),
            frame(1, &[("cup", 41), ("car", 2), ("car", 2), ("car", 2)]),
        ];
        let r = merge_chunks(info(4), model(), [chunk_b, chunk_a], vec![], 2, 2.0, vec![]).unwrap();
        assert_eq!(
            r.frames.iter().map(|f| f.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let s = &r.summary;
        assert_eq!(s.frames_processed, 4);
        assert_eq!(s.frames_per_second, 2.0);
        assert_eq!(s.top_classes, ["car", "person", "cup"]);
        let car = &s.classes[0];
        assert_eq!((car.label.as_str(), car.objects, car.frames), ("car", 4, 2));
        assert_eq!(s.most_persons, Some(PeakFrame { index: 2, count: 2 }));
    }

    #[test]
    fn skipped_frames_are_listed_and_counted() {
        let r = merge_chunks(
            info(4),
            model(),
            [vec![frame(0, &[("person", 0)]), frame(3, &[])]],
            vec![2, 1],
            1,
            1.0,
            vec![],
        )
        .unwrap();
        assert_eq!(r.frames.iter().map(|f| f.index).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(r.skipped_frames, [1, 2]);
        assert_eq!(
            (r.summary.frames_processed, r.summary.frames_skipped),
            (2, 2)
        );
        assert!(r.warnings[0].contains("2 of 4 frames"), "{:?}", r.warnings);
    }

    #[test]
    fn gaps_doubles_and_strays_are_errors() {
        let merge = |n, chunks: Vec<Vec<FrameDetections>>, skipped: Vec<u64>| {
            merge_chunks(info(n), model(), chunks, skipped, 1, 1.0, vec![])
        };
        let err = merge(3, vec![vec![frame(0, &[]), frame(2, &[])]], vec![]);
        assert_eq!(err.unwrap_err(), MergeError::Missing(1));
        let err = merge(
            2,
            vec![vec![frame(0, &[]), frame(1, &[])], vec![frame(1, &[])]],
            vec![],
        );
        assert_eq!(err.unwrap_err(), MergeError::Duplicate(1));
        // A frame both detected and reported skipped is a double too.
        let err = merge(2, vec![vec![frame(0, &[]), frame(1, &[])]], vec![1]);
        assert_eq!(err.unwrap_err(), MergeError::Duplicate(1));
        let err = merge(2, vec![vec![frame(0, &[])]], vec![7]);
        assert!(matches!(
            err.unwrap_err(),
            MergeError::OutOfRange { index: 7, .. }
        ));
        let err = merge_chunks(
            info(1),
            model(),
            [vec![frame(5, &[])]],
            vec![],
            1,
            1.0,
            vec![],
        );
        assert!(matches!(
            err.unwrap_err(),
            MergeError::OutOfRange { index: 5, .. }
        ));
    }

    #[test]
    fn the_streamed_document_is_the_result_serde_writes() {
        let chunks = vec![
            (vec![frame(1, &[("person", 0)]), frame(0, &[])], vec![]),
            (vec![frame(3, &[("car", 2)])], vec![2]),
            (vec![], vec![4]),
        ];
        let mut writer = MergeWriter::start(Vec::new(), &info(5), &model()).unwrap();
        for (frames, skipped) in chunks.clone() {
            writer.chunk(frames, skipped).unwrap();
        }
        let (json, merged) = writer
            .finish(&info(5), 3, 1.0, vec!["truncated".into()])
            .unwrap();
        // Read back and written again by serde: the same bytes.
        let expected: VideoResult = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(merged.summary, expected.summary);
        assert_eq!(merged.warnings, expected.warnings);
        assert_eq!(expected.skipped_frames, [2, 4]);

        // Out of order across chunks is a double (or a gap), not something to sort out later.
        let mut writer = MergeWriter::start(Vec::new(), &info(4), &model()).unwrap();
        writer
            .chunk(vec![frame(2, &[]), frame(3, &[])], vec![])
            .unwrap_err();
        let mut writer = MergeWriter::start(Vec::new(), &info(4), &model()).unwrap();
        writer
            .chunk(vec![frame(0, &[]), frame(1, &[])], vec![])
            .unwrap();
        let err = writer.chunk(vec![frame(1, &[])], vec![]).unwrap_err();
        assert_eq!(err, MergeError::Duplicate(1));
        let writer = MergeWriter::start(Vec::new(), &info(4), &model()).unwrap();
        let err = writer.finish(&info(4), 1, 1.0, vec![]).unwrap_err();
        assert_eq!(err, MergeError::Missing(0));
    }
}
