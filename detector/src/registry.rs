//! Model registry: a model is `<name>.json` (its manifest) beside a TorchScript file in the
//! models directory (`ARGUS_MODELS_DIR`). Users add a model by dropping both there, or by
//! passing the manifest's path wherever a model name is taken.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::adapter::Adapter;
use crate::DetectorError;

/// The name of the model used when none is given.
pub use argus_pipeline::tasks::DEFAULT_MODEL;

/// A model manifest, as written in `<name>.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    /// TorchScript file, relative to the manifest's directory.
    file: PathBuf,
    adapter: Adapter,
    /// `[width, height]` of the model input.
    input_size: [u32; 2],
    /// Class names, indexed by class id.
    labels: Vec<String>,
    #[serde(default = "default_score_threshold")]
    score_threshold: f32,
    #[serde(default = "default_nms_iou")]
    nms_iou: f32,
    #[serde(default)]
    description: String,
    /// A face model's extras: landmarks and an embedding per face (see [`FacesSpec`]).
    #[serde(default)]
    faces: Option<FacesSpec>,
}

/// What a face model adds to its boxes (manifest key `faces`): named landmarks, and per face an
/// embedding that the TorchScript file's `embed` method makes from the face's square crop.
/// `embed` answers `[M, 1 + embedding_size]`: a face score, then the unit embedding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacesSpec {
    /// Landmark names, in the order the model gives them.
    pub landmarks: Vec<String>,
    /// Side, in pixels, of the square crop `embed` takes.
    pub crop_size: u32,
    /// The crop's side over the box's longer side (context around the face: hair, chin).
    pub crop_scale: f32,
    /// Values in an embedding.
    pub embedding_size: usize,
    /// A face whose crop `embed` scores lower is dropped: a second opinion on the detector,
    /// which also fires on animal faces and patterned things.
    pub min_face_score: f32,
}

fn default_score_threshold() -> f32 {
    0.3
}

fn default_nms_iou() -> f32 {
    0.5
}

/// A resolved model: everything needed to load and interpret it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
    pub adapter: Adapter,
    pub input_width: u32,
    pub input_height: u32,
    pub labels: Vec<String>,
    pub score_threshold: f32,
    pub nms_iou: f32,
    pub description: String,
    pub faces: Option<FacesSpec>,
}

impl ModelSpec {
    /// Reads and checks a manifest file.
    pub fn from_manifest(path: &Path) -> Result<ModelSpec, DetectorError> {
        let bad = |reason: String| DetectorError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if m.labels.is_empty() {
            return Err(bad("'labels' is empty".into()));
        }
        if m.input_size.contains(&0) {
            return Err(bad("'input_size' must be positive".into()));
        }
        if !(0.0..=1.0).contains(&m.score_threshold) || !(0.0..=1.0).contains(&m.nms_iou) {
            return Err(bad(
                "'score_threshold' and 'nms_iou' must lie in 0..=1".into()
            ));
        }
        if let Some(f) = &m.faces {
            if !(1..=1024).contains(&f.crop_size)
                || !(1.0..=4.0).contains(&f.crop_scale)
                || f.embedding_size == 0
                || !(0.0..=1.0).contains(&f.min_face_score)
            {
                return Err(bad("'faces' needs crop_size 1..=1024, crop_scale 1..=4, \
                     embedding_size > 0 and min_face_score 0..=1"
                    .into()));
            }
        }
        if m.adapter.needs_landmarks() && m.faces.is_none() {
            return Err(bad(format!("adapter '{}' needs 'faces'", m.adapter.name())));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(ModelSpec {
            name: m.name,
            path: dir.join(m.file),
            adapter: m.adapter,
            input_width: m.input_size[0],
            input_height: m.input_size[1],
            labels: m.labels,
            score_threshold: m.score_threshold,
            nms_iou: m.nms_iou,
            description: m.description,
            faces: m.faces,
        })
    }
}

/// The models directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    /// `$ARGUS_MODELS_DIR`, else where `scripts/setup.sh` puts models by default.
    pub fn default_dir() -> PathBuf {
        argus_common::paths::models_dir()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of the models whose manifests are in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names
    }

    /// Resolves a model name (`<dir>/<name>.json`) or a path to a manifest.
    pub fn resolve(&self, name_or_path: &str) -> Result<ModelSpec, DetectorError> {
        let as_path = Path::new(name_or_path);
        if name_or_path.ends_with(".json") && as_path.is_file() {
            return ModelSpec::from_manifest(as_path);
        }
        let manifest = self.dir.join(format!("{name_or_path}.json"));
        if manifest.is_file() {
            return ModelSpec::from_manifest(&manifest);
        }
        let names = self.names();
        Err(DetectorError::UnknownModel {
            name: name_or_path.to_string(),
            dir: self.dir.clone(),
            available: if names.is_empty() {
                "none; run scripts/setup.sh".into()
            } else {
                names.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("argus-registry-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn resolves_by_name_and_by_path_and_names_the_alternatives() {
        let dir = temp_dir("resolve");
        let body = r#"{"name":"m","file":"m.pt","adapter":"centernet","input_size":[64,32],"labels":["a","b"]}"#;
        let path = write(&dir, "m.json", body);
        let reg = Registry::new(&dir);
        let spec = reg.resolve("m").unwrap();
        assert_eq!((spec.input_width, spec.input_height), (64, 32));
        assert_eq!(spec.path, dir.join("m.pt"));
        assert_eq!(spec.score_threshold, 0.3);
        assert_eq!(reg.resolve(path.to_str().unwrap()).unwrap().name, "m");
        let err = reg.resolve("nope").unwrap_err().to_string();
        assert!(
            err.contains("unknown model 'nope'") && err.contains(": m)"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_manifests_with_the_reason() {
        let dir = temp_dir("bad");
        let cases = [
            ("garbage.json", "not json", "expected"),
            (
                "adapter.json",
                r#"{"name":"x","file":"x.pt","adapter":"magic","input_size":[1,1],"labels":["a"]}"#,
                "unknown variant `magic`",
            ),
            (
                "nolabels.json",
                r#"{"name":"x","file":"x.pt","adapter":"centernet","input_size":[1,1],"labels":[]}"#,
                "'labels' is empty",
            ),
            (
                "nofaces.json",
                r#"{"name":"x","file":"x.pt","adapter":"blazeface","input_size":[1,1],"labels":["face"]}"#,
                "adapter 'blazeface' needs 'faces'",
            ),
            (
                "badfaces.json",
                r#"{"name":"x","file":"x.pt","adapter":"blazeface","input_size":[1,1],"labels":["face"],
                    "faces":{"landmarks":[],"crop_size":0,"crop_scale":1.5,"embedding_size":8,"min_face_score":0.5}}"#,
                "crop_size 1..=1024",
            ),
            (
                "typo.json",
                r#"{"name":"x","file":"x.pt","adapter":"centernet","input_size":[1,1],"labels":["a"],"treshold":1}"#,
                "unknown field `treshold`",
            ),
        ];
        for (file, body, expected) in cases {
            let path = write(&dir, file, body);
            let err = ModelSpec::from_manifest(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{file}: {err}");
        }
    }
}
