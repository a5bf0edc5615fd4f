//! Exports of a result document: COCO-style JSON, CSV and MOT Challenge text. Written item by item into the
//! response stream from a blocking thread (no second copy of the result is built), in chunks
//! of [`CHUNK`] bytes; a client that goes away stops the writer at its next chunk.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Write};
use std::path::PathBuf;

use argus_common::VideoResult;
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use tokio::sync::mpsc;

use super::ResultFormat;

/// Bytes per response chunk.
pub const CHUNK: usize = 64 * 1024;

/// What the export says about where the result came from.
#[derive(Clone, Debug)]
pub struct Source {
    pub video_id: String,
    pub filename: String,
}

/// Reads a result document (on a blocking thread).
pub async fn read_result(path: PathBuf) -> io::Result<VideoResult> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(path)?;
        serde_json::from_reader(BufReader::new(file)).map_err(io::Error::other)
    })
    .await
    .map_err(io::Error::other)?
}

/// The export of `result` in `format` (COCO or CSV), as a stream of chunks.
pub fn stream(
    result: VideoResult,
    source: Source,
    format: ResultFormat,
) -> impl Stream<Item = Result<Bytes, io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buffer: Vec::with_capacity(CHUNK),
        };
        let written = match format {
            ResultFormat::Csv => write_csv(&result, &mut out),
            ResultFormat::Mot => write_mot(&result, &mut out),
            _ => write_coco(&result, &source, &mut out),
        }
        .and_then(|()| out.flush());
        if let Err(e) = written {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::error!(video_id = %source.video_id, error = %e, "export failed");
                // Ends the response with an error: the client sees a cut-off body, not a
                // complete-looking wrong one.
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Sends what is written as chunks on a channel (from a blocking thread).
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

pub const CSV_HEADER: &str = "frame,pts_ms,label,class_id,score,x1,y1,x2,y2,track_id,predicted\n";

/// One row per detection, frames in order; boxes `[x1, y1, x2, y2]` in pixels; `track_id`
/// empty for a detection in no track; `predicted` 1 for a box its track carried through a
/// frame the detector passed over (`stride`), else 0.
pub fn write_csv(result: &VideoResult, out: &mut impl Write) -> io::Result<()> {
    out.write_all(CSV_HEADER.as_bytes())?;
    for frame in &result.frames {
        for d in &frame.detections {
            let b = &d.bbox;
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                frame.index,
                frame.pts_ms,
                csv_field(&d.label),
                d.class_id,
                d.score,
                b.x1,
                b.y1,
                b.x2,
                b.y2,
                d.track_id.map(|t| t.to_string()).unwrap_or_default(),
                u8::from(d.predicted)
            )?;
        }
    }
    Ok(())
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[derive(Serialize)]
struct CocoInfo<'a> {
    description: &'a str,
    version: &'a str,
    video_id: &'a str,
    filename: &'a str,
    model: &'a str,
    date_created: String,
}

#[derive(Serialize)]
struct CocoVideo<'a> {
    id: u32,
    file_name: &'a str,
    width: u32,
    height: u32,
    fps: f64,
    frame_count: u64,
    duration_s: f64,
}

#[derive(Serialize)]
struct CocoImage<'a> {
    /// `frame_index + 1`: COCO ids start at 1.
    id: u64,
    video_id: u32,
    file_name: &'a str,
    width: u32,
    height: u32,
    frame_index: u64,
    pts_ms: f64,
}

#[derive(Serialize)]
struct CocoAnnotation {
    id: u64,
    image_id: u64,
    category_id: u32,
    /// `[x, y, width, height]` in pixels.
    bbox: [f32; 4],
    area: f32,
    iscrowd: u8,
    score: f32,
    /// The object across frames (as video COCO variants such as TAO and YouTube-VIS name it).
    #[serde(skip_serializing_if = "Option::is_none")]
    track_id: Option<u64>,
    /// Carried by its track through a frame the detector passed over, not detected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    predicted: bool,
}

#[derive(Serialize)]
struct CocoCategory<'a> {
    /// `class_id + 1`: COCO ids start at 1.
    id: u32,
    name: &'a str,
    supercategory: &'a str,
    class_id: u32,
}

/// COCO-style detections: one image per decoded frame (`id` = frame index + 1, with
/// `frame_index` and `pts_ms`), one annotation per detection (`bbox` = `[x, y, w, h]`,
/// `score`), and the categories seen (`id` = class id + 1).
pub fn write_coco(result: &VideoResult, source: &Source, out: &mut impl Write) -> io::Result<()> {
    let video = &result.video;
    out.write_all(b"{\"info\":")?;
    json(
        out,
        &CocoInfo {
            description: "Argus detections",
            version: "1.0",
            video_id: &source.video_id,
            filename: &source.filename,
            model: &result.model.name,
            date_created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    )?;
    out.write_all(b",\"licenses\":[],\"videos\":[")?;
    json(
        out,
        &CocoVideo {
            id: 1,
            file_name: &source.filename,
            width: video.width,
            height: video.height,
            fps: video.fps,
            frame_count: video.frame_count,
            duration_s: video.duration_s,
        },
    )?;
    out.write_all(b"],\"images\":[")?;
    for (i, frame) in result.frames.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        json(
            out,
            &CocoImage {
                id: frame.index + 1,
                video_id: 1,
                file_name: &source.filename,
                width: video.width,
                height: video.height,
                frame_index: frame.index,
                pts_ms: frame.pts_ms,
            },
        )?;
    }
    out.write_all(b"],\"annotations\":[")?;
    let mut categories = BTreeMap::new();
    let mut id = 0u64;
    for frame in &result.frames {
        for d in &frame.detections {
            categories.entry(d.class_id).or_insert(d.label.as_str());
            if id > 0 {
                out.write_all(b",")?;
            }
            id += 1;
            let (w, h) = (d.bbox.width(), d.bbox.height());
            json(
                out,
                &CocoAnnotation {
                    id,
                    image_id: frame.index + 1,
                    category_id: d.class_id + 1,
                    bbox: [d.bbox.x1, d.bbox.y1, w, h],
                    area: w * h,
                    iscrowd: 0,
                    score: d.score,
                    track_id: d.track_id,
                    predicted: d.predicted,
                },
            )?;
        }
    }
    out.write_all(b"],\"categories\":[")?;
    for (i, (class_id, name)) in categories.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        json(
            out,
            &CocoCategory {
                id: class_id + 1,
                name,
                supercategory: "",
                class_id,
            },
        )?;
    }
    out.write_all(b"]}")?;
    Ok(())
}

/// MOT Challenge text (`frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z`): one line per
/// tracked detection, frames from 1 as MOT counts them; detections in no track are left out
/// (MOT lists tracks).
pub fn write_mot(result: &VideoResult, out: &mut impl Write) -> io::Result<()> {
    for frame in &result.frames {
        for d in &frame.detections {
            let Some(track) = d.track_id else { continue };
            let b = &d.bbox;
            writeln!(
                out,
                "{},{},{},{},{},{},{},-1,-1,-1",
                frame.index + 1,
                track,
                b.x1,
                b.y1,
                b.width(),
                b.height(),
                d.score
            )?;
        }
    }
    Ok(())
}

/// One JSON value of the document.
fn json<T: Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(out, value).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn result() -> VideoResult {
        serde_json::from_value(json!({
            "video": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "codec": "h264", "width": 176,
                      "height": 144, "rotation": 0, "fps": 29.97, "frame_count": 3,
                      "duration_s": 0.1, "stream_index": 0, "time_base": [1, 30000]},
            "model": {"name": "coco-centernet", "adapter": "centernet", "input_size": [512, 512],
                      "score_threshold": 0.3, "devices": ["cpu"]},
            "frames": [
                {"index": 0, "pts_ms": 0.0, "detections": [
                    {"label": "person", "class_id": 0, "score": 0.75, "box": [10.0, 20.0, 110.0, 70.0], "track_id": 4},
                    {"label": "tie, red", "class_id": 27, "score": 0.5, "box": [1.0, 2.0, 3.0, 4.0]}]},
                {"index": 2, "pts_ms": 66.733, "detections": [
                    {"label": "person", "class_id": 0, "score": 0.625, "box": [0.0, 0.0, 8.0, 4.0]}]}
            ],
            "skipped_frames": [1],
            "summary": {"frames_processed": 2, "frames_skipped": 1, "video_duration_s": 0.1,
                        "wall_time_s": 1.0, "frames_per_second": 2.0, "chunks": 1,
                        "classes": [], "top_classes": [], "most_persons": null}
        }))
        .unwrap()
    }

    #[test]
    fn csv_rows() {
        let mut out = Vec::new();
        write_csv(&result(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "frame,pts_ms,label,class_id,score,x1,y1,x2,y2,track_id,predicted\n\
             0,0,person,0,0.75,10,20,110,70,4,0\n\
             0,0,\"tie, red\",27,0.5,1,2,3,4,,0\n\
             2,66.733,person,0,0.625,0,0,8,4,,0\n"
        );
    }

    #[test]
    fn mot_lines_are_the_tracked_detections() {
        let mut out = Vec::new();
        write_mot(&result(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1,4,10,20,100,50,0.75,-1,-1,-1\n"
        );
    }

    #[test]
    fn coco_document() {
        let source = Source {
            video_id: "v".into(),
            filename: "car.mp4".into(),
        };
        let mut out = Vec::new();
        write_coco(&result(), &source, &mut out).unwrap();
        let coco: Value = serde_json::from_slice(&out).unwrap();
        let images = coco["images"].as_array().unwrap();
        assert_eq!(images.len(), 2, "decoded frames only");
        assert_eq!(images[1]["id"], 3);
        assert_eq!(images[1]["frame_index"], 2);
        assert_eq!(images[1]["pts_ms"], 66.733);
        assert_eq!(images[1]["width"], 176);
        let annotations = coco["annotations"].as_array().unwrap();
        assert_eq!(annotations.len(), 3);
        assert_eq!(annotations[0]["bbox"], json!([10.0, 20.0, 100.0, 50.0]));
        assert_eq!(annotations[0]["area"], 5000.0);
        assert_eq!(annotations[0]["category_id"], 1);
        assert_eq!(annotations[0]["track_id"], 4);
        assert!(annotations[1].get("track_id").is_none());
        assert_eq!(annotations[1]["category_id"], 28);
        assert_eq!(annotations[2]["image_id"], 3);
        assert_eq!(
            annotations
                .iter()
                .map(|a| a["id"].clone())
                .collect::<Vec<_>>(),
            [json!(1), json!(2), json!(3)]
        );
        assert_eq!(
            coco["categories"],
            json!([{"id": 1, "name": "person", "supercategory": "", "class_id": 0},
                   {"id": 28, "name": "tie, red", "supercategory": "", "class_id": 27}])
        );
        assert_eq!(coco["info"]["video_id"], "v");
        assert_eq!(coco["videos"][0]["file_name"], "car.mp4");
    }

    #[tokio::test]
    async fn streams_in_chunks() {
        let mut big = result();
        let frame = big.frames[0].clone();
        big.frames = (0..5000)
            .map(|i| {
                let mut f = frame.clone();
                f.index = i;
                f
            })
            .collect();
        let source = Source {
            video_id: "v".into(),
            filename: "f".into(),
        };
        let mut expected = Vec::new();
        write_csv(&big, &mut expected).unwrap();
        let chunks: Vec<Bytes> =
            futures::StreamExt::collect::<Vec<_>>(stream(big, source, ResultFormat::Csv))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= 2 * CHUNK));
        assert_eq!(chunks.concat(), expected);
    }
}
