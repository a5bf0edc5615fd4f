//! Photo collections as jobs: many photos detected as one run, fanned out over the detector
//! queues as a chord of batches, like a video's chunks.
//!
//! - `process_collection` (queue `processor`): checks the model, moves the collection's state
//!   to detecting with its totals (batches as chunks, photos as frames) and sends one
//!   `detect_photos` per batch to the model's detector queue;
//! - `detect_photos` (a chord header task): detects its batch's photos, stores their results
//!   (a photo that cannot be read gets its error, the others go on), counts the batch once;
//!   the batch that completes the chord sends `merge_collection`;
//! - `merge_collection` (the body, queue `processor`): streams every batch's photos, in order,
//!   into the result document with the collection's summary.
//!
//! The collection's state is a [`argus_common::state::VideoState`] under its id, through the
//! same guarded updates as a video's ([`crate::run`]): the API's records, event streams and
//! webhooks follow it the same way.

use serde::{Deserialize, Serialize};

use argus_common::detection::DetectionFilter;
use argus_common::Detection;
use argus_queue::message::TaskPayload;

use crate::tasks::MAX_CLASSES;

pub const PROCESS_COLLECTION: &str = "process_collection";
pub const DETECT_PHOTOS: &str = "detect_photos";
pub const MERGE_COLLECTION: &str = "merge_collection";

/// Photos per `detect_photos` task: enough to fill a GPU batch, few enough that a retried
/// batch redoes little.
pub const DEFAULT_BATCH_PHOTOS: u32 = 32;
/// Most photos per batch task: a batch is detected whole within the task's time limit, and
/// its results (an embedding per face) are held at once.
pub const MAX_BATCH_PHOTOS: u32 = 256;
/// Most photos one collection may hold (the API's `ARGUS_MAX_COLLECTION_PHOTOS` is at most this).
pub const MAX_PHOTOS: u64 = 1_000_000;

/// What a collection's photos are detected with. `None` is the worker's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Photos per batch task (1..=MAX_BATCH_PHOTOS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_photos: Option<u32>,
}

impl CollectionOptions {
    pub fn validate(&self) -> Result<(), String> {
        crate::tasks::VideoOptions {
            model: self.model.clone(),
            score_threshold: self.score_threshold,
            classes: self.classes.clone(),
            ..Default::default()
        }
        .validate()?;
        if let Some(n) = self.batch_photos {
            if !(1..=MAX_BATCH_PHOTOS).contains(&n) {
                return Err(format!(
                    "batch_photos must lie in 1..={MAX_BATCH_PHOTOS}, got {n}"
                ));
            }
        }
        if self.classes.as_ref().is_some_and(|c| c.len() > MAX_CLASSES) {
            return Err(format!("classes must list 1 to {MAX_CLASSES} labels"));
        }
        Ok(())
    }

    pub fn batch_photos(&self) -> u32 {
        self.batch_photos
            .unwrap_or(DEFAULT_BATCH_PHOTOS)
            .clamp(1, MAX_BATCH_PHOTOS)
    }

    pub fn filter(&self) -> DetectionFilter {
        DetectionFilter {
            min_score: self.score_threshold,
            classes: self.classes.as_ref().map(|c| c.iter().cloned().collect()),
        }
    }

    /// The batches of `photos` photos: `(first, count)` each.
    pub fn batches(&self, photos: u64) -> Vec<(u64, u32)> {
        let size = self.batch_photos() as u64;
        (0..photos.div_ceil(size))
            .map(|b| (b * size, (photos - b * size).min(size) as u32))
            .collect()
    }
}

/// Detect a stored collection's photos (queue `processor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCollection {
    pub collection_id: String,
    /// Photos stored (`photos/0` … `photos/<photos - 1>`).
    pub photos: u64,
    #[serde(default)]
    pub options: CollectionOptions,
}

impl TaskPayload for ProcessCollection {
    const NAME: &'static str = PROCESS_COLLECTION;
    const ARGS: &'static [&'static str] = &["collection_id", "photos", "options"];
}

/// Detect photos `first .. first + count` of a collection: a chord header task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectPhotos {
    pub collection_id: String,
    pub chord_id: String,
    /// This batch's index in the chord.
    pub batch: u32,
    pub batches: u32,
    pub first: u64,
    pub count: u32,
    #[serde(default)]
    pub options: CollectionOptions,
}

impl TaskPayload for DetectPhotos {
    const NAME: &'static str = DETECT_PHOTOS;
    const ARGS: &'static [&'static str] = &[
        "collection_id",
        "chord_id",
        "batch",
        "batches",
        "first",
        "count",
        "options",
    ];
}

impl DetectPhotos {
    pub fn validate(&self) -> Result<(), String> {
        self.options.validate()?;
        if self.count == 0 || self.count > MAX_BATCH_PHOTOS || self.batch >= self.batches {
            return Err(format!(
                "batch {} of {} with {} photos",
                self.batch, self.batches, self.count
            ));
        }
        if self.first.saturating_add(self.count as u64) > MAX_PHOTOS {
            return Err("a collection holds at most a million photos".into());
        }
        Ok(())
    }
}

/// Merge a collection's batch results: the chord body (queue `processor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeCollection {
    pub collection_id: String,
    pub chord_id: String,
    pub batches: u32,
    pub photos: u64,
    #[serde(default)]
    pub options: CollectionOptions,
}

impl TaskPayload for MergeCollection {
    const NAME: &'static str = MERGE_COLLECTION;
    const ARGS: &'static [&'static str] =
        &["collection_id", "chord_id", "batches", "photos", "options"];
}

/// One entry of a collection's manifest (`collections/<id>/manifest.jsonl`, written by the API):
/// a photo stored under `index`, or an entry refused on the way in (a link, a path that leaves
/// the archive, a file over the size limit…), which the result lists with its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The name it came with (a form field's file name, or its path in the archive).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A batch's stored result: the model, and what became of each photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredBatch {
    pub model: serde_json::Value,
    pub photos: Vec<PhotoResult>,
}

/// What became of one photo: detected, or why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoResult {
    pub index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<Detection>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_photo_once() {
        let options = CollectionOptions {
            batch_photos: Some(4),
            ..Default::default()
        };
        assert_eq!(options.batches(10), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(options.batches(8), vec![(0, 4), (4, 4)]);
        assert!(options.batches(0).is_empty());
        assert_eq!(CollectionOptions::default().batches(33).len(), 2);
    }
}
