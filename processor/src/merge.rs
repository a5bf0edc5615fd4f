//! Merging chunk results: frames in presentation order, each exactly once (or listed as
//! skipped: it could not be decoded), and the summary.

use std::collections::BTreeMap;

use argus_common::video::{ClassSummary, PeakFrame};
use argus_common::{FrameDetections, ModelInfo, Summary, VideoInfo, VideoResult};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    #[error("frame {0} is missing from the chunk results")]
    Missing(u64),
    #[error("frame {0} appears twice in the chunk results")]
    Duplicate(u64),
    #[error("frame {index} is beyond the video's {frame_count} frames")]
    OutOfRange { index: u64, frame_count: u64 },
}

/// Builds a video's result from its chunks' frames (in any order) and the frames the chunks
/// could not decode. Every frame of the video must be there exactly once, or be reported
/// skipped: a gap or a double is an error, never papered over.
pub fn merge_chunks(
    video: VideoInfo,
    model: ModelInfo,
    chunks: impl IntoIterator<Item = Vec<FrameDetections>>,
    mut skipped: Vec<u64>,
    chunk_count: u32,
    wall_time_s: f64,
    mut warnings: Vec<String>,
) -> Result<VideoResult, MergeError> {
    let n = video.frame_count;
    skipped.sort_unstable();
    skipped.dedup();
    if let Some(&index) = skipped.iter().find(|&&i| i >= n) {
        return Err(MergeError::OutOfRange {
            index,
            frame_count: n,
        });
    }
    let mut slots: Vec<Option<FrameDetections>> = vec![None; n as usize];
    for frame in chunks.into_iter().flatten() {
        let slot = slots
            .get_mut(frame.index as usize)
            .ok_or(MergeError::OutOfRange {
                index: frame.index,
                frame_count: n,
            })?;
        if slot.is_some() {
            return Err(MergeError::Duplicate(frame.index));
        }
        *slot = Some(frame);
    }
    let mut frames = Vec::with_capacity(slots.len() - skipped.len().min(slots.len()));
    let mut next_skipped = skipped.iter().peekable();
    for (i, slot) in slots.into_iter().enumerate() {
        let is_skipped = next_skipped.next_if_eq(&&(i as u64)).is_some();
        match (slot, is_skipped) {
            (Some(frame), false) => frames.push(frame),
            (None, true) => {}
            (Some(_), true) => return Err(MergeError::Duplicate(i as u64)),
            (None, false) => return Err(MergeError::Missing(i as u64)),
        }
    }
    if !skipped.is_empty() {
        warnings.push(format!(
            "{} of {} frames could not be decoded (damaged data) and were skipped: see skipped_frames",
            skipped.len(),
            n
        ));
    }
    let mut summary = summarize(&frames, &video, chunk_count, wall_time_s);
    summary.frames_skipped = skipped.len() as u64;
    Ok(VideoResult {
        video,
        model,
        frames,
        skipped_frames: skipped,
        warnings,
        summary,
    })
}

fn summarize(
    frames: &[FrameDetections],
    video: &VideoInfo,
    chunks: u32,
    wall_time_s: f64,
) -> Summary {
    let mut classes: BTreeMap<u32, ClassSummary> = BTreeMap::new();
    let mut most_persons: Option<PeakFrame> = None;
    for frame in frames {
        let mut in_frame: BTreeMap<u32, u64> = BTreeMap::new();
        for d in &frame.detections {
            *in_frame.entry(d.class_id).or_default() += 1;
            classes.entry(d.class_id).or_insert_with(|| ClassSummary {
                label: d.label.clone(),
                class_id: d.class_id,
                objects: 0,
                frames: 0,
            });
        }
        for (class_id, count) in in_frame {
            let class = classes.get_mut(&class_id).expect("inserted above");
            class.objects += count;
            class.frames += 1;
        }
        let persons = frame
            .detections
            .iter()
            .filter(|d| d.label == "person")
            .count() as u64;
        if persons > 0 && most_persons.as_ref().is_none_or(|p| persons > p.count) {
            most_persons = Some(PeakFrame {
                index: frame.index,
                count: persons,
            });
        }
    }
    let mut classes: Vec<ClassSummary> = classes.into_values().collect();
    classes.sort_by(|a, b| b.objects.cmp(&a.objects).then(a.class_id.cmp(&b.class_id)));
    Summary {
        frames_processed: frames.len() as u64,
        frames_skipped: 0,
        video_duration_s: video.duration_s,
        wall_time_s,
        frames_per_second: if wall_time_s > 0.0 {
            frames.len() as f64 / wall_time_s
        } else {
            0.0
        },
        chunks,
        top_classes: classes.iter().take(3).map(|c| c.label.clone()).collect(),
        classes,
        most_persons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_common::{BoundingBox, Detection};

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
            index,
            pts_ms: index as f64 * 40.0,
            detections: labels
                .iter()
                .map(|&(label, class_id)| Detection {
                    label: label.into(),
                    class_id,
                    score: 0.9,
                    bbox: BoundingBox::from([0.0, 0.0, 1.0, 1.0]),
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
}
