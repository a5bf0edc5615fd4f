//! The processor's side of photo collections (see `argus_pipeline::collections`):
//! `process_collection` fans a stored collection out as a chord of photo batches, and
//! `merge_collection` streams the batches' results into the collection's result document with
//! its summary. Memory stays flat with the number of photos: one batch at a time, and the
//! summary's sums.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use argus_common::state::VideoStatus;
use argus_common::storage::Storage;
use argus_pipeline::chord::{self, chord_of};
use argus_pipeline::collections::{
    DetectPhotos, ManifestEntry, MergeCollection, PhotoResult, ProcessCollection, StoredBatch,
    MAX_PHOTOS,
};
use argus_pipeline::run;
use argus_pipeline::store::RunStore;
use argus_pipeline::tasks::detector_queue;
use argus_queue::backend::TaskStatus;
use argus_queue::message::TaskMessage;
use argus_queue::worker::{TaskContext, TaskError, TaskOutput};
use serde::Serialize;
use serde_json::{json, Value};

use crate::tasks::ProcessorConfig;

pub async fn process_collection(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: ProcessCollection = ctx.message.payload().map_err(TaskError::permanent)?;
    p.options.validate().map_err(TaskError::Permanent)?;
    if p.photos > MAX_PHOTOS {
        return Err(TaskError::Permanent(format!(
            "{} photos: a collection holds at most {MAX_PHOTOS}",
            p.photos
        )));
    }
    let model = config.model_for(p.options.model.as_deref())?;
    let backend = &ctx.backend;
    let run = ctx.message.id.clone();
    if let Some(current) = backend
        .get_state(&p.collection_id)
        .await
        .map_err(TaskError::transient)?
    {
        if current.is_run(&run) && current.status.is_final() {
            run::settle(backend, &run, &current)
                .await
                .map_err(TaskError::transient)?;
            return Ok(None);
        }
    }
    let batches = p.options.batches(p.photos);
    let chunks = batches.len() as u32;
    run::advance(
        backend,
        &p.collection_id,
        &run,
        VideoStatus::Splitting,
        |_| {},
    )
    .await
    .map_err(TaskError::transient)?;
    let moved = run::advance(
        backend,
        &p.collection_id,
        &run,
        VideoStatus::Detecting,
        |s| {
            s.chunks_total = chunks as u64;
            s.frames_total = p.photos;
        },
    )
    .await
    .map_err(TaskError::transient)?;
    if moved.is_none() {
        tracing::info!(
            collection_id = p.collection_id,
            "cancelled or deleted: not fanned out"
        );
        return Ok(None);
    }
    let chord_id = chord_of(&run);
    // The model and the batch size pinned: the merge reads the batches by the same size,
    // whatever either default becomes meanwhile.
    let options = argus_pipeline::collections::CollectionOptions {
        model: Some(model.clone()),
        batch_photos: Some(p.options.batch_photos()),
        ..p.options.clone()
    };
    if batches.is_empty() {
        // Nothing to detect (every entry was refused): straight to the merge, which lists them.
        let merge = MergeCollection {
            collection_id: p.collection_id.clone(),
            chord_id: chord_id.clone(),
            batches: 0,
            photos: 0,
            options,
        };
        let mut message = TaskMessage::new(&merge).with_id(&chord_id);
        message.root_id = Some(run.clone());
        ctx.broker
            .send(argus_pipeline::tasks::PROCESSOR_QUEUE, &message)
            .await
            .map_err(TaskError::transient)?;
        return Ok(None);
    }
    let queue = detector_queue(&model, &config.default_model);
    for (batch, (first, count)) in batches.into_iter().enumerate() {
        let payload = DetectPhotos {
            collection_id: p.collection_id.clone(),
            chord_id: chord_id.clone(),
            batch: batch as u32,
            batches: chunks,
            first,
            count,
            options: options.clone(),
        };
        // Stable ids: a redelivered process_collection re-sends batches that count once.
        let mut message = TaskMessage::new(&payload)
            .with_id(chord::chunk_task_id(&chord_id, batch as u32))
            .with_group(&chord_id);
        message.root_id = Some(run.clone());
        message.parent_id = Some(run.clone());
        ctx.broker
            .send(&queue, &message)
            .await
            .map_err(TaskError::transient)?;
    }
    tracing::info!(
        collection_id = p.collection_id,
        photos = p.photos,
        batches = chunks,
        queue,
        "fanned out"
    );
    Ok(None)
}

/// The collection's summary: what its result's `summary` and `GET /collections/{id}` show.
#[derive(Debug, Default, Serialize)]
pub struct CollectionSummary {
    /// Entries listed (photos stored and entries refused on the way in).
    pub entries: u64,
    /// Photos detected.
    pub photos_detected: u64,
    /// Entries with an error (refused, or not readable as an image).
    pub photos_failed: u64,
    /// Detections per class.
    pub objects: BTreeMap<String, u64>,
    /// Photos with at least one detection, per class.
    pub photos_with: BTreeMap<String, u64>,
    /// A face model's faces: how many, and the mean of their embeddings (a unit vector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces: Option<FacesSummary>,
}

#[derive(Debug, Serialize)]
pub struct FacesSummary {
    pub count: u64,
    pub mean_embedding: Vec<f32>,
}

#[derive(Default)]
struct Sums {
    summary: CollectionSummary,
    embedding: Option<Vec<f64>>,
}

impl Sums {
    fn add(&mut self, photo: &PhotoResult) {
        self.summary.entries += 1;
        let Some(detections) = &photo.detections else {
            self.summary.photos_failed += 1;
            return;
        };
        self.summary.photos_detected += 1;
        let mut seen = std::collections::BTreeSet::new();
        for d in detections {
            *self.summary.objects.entry(d.label.clone()).or_default() += 1;
            seen.insert(d.label.as_str());
            if let Some(e) = &d.embedding {
                let sum = self.embedding.get_or_insert_with(|| vec![0.0; e.len()]);
                if sum.len() == e.len() {
                    sum.iter_mut().zip(e).for_each(|(s, v)| *s += *v as f64);
                    let faces = self.summary.faces.get_or_insert(FacesSummary {
                        count: 0,
                        mean_embedding: Vec::new(),
                    });
                    faces.count += 1;
                }
            }
        }
        for label in seen {
            *self
                .summary
                .photos_with
                .entry(label.to_string())
                .or_default() += 1;
        }
    }

    fn finish(mut self) -> CollectionSummary {
        if let (Some(faces), Some(sum)) = (&mut self.summary.faces, self.embedding) {
            // The mean's direction: the sum of unit vectors, normalised.
            let norm = sum
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
                .max(f64::MIN_POSITIVE);
            faces.mean_embedding = sum.iter().map(|v| (v / norm) as f32).collect();
        }
        self.summary
    }
}

/// The CSV export's header: one row per detection, and one per photo without any (empty
/// label) or with an error.
pub const CSV_HEADER: &str = "name,index,width,height,label,class_id,score,x1,y1,x2,y2,error\n";

/// A CSV field, quoted when it needs to be.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn write_csv(csv: &mut dyn Write, name: &str, photo: &PhotoResult) -> std::io::Result<()> {
    let name = csv_field(name);
    let index = if photo.index == u64::MAX {
        String::new()
    } else {
        photo.index.to_string()
    };
    let size = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    let (w, h) = (size(photo.width), size(photo.height));
    let error = csv_field(photo.error.as_deref().unwrap_or(""));
    match &photo.detections {
        Some(detections) if !detections.is_empty() => {
            for d in detections {
                let b = d.bbox;
                writeln!(
                    csv,
                    "{name},{index},{w},{h},{},{},{:.4},{:.1},{:.1},{:.1},{:.1},",
                    csv_field(&d.label),
                    d.class_id,
                    d.score,
                    b.x1,
                    b.y1,
                    b.x2,
                    b.y2
                )?;
            }
        }
        _ => writeln!(csv, "{name},{index},{w},{h},,,,,,,,{error}")?,
    }
    Ok(())
}

/// How the result writer fails: as the task does.
struct Failure(TaskError);

impl From<argus_common::storage::StorageError> for Failure {
    fn from(e: argus_common::storage::StorageError) -> Failure {
        Failure(TaskError::transient(e))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure(TaskError::transient(e))
    }
}

impl From<TaskError> for Failure {
    fn from(e: TaskError) -> Failure {
        Failure(e)
    }
}

/// A merge that failed: storage (transient) or a batch result that cannot be read.
fn storage_error(e: impl std::fmt::Display) -> TaskError {
    TaskError::transient(e)
}

/// Writes the result document: `{"collection_id", "model", "photos": [...], "summary"}`, the
/// photos in manifest order, each stored photo with its batch's result, each refused entry
/// with its error.
fn write_result(
    storage: &Storage,
    p: &MergeCollection,
    out: &mut dyn Write,
    csv: &mut dyn Write,
) -> Result<CollectionSummary, TaskError> {
    let manifest_path = storage
        .collection_manifest(&p.collection_id)
        .map_err(TaskError::permanent)?;
    let manifest = std::fs::File::open(&manifest_path).map_err(storage_error)?;
    // JSON Lines, read as the photos are written: one entry in memory at a time.
    let entries = std::io::BufRead::lines(std::io::BufReader::new(manifest)).map(|line| {
        let line = line.map_err(storage_error)?;
        serde_json::from_str::<ManifestEntry>(&line).map_err(TaskError::permanent)
    });
    let mut sums = Sums::default();
    let mut model: Option<Value> = None;
    let io = |e: std::io::Error| TaskError::transient(e);
    out.write_all(b"{\"collection_id\":").map_err(io)?;
    serde_json::to_writer(&mut *out, &p.collection_id).map_err(storage_error)?;
    out.write_all(b",\"photos\":[").map_err(io)?;
    // Batches are read one at a time, as the manifest's indices reach them.
    let size = p.options.batch_photos() as u64;
    let mut batch: Option<(u32, std::collections::HashMap<u64, PhotoResult>)> = None;
    for (i, entry) in entries.enumerate() {
        let entry = entry?;
        let photo = match entry.index {
            Some(index) => {
                let b = (index / size) as u32;
                if batch.as_ref().is_none_or(|(loaded, _)| *loaded != b) {
                    let bytes = storage
                        .read_chunk(&p.collection_id, &p.chord_id, b)
                        .map_err(storage_error)?
                        .ok_or_else(|| TaskError::transient(format!("batch {b} has no result")))?;
                    let stored: StoredBatch =
                        serde_json::from_slice(&bytes).map_err(TaskError::permanent)?;
                    drop(bytes);
                    if model.is_none() {
                        model = Some(stored.model);
                    }
                    batch = Some((b, stored.photos.into_iter().map(|r| (r.index, r)).collect()));
                }
                batch
                    .as_mut()
                    .and_then(|(_, photos)| photos.remove(&index))
                    .unwrap_or(PhotoResult {
                        index,
                        width: None,
                        height: None,
                        detections: None,
                        error: Some("no result for this photo".into()),
                    })
            }
            None => PhotoResult {
                index: u64::MAX,
                width: None,
                height: None,
                detections: None,
                error: Some(entry.error.clone().unwrap_or_else(|| "refused".into())),
            },
        };
        sums.add(&photo);
        write_csv(csv, &entry.name, &photo).map_err(io)?;
        if i > 0 {
            out.write_all(b",").map_err(io)?;
        }
        let mut item = serde_json::to_value(&photo).map_err(storage_error)?;
        item["name"] = json!(entry.name);
        if entry.index.is_none() {
            item.as_object_mut().map(|o| o.remove("index"));
        }
        serde_json::to_writer(&mut *out, &item).map_err(storage_error)?;
    }
    let summary = sums.finish();
    out.write_all(b"],\"model\":").map_err(io)?;
    serde_json::to_writer(&mut *out, &model.unwrap_or(Value::Null)).map_err(storage_error)?;
    out.write_all(b",\"summary\":").map_err(io)?;
    serde_json::to_writer(&mut *out, &summary).map_err(storage_error)?;
    out.write_all(b"}").map_err(io)?;
    Ok(summary)
}

pub async fn merge_collection(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: MergeCollection = ctx.message.payload().map_err(TaskError::permanent)?;
    p.options.validate().map_err(TaskError::Permanent)?;
    let backend = &ctx.backend;
    if let Some(done) = backend
        .get_result(&ctx.message.id)
        .await
        .map_err(TaskError::transient)?
    {
        if done["status"] == "SUCCESS" {
            return Ok(None);
        }
    }
    let run = ctx
        .message
        .root_id
        .clone()
        .unwrap_or_else(|| ctx.message.id.clone());
    let merging = run::advance(
        backend,
        &p.collection_id,
        &run,
        VideoStatus::Merging,
        |_| {},
    )
    .await
    .map_err(TaskError::transient)?;
    if merging.is_none() {
        tracing::info!(
            collection_id = p.collection_id,
            "cancelled or deleted: no merge"
        );
        forget(backend, &config.storage, &p).await?;
        return Ok(None);
    }
    let (storage, payload) = (config.storage.clone(), p.clone());
    let (_, summary) = tokio::task::spawn_blocking(move || {
        // The CSV export beside the photos, written in the same pass, renamed into place once
        // the document is.
        let dir = storage.collection_dir(&payload.collection_id)?;
        let csv_part = dir.join(format!(
            "detections.csv.{}.part",
            uuid::Uuid::new_v4().simple()
        ));
        let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_part)?);
        csv.write_all(CSV_HEADER.as_bytes())?;
        let written = storage.write_result_with(&payload.collection_id, |out| {
            write_result(&storage, &payload, out, &mut csv).map_err(Failure)
        });
        let finished = written.and_then(|w| {
            let file = csv
                .into_inner()
                .map_err(|e| Failure(TaskError::transient(e.into_error())))?;
            file.sync_all()
                .map_err(|e| Failure(TaskError::transient(e)))?;
            std::fs::rename(&csv_part, dir.join("detections.csv"))
                .map_err(|e| Failure(TaskError::transient(e)))?;
            Ok(w)
        });
        if finished.is_err() {
            let _ = std::fs::remove_file(&csv_part);
        }
        finished
    })
    .await
    .map_err(TaskError::transient)?
    .map_err(|f: Failure| f.0)?;
    let summary = serde_json::to_value(&summary).map_err(TaskError::permanent)?;
    // Beside the photos, for `GET /collections/{id}`: the document itself may be hundreds of
    // megabytes (an embedding per face), and the summary is its last part.
    let dir = config
        .storage
        .collection_dir(&p.collection_id)
        .map_err(TaskError::permanent)?;
    let text = summary.to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let part = dir.join(format!(
            "summary.json.{}.part",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&part, text)?;
        std::fs::rename(&part, dir.join("summary.json"))
    })
    .await
    .map_err(TaskError::transient)?
    .map_err(TaskError::transient)?;
    let succeeded = run::advance(
        backend,
        &p.collection_id,
        &run,
        VideoStatus::Succeeded,
        |s| {
            s.chunks_done = s.chunks_done.max(p.batches as u64);
            s.frames_done = s.frames_done.max(p.photos);
        },
    )
    .await
    .map_err(TaskError::transient)?
    .is_some();
    if succeeded {
        let result = json!({"collection_id": p.collection_id, "summary": summary});
        backend
            .store_result(&run, TaskStatus::Success, &result, None)
            .await
            .map_err(TaskError::transient)?;
    } else {
        config
            .storage
            .delete_result(&p.collection_id)
            .map_err(TaskError::transient)?;
    }
    forget(backend, &config.storage, &p).await?;
    Ok(Some(
        json!({"collection_id": p.collection_id, "merged": succeeded}),
    ))
}

async fn forget(
    backend: &argus_queue::backend::Backend,
    storage: &Storage,
    p: &MergeCollection,
) -> Result<(), TaskError> {
    chord::clean(backend, &p.chord_id)
        .await
        .map_err(TaskError::transient)?;
    storage
        .delete_run_chunks(&p.collection_id, &p.chord_id)
        .map_err(TaskError::transient)?;
    Ok(())
}
