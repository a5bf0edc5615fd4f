//! The detector's side of photo collections: `detect_photos`, a chord header task. Decodes its
//! batch's photos from the collection's folder one at a time (a photo that cannot be read gets
//! its error; the others go on), detects them through the shared batcher (faces get their
//! embeddings there), stores the batch's results and counts the batch in the chord; the batch
//! that completes the chord sends `merge_collection`.

use std::sync::Arc;

use argus_pipeline::chord;
use argus_pipeline::collections::{DetectPhotos, MergeCollection, PhotoResult, StoredBatch};
use argus_pipeline::run;
use argus_pipeline::store::RunStore;
use argus_pipeline::tasks::PROCESSOR_QUEUE;
use argus_queue::message::TaskMessage;
use argus_queue::worker::{TaskContext, TaskError, TaskOutput};
use serde_json::json;

use crate::images::load_photo;
use crate::tasks::DetectorConfig;
use crate::Batcher;

/// Photos in flight per batcher device: decoding runs ahead of inference by this many.
const WINDOW_PER_DEVICE: usize = 2;
/// At most this many decoded photos in flight per task (up to 2048² RGB, 12 MB each).
const MAX_WINDOW: usize = 16;

fn skip(batch: u32, why: &str) -> TaskOutput {
    Ok(Some(json!({"batch": batch, "skipped": why})))
}

pub async fn detect_photos(
    ctx: TaskContext,
    batcher: Arc<Batcher>,
    config: Arc<DetectorConfig>,
) -> TaskOutput {
    let p: DetectPhotos = ctx.message.payload().map_err(TaskError::permanent)?;
    p.validate().map_err(TaskError::Permanent)?;
    if let Some(model) = &p.options.model {
        if *model != config.model.name {
            return Err(TaskError::Permanent(format!(
                "model '{model}' is not served here (this detector serves '{}')",
                config.model.name
            )));
        }
    }
    let backend = &ctx.backend;
    let run = ctx.message.root_id.clone().unwrap_or_default();
    match backend
        .get_state(&p.collection_id)
        .await
        .map_err(TaskError::transient)?
    {
        Some(state) if !state.is_run(&run) || state.status.is_final() => {
            return skip(p.batch, state.status.as_str());
        }
        None => return skip(p.batch, "deleted"),
        Some(_) => {}
    }
    if !config
        .storage
        .has_chunk(&p.collection_id, &p.chord_id, p.batch)
        .map_err(TaskError::transient)?
    {
        let watcher = crate::tasks::watch_video(
            &ctx,
            &p.collection_id,
            &run,
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
        );
        let (stop, cfg, payload, batcher) =
            (ctx.stop.clone(), config.clone(), p.clone(), batcher.clone());
        let detected = tokio::task::spawn_blocking(move || {
            detect_batch(&batcher, &cfg, &payload, &|| stop.reason())
        })
        .await
        .map_err(TaskError::transient);
        watcher.abort();
        let photos = match detected? {
            Ok(photos) => photos,
            Err(why) => {
                // Stopped: cancelled or deleted (skipped), or past the time limit (retried).
                if let Some(state) = backend.get_state(&p.collection_id).await.ok().flatten() {
                    if !state.is_run(&run) || state.status.is_final() {
                        return skip(p.batch, state.status.as_str());
                    }
                } else {
                    return skip(p.batch, "deleted");
                }
                return Err(TaskError::Transient(why));
            }
        };
        let stored = StoredBatch {
            model: serde_json::to_value(&config.model).map_err(TaskError::permanent)?,
            photos,
        };
        let (storage, payload) = (config.storage.clone(), p.clone());
        tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
            storage
                .write_chunk(
                    &payload.collection_id,
                    &payload.chord_id,
                    payload.batch,
                    &bytes,
                )
                .map_err(std::io::Error::other)
        })
        .await
        .map_err(TaskError::transient)?
        .map_err(TaskError::transient)?;
    }
    let done = chord::chunk_done(backend, &p.chord_id, p.batch, p.count as u64)
        .await
        .map_err(TaskError::transient)?;
    run::progress(backend, &p.collection_id, &run, done)
        .await
        .map_err(TaskError::transient)?;
    if done.chunks == p.batches as u64
        && chord::claim_body(backend, &p.chord_id, &ctx.message.id)
            .await
            .map_err(TaskError::transient)?
    {
        let merge = MergeCollection {
            collection_id: p.collection_id.clone(),
            chord_id: p.chord_id.clone(),
            batches: p.batches,
            photos: done.frames,
            options: p.options.clone(),
        };
        // The merge's id is its chord's: a body sent twice merges once.
        let mut message = TaskMessage::new(&merge)
            .with_id(&p.chord_id)
            .with_group(&p.chord_id);
        message.root_id = ctx.message.root_id.clone();
        message.parent_id = Some(ctx.message.id.clone());
        ctx.broker
            .send(PROCESSOR_QUEUE, &message)
            .await
            .map_err(TaskError::transient)?;
        tracing::info!(
            collection_id = p.collection_id,
            "chord complete: merge sent"
        );
    }
    Ok(Some(json!({"batch": p.batch, "batches_done": done.chunks})))
}

/// Detects the batch's photos, in order; `Err` when told to stop.
fn detect_batch(
    batcher: &Batcher,
    config: &DetectorConfig,
    p: &DetectPhotos,
    stop: &dyn Fn() -> Option<String>,
) -> Result<Vec<PhotoResult>, String> {
    let filter = p.options.filter();
    let window = (WINDOW_PER_DEVICE
        * batcher.detector().device_names().len().max(1)
        * batcher.detector().max_batch())
    .clamp(2, MAX_WINDOW);
    let (reply_tx, replies) = crossbeam_channel::unbounded();
    let mut results: Vec<PhotoResult> = Vec::with_capacity(p.count as usize);
    let mut slots = std::collections::HashMap::new();
    let mut in_flight = 0usize;
    let receive = |results: &mut Vec<PhotoResult>,
                   slots: &mut std::collections::HashMap<u64, usize>|
     -> Result<(), String> {
        let reply: crate::batcher::Reply = replies
            .recv()
            .map_err(|_| "the batcher has stopped".to_string())?;
        let slot = slots.remove(&reply.tag).expect("a reply for a photo sent");
        match reply.answer {
            Ok(mut detections) => {
                filter.apply(&mut detections);
                results[slot].detections = Some(detections);
            }
            Err(e) => results[slot].error = Some(format!("inference failed: {e}")),
        }
        Ok(())
    };
    for index in p.first..p.first + p.count as u64 {
        if let Some(why) = stop() {
            return Err(why);
        }
        let loaded = config
            .storage
            .collection_photo(&p.collection_id, index)
            .map_err(|e| e.to_string())
            .and_then(|path| load_photo(&path).map_err(|e| e.to_string()));
        let mut result = PhotoResult {
            index,
            width: None,
            height: None,
            detections: None,
            error: None,
        };
        match loaded {
            Ok(frame) => {
                result.width = Some(frame.source.0);
                result.height = Some(frame.source.1);
                slots.insert(index, results.len());
                results.push(result);
                batcher
                    .submit(frame, index, &reply_tx)
                    .map_err(|e| e.to_string())?;
                in_flight += 1;
                while in_flight >= window {
                    receive(&mut results, &mut slots)?;
                    in_flight -= 1;
                }
            }
            Err(e) => {
                // The server's paths stay out of what users read.
                result.error = Some(argus_common::state::without_paths(&e));
                results.push(result);
            }
        }
    }
    for _ in 0..in_flight {
        receive(&mut results, &mut slots)?;
    }
    Ok(results)
}
