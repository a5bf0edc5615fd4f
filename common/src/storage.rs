//! The mounted video storage (`ARGUS_STORAGE_DIR`): uploads as `videos/<uuid4>.<ext>`,
//! results as `results/<uuid4>.json`, the chunk results of a run until its merge as
//! `chunks/<uuid4>/<chord>/<index>.json` (on the volume, not in Redis: they grow with the video). Every role sees the same volume. Uploads in progress are
//! received under `uploads/` (same volume, so moving one into `videos/` is an atomic rename)
//! and only moved once they are checked.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::result_index::ResultIndex;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("'{0}' is not a video id (uuid4)")]
    BadId(String),
    #[error("video {0} is not in storage")]
    Missing(String),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    pub fn new(root: impl Into<PathBuf>) -> Storage {
        Storage { root: root.into() }
    }

    /// The stored file of video `id`, whatever its extension.
    pub fn video_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        let dir = self.root.join("videos");
        for entry in std::fs::read_dir(&dir).map_err(|_| StorageError::Missing(id.clone()))? {
            let path = entry?.path();
            if path.file_stem().is_some_and(|s| s == id.as_str()) {
                return Ok(path);
            }
        }
        Err(StorageError::Missing(id))
    }

    /// [`Storage::video_path`], trying `<id>.<extension>` first (one `stat`, not a listing of
    /// every stored video).
    pub fn video_path_with(&self, id: &str, extension: &str) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        let ext = clean_extension(extension);
        if !ext.is_empty() {
            let path = self.root.join("videos").join(format!("{id}.{ext}"));
            if path.is_file() {
                return Ok(path);
            }
        }
        self.video_path(&id)
    }

    /// Where a new video with this id and extension goes (the directory is created).
    pub fn new_video_path(&self, id: &str, extension: &str) -> Result<PathBuf, StorageError> {
        self.file_in("videos", id, extension)
    }

    /// Where an upload of this id and extension is received before it is checked and moved to
    /// [`Storage::new_video_path`] (the directory is created). Same volume as `videos/`.
    pub fn new_upload_path(&self, id: &str, extension: &str) -> Result<PathBuf, StorageError> {
        self.file_in("uploads", id, extension)
    }

    fn file_in(&self, dir: &str, id: &str, extension: &str) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        let ext = clean_extension(extension);
        let dir = self.root.join(dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(if ext.is_empty() {
            id
        } else {
            format!("{id}.{ext}")
        }))
    }

    /// Where the result of video `id` is (or will be) written.
    pub fn result_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        Ok(self.root.join("results").join(format!("{id}.json")))
    }

    /// Where the annotated copy of video `id` is (or will be) written: beside its result, and
    /// removed with it.
    pub fn annotated_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        Ok(self
            .root
            .join("results")
            .join(format!("{id}.annotated.mp4")))
    }

    /// Where the index of video `id`'s result is ([`crate::result_index`]); it goes with the
    /// result (same name prefix).
    pub fn result_index_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        Ok(self.root.join("results").join(format!("{id}.json.index")))
    }

    /// Writes the index of video `id`'s result atomically (write, then rename).
    pub fn write_result_index(&self, id: &str, index: &ResultIndex) -> Result<(), StorageError> {
        let path = self.result_index_path(id)?;
        let part = path.with_extension(format!("index.{}.part", uuid::Uuid::new_v4().simple()));
        let written = (|| -> Result<(), StorageError> {
            let json = serde_json::to_vec(index).map_err(std::io::Error::from)?;
            let mut file = std::fs::File::create(&part)?;
            std::io::Write::write_all(&mut file, &json)?;
            file.sync_all()?;
            std::fs::rename(&part, &path)?;
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        written
    }

    /// The index of video `id`'s result, if there is one that describes a document of
    /// `result_len` bytes (one left by an earlier run of the video is not).
    pub fn read_result_index(
        &self,
        id: &str,
        result_len: u64,
    ) -> Result<Option<ResultIndex>, StorageError> {
        let bytes = match std::fs::read(self.result_index_path(id)?) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(serde_json::from_slice::<ResultIndex>(&bytes)
            .ok()
            .filter(|index| index.describes(result_len)))
    }

    /// Video `id`'s result, open, with its index: the stored one when it describes this
    /// document, else one made by reading the document through, and stored for the next reader
    /// (a result written before indexes existed is read through once, not once per request).
    pub fn open_result(
        &self,
        id: &str,
        frame_count: u64,
    ) -> std::io::Result<(std::fs::File, ResultIndex)> {
        let result = self.result_path(id).map_err(std::io::Error::other)?;
        let file = std::fs::File::open(&result)?;
        let len = file.metadata()?.len();
        if let Some(index) = self
            .read_result_index(id, len)
            .map_err(std::io::Error::other)?
        {
            return Ok((file, index));
        }
        let index = crate::result_index::scan(&file, frame_count).map_err(std::io::Error::other)?;
        if self.write_result_index(id, &index).is_ok() && !result.exists() {
            // Deleted while it was read: the index must not outlive it.
            let _ =
                std::fs::remove_file(self.result_index_path(id).map_err(std::io::Error::other)?);
        }
        Ok((file, index))
    }

    /// Deletes every file of video `id`: the stored video (whatever its extension), its result
    /// and a half-written result. Files already gone are fine. Returns how many were removed.
    pub fn delete_video(&self, id: &str) -> Result<usize, StorageError> {
        let id = parse_id(id)?;
        let mut removed = 0;
        let videos = self.root.join("videos");
        match std::fs::read_dir(&videos) {
            Ok(entries) => {
                for entry in entries {
                    let path = entry?.path();
                    if path.file_stem().is_some_and(|s| s == id.as_str()) {
                        removed += remove_if_present(&path)?;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        removed += self.delete_result(&id)?;
        removed += self.delete_chunks(&id, None)?;
        Ok(removed)
    }

    /// Deletes video `id`'s result, its index and annotated copy (and half-written ones).
    pub fn delete_result(&self, id: &str) -> Result<usize, StorageError> {
        let id = parse_id(id)?;
        let results = self.root.join("results");
        let entries = match std::fs::read_dir(&results) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        // The result, its index, its annotated copy and any of their half-written files.
        let prefix = format!("{id}.");
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                removed += remove_if_present(&entry.path())?;
            }
        }
        Ok(removed)
    }

    /// The chunk results of run `chord` of video `id`.
    fn chunk_dir(&self, id: &str, chord: &str) -> Result<PathBuf, StorageError> {
        Ok(self
            .root
            .join("chunks")
            .join(parse_id(id)?)
            .join(parse_id(chord)?))
    }

    /// Stores chunk `index`'s result for run `chord` of video `id`, atomically: two deliveries
    /// of one chunk may write at once, and a reader sees one whole file or none.
    pub fn write_chunk(
        &self,
        id: &str,
        chord: &str,
        index: u32,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let dir = self.chunk_dir(id, chord)?;
        std::fs::create_dir_all(&dir)?;
        let part = dir.join(format!("{index}.{}.part", uuid::Uuid::new_v4().simple()));
        // Synced before the rename: after a crash a chunk is whole or absent, never an empty
        // file that says the chunk is done.
        let written = std::fs::File::create(&part)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, bytes)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&part, dir.join(format!("{index}.json"))));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
        Ok(())
    }

    /// Chunk `index`'s stored result for run `chord` of video `id`, if there is one.
    pub fn read_chunk(
        &self,
        id: &str,
        chord: &str,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.chunk_dir(id, chord)?.join(format!("{index}.json"));
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether chunk `index` of run `chord` of video `id` has a stored result.
    pub fn has_chunk(&self, id: &str, chord: &str, index: u32) -> Result<bool, StorageError> {
        Ok(self
            .chunk_dir(id, chord)?
            .join(format!("{index}.json"))
            .is_file())
    }

    /// Deletes the chunk results of video `id`'s runs, but those of run `keep`. Returns how many
    /// runs' results were removed.
    pub fn delete_chunks(&self, id: &str, keep: Option<&str>) -> Result<usize, StorageError> {
        let dir = self.root.join("chunks").join(parse_id(id)?);
        let keep = keep.map(parse_id).transpose()?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            if keep.as_deref().is_some_and(|k| entry.file_name() == k) {
                continue;
            }
            remove_dir_racing(&entry.path())?;
            removed += 1;
        }
        if keep.is_none() {
            let _ = std::fs::remove_dir(&dir); // gone, or a run started meanwhile: fine
        }
        Ok(removed)
    }

    /// Removes uploads older than `age` from `uploads/`: what a process that died mid-upload
    /// left behind. Younger ones may be in progress in another process sharing the volume.
    pub fn sweep_uploads(&self, age: Duration) -> Result<usize, StorageError> {
        let dir = self.root.join("uploads");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let modified = entry.metadata()?.modified()?;
            if now.duration_since(modified).unwrap_or_default() >= age {
                if entry.file_type()?.is_dir() {
                    // A collection being received ([`Storage::new_collection_staging`]).
                    remove_dir_racing(&entry.path())?;
                    removed += 1;
                } else {
                    removed += remove_if_present(&entry.path())?;
                }
            }
        }
        Ok(removed)
    }

    /// Writes a video's result file atomically (write, then rename).
    pub fn write_result(&self, id: &str, json: &[u8]) -> Result<PathBuf, StorageError> {
        let (path, ()) =
            self.write_result_with(id, |out| out.write_all(json).map_err(StorageError::from))?;
        Ok(path)
    }

    /// Writes a video's result file as `write` produces it (buffered), atomically: into
    /// `results/<id>.json.part`, renamed once `write` succeeded, removed when it failed.
    pub fn write_result_with<T, E: From<StorageError>>(
        &self,
        id: &str,
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<T, E>,
    ) -> Result<(PathBuf, T), E> {
        let id = parse_id(id)?;
        let dir = self.root.join("results");
        std::fs::create_dir_all(&dir).map_err(StorageError::from)?;
        let path = dir.join(format!("{id}.json"));
        // A name of its own: two merges of one video (a redelivery beside the first) never
        // write into, truncate or remove each other's file.
        let part = dir.join(format!("{id}.json.{}.part", uuid::Uuid::new_v4().simple()));
        let written = (|| -> Result<T, E> {
            let file = std::fs::File::create(&part).map_err(StorageError::from)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let value = write(&mut out)?;
            let file = out
                .into_inner()
                .map_err(|e| StorageError::from(e.into_error()))?;
            file.sync_all().map_err(StorageError::from)?;
            std::fs::rename(&part, &path).map_err(StorageError::from)?;
            Ok(value)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        Ok((path, written?))
    }

    /// The folder of photo collection `id`: `photos/<index>` (the photos as received, under
    /// their index: no name from an upload or an archive is ever a path here) and
    /// `manifest.jsonl` (each entry's original name, size, or why it was refused, one JSON
    /// object a line, in the order received).
    pub fn collection_dir(&self, id: &str) -> Result<PathBuf, StorageError> {
        Ok(self.root.join("collections").join(parse_id(id)?))
    }

    /// Where a collection is received before it is complete: moved to
    /// [`Storage::collection_dir`] in one rename, or removed.
    pub fn new_collection_staging(&self, id: &str) -> Result<PathBuf, StorageError> {
        let dir = self
            .root
            .join("uploads")
            .join(format!("{}.collection", parse_id(id)?));
        std::fs::create_dir_all(dir.join("photos"))?;
        Ok(dir)
    }

    /// Photo `index` of collection `id`.
    pub fn collection_photo(&self, id: &str, index: u64) -> Result<PathBuf, StorageError> {
        Ok(self
            .collection_dir(id)?
            .join("photos")
            .join(index.to_string()))
    }

    /// Collection `id`'s manifest.
    pub fn collection_manifest(&self, id: &str) -> Result<PathBuf, StorageError> {
        Ok(self.collection_dir(id)?.join("manifest.jsonl"))
    }

    /// Removes collection `id`: its photos, its result, its batch results. Returns how many of
    /// the three were there.
    pub fn delete_collection(&self, id: &str) -> Result<usize, StorageError> {
        let mut removed = 0;
        let dir = self.collection_dir(id)?;
        if dir.exists() {
            remove_dir_racing(&dir)?;
            removed += 1;
        }
        removed += self.delete_result(id)?;
        self.delete_chunks(id, None)?;
        Ok(removed)
    }

    /// Deletes the chunk results of run `chord` of video `id` (after its merge).
    pub fn delete_run_chunks(&self, id: &str, chord: &str) -> Result<(), StorageError> {
        remove_dir_racing(&self.chunk_dir(id, chord)?)
    }

    /// Removes the chunk results of runs untouched for `age`: what a run that failed, was
    /// cancelled, or lost a late chunk after its merge left behind (the merge, a DELETE and a
    /// video's next run remove the rest). Returns how many runs' results were removed.
    pub fn sweep_chunks(&self, age: Duration) -> Result<usize, StorageError> {
        let root = self.root.join("chunks");
        let videos = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for video in videos {
            let video = video?.path();
            let Ok(runs) = std::fs::read_dir(&video) else {
                continue;
            };
            for run in runs {
                let run = run?;
                let modified = run.metadata()?.modified()?;
                if now.duration_since(modified).unwrap_or_default() >= age {
                    remove_dir_racing(&run.path())?;
                    removed += 1;
                }
            }
            let _ = std::fs::remove_dir(&video); // only when empty
        }
        Ok(removed)
    }
}

/// An extension as stored: ASCII letters and digits only, at most 8 of them.
pub fn clean_extension(extension: &str) -> String {
    extension
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect()
}

/// Removes a directory tree that a late writer may be adding to: a file created between the
/// walk and the last `rmdir` fails it with "not empty", so it is tried again a few times.
fn remove_dir_racing(path: &Path) -> Result<(), StorageError> {
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if attempts < 3 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

fn remove_if_present(path: &Path) -> Result<usize, StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(1),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Ids are uuids: nothing else may become a path.
fn parse_id(id: &str) -> Result<String, StorageError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| StorageError::BadId(id.chars().take(64).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_videos_by_id_and_refuses_paths() {
        let root = std::env::temp_dir().join(format!("argus-storage-{}", std::process::id()));
        let storage = Storage::new(&root);
        let id = uuid::Uuid::new_v4().to_string();
        let path = storage.new_video_path(&id, "mp4").unwrap();
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(storage.video_path(&id).unwrap(), path);
        assert!(matches!(
            storage.video_path("../../etc/passwd"),
            Err(StorageError::BadId(_))
        ));
        let other = uuid::Uuid::new_v4().to_string();
        assert!(matches!(
            storage.video_path(&other),
            Err(StorageError::Missing(_))
        ));
        let result = storage.write_result(&id, b"{}").unwrap();
        assert_eq!(std::fs::read(result).unwrap(), b"{}");
    }

    #[test]
    fn deletes_a_videos_files_and_sweeps_old_uploads() {
        let root = std::env::temp_dir().join(format!(
            "argus-storage-delete-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let storage = Storage::new(&root);
        let id = uuid::Uuid::new_v4().to_string();
        let other = uuid::Uuid::new_v4().to_string();
        assert_eq!(storage.delete_video(&id).unwrap(), 0, "nothing there yet");
        std::fs::write(storage.new_video_path(&id, "mp4").unwrap(), b"v").unwrap();
        std::fs::write(storage.new_video_path(&other, "mkv").unwrap(), b"w").unwrap();
        let result = storage.write_result(&id, b"{}").unwrap();
        assert_eq!(storage.result_path(&id).unwrap(), result);
        assert_eq!(storage.delete_video(&id).unwrap(), 2);
        assert!(matches!(
            storage.video_path(&id),
            Err(StorageError::Missing(_))
        ));
        assert!(!result.exists());
        assert!(storage.video_path(&other).is_ok(), "other videos stay");
        assert!(matches!(
            storage.delete_video("../x"),
            Err(StorageError::BadId(_))
        ));

        let upload = storage.new_upload_path(&id, "m.p4!").unwrap();
        assert_eq!(upload, root.join("uploads").join(format!("{id}.mp4")));
        std::fs::write(&upload, b"partial").unwrap();
        assert_eq!(storage.sweep_uploads(Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(storage.sweep_uploads(Duration::ZERO).unwrap(), 1);
        assert!(!upload.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn chunk_results_per_run_and_their_cleanup() {
        let root = std::env::temp_dir().join(format!(
            "argus-storage-chunks-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let storage = Storage::new(&root);
        let id = uuid::Uuid::new_v4().to_string();
        let (run_a, run_b) = (
            uuid::Uuid::new_v4().to_string(),
            uuid::Uuid::new_v4().to_string(),
        );
        assert!(!storage.has_chunk(&id, &run_a, 0).unwrap());
        assert_eq!(storage.read_chunk(&id, &run_a, 0).unwrap(), None);
        storage.write_chunk(&id, &run_a, 0, b"first").unwrap();
        storage.write_chunk(&id, &run_a, 0, b"again").unwrap(); // a redelivery rewrites it
        storage.write_chunk(&id, &run_b, 3, b"b").unwrap();
        assert!(storage.has_chunk(&id, &run_a, 0).unwrap());
        assert_eq!(
            storage.read_chunk(&id, &run_a, 0).unwrap().unwrap(),
            b"again"
        );
        // A run never reads another's.
        assert_eq!(storage.read_chunk(&id, &run_b, 0).unwrap(), None);
        // Ids are UUIDs: no path of anyone's choosing.
        assert!(storage.write_chunk("../x", &run_a, 0, b"x").is_err());
        assert!(storage.write_chunk(&id, "../../etc", 0, b"x").is_err());
        // No part file is left behind.
        let dir = root.join("chunks").join(&id).join(&run_a);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["0.json"]);

        // A new run removes the others'; the merge removes its own; a DELETE removes all.
        assert_eq!(storage.delete_chunks(&id, Some(&run_b)).unwrap(), 1);
        assert!(!storage.has_chunk(&id, &run_a, 0).unwrap());
        assert!(storage.has_chunk(&id, &run_b, 3).unwrap());
        storage.delete_run_chunks(&id, &run_b).unwrap();
        assert!(!storage.has_chunk(&id, &run_b, 3).unwrap());
        storage.write_chunk(&id, &run_a, 1, b"late").unwrap();
        assert_eq!(storage.sweep_chunks(Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(storage.delete_video(&id).unwrap(), 1);
        assert!(!root.join("chunks").join(&id).exists());
        // What nothing else removes, the sweep does.
        storage.write_chunk(&id, &run_a, 1, b"late").unwrap();
        assert_eq!(storage.sweep_chunks(Duration::ZERO).unwrap(), 1);
        assert!(!root.join("chunks").join(&id).exists());

        // Result part files are removed with the result, whatever their suffix.
        let (_, ()) = storage
            .write_result_with(&id, |out| {
                std::io::Write::write_all(out, b"{}").map_err(StorageError::from)
            })
            .unwrap();
        std::fs::write(
            root.join("results").join(format!("{id}.json.abc.part")),
            b"x",
        )
        .unwrap();
        assert_eq!(storage.delete_result(&id).unwrap(), 2);
        let failed: Result<(PathBuf, ()), StorageError> =
            storage.write_result_with(&id, |_| Err(StorageError::Missing("on purpose".into())));
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read_dir(root.join("results")).unwrap().count(),
            0,
            "a failed write leaves nothing"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
