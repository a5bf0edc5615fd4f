use std::path::PathBuf;

/// Everything that can go wrong in the detector, each with the context a user needs to act.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("unknown model '{name}' (models in {dir}: {available})")]
    UnknownModel {
        name: String,
        dir: PathBuf,
        available: String,
    },
    #[error("model manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("model file {path} not found (run scripts/setup.sh, or fix 'file' in its manifest)")]
    ModelMissing { path: PathBuf },
    #[error("cannot load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("model '{model}' gave an output of shape {shape:?}; its adapter '{adapter}' expects {expected}")]
    BadOutput {
        model: String,
        adapter: &'static str,
        shape: Vec<i64>,
        expected: &'static str,
    },
    #[error("model '{model}' gave class {class}, but its manifest has {labels} labels")]
    ClassOutOfRange {
        model: String,
        class: f32,
        labels: usize,
    },
    #[error("cannot read image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("invalid device '{0}': expected auto, cpu, cuda or cuda:N[,M...]")]
    BadDevice(String),
    #[error("device {device} requested, but libtorch sees {available} CUDA device(s)")]
    DeviceUnavailable { device: String, available: i64 },
    #[error("device {device} requested, but CUDA does not work here: {why}")]
    CudaUnavailable { device: String, why: String },
    #[error(transparent)]
    Media(#[from] argus_media::MediaError),
    #[error("inference failed: {0}")]
    Batch(String),
    #[error("inference failed: {0}")]
    Inference(#[from] tch::TchError),
}
