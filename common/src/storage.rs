//! The mounted video storage (`ARGUS_STORAGE_DIR`): uploads as `videos/<uuid4>.<ext>`,
//! results as `results/<uuid4>.json`. Every role sees the same volume.

use std::path::PathBuf;

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

    /// Where a new video with this id and extension goes (the directory is created).
    pub fn new_video_path(&self, id: &str, extension: &str) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        let ext: String = extension
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let dir = self.root.join("videos");
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(if ext.is_empty() {
            id
        } else {
            format!("{id}.{ext}")
        }))
    }

    /// Writes a video's result file atomically (write, then rename).
    pub fn write_result(&self, id: &str, json: &[u8]) -> Result<PathBuf, StorageError> {
        let id = parse_id(id)?;
        let dir = self.root.join("results");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{id}.json"));
        let part = dir.join(format!("{id}.json.part"));
        std::fs::write(&part, json)?;
        std::fs::rename(&part, &path)?;
        Ok(path)
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
}
