//! How users choose and run a model: the flags (and environment variables) every binary that
//! detects takes, and loading the model they name.

use std::path::PathBuf;

use anyhow::bail;
use argus_common::ModelInfo;
use clap::Args;

use crate::{Detector, DetectorOptions, Registry};

#[derive(Args)]
pub struct ModelArgs {
    /// Model name in the models directory, or the path of a model manifest (.json).
    #[arg(long, env = "ARGUS_MODEL", default_value = crate::registry::DEFAULT_MODEL)]
    pub model: String,
    /// Directory of model manifests and TorchScript files [default: $ARGUS_HOME/models].
    #[arg(long, env = "ARGUS_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// auto (every GPU, else CPU), cpu, cuda, or cuda:0,1.
    #[arg(long, env = "ARGUS_DEVICE", default_value = "auto")]
    pub device: String,
    /// Frames per forward pass on one device [default: 1 on CPU, 16 on a GPU].
    #[arg(long, env = "ARGUS_BATCH_SIZE")]
    pub batch_size: Option<usize>,
    /// CPU threads for inference, per replica [default: the cores shared among the replicas].
    /// Given alone, it means one replica with this many threads.
    #[arg(long, env = "ARGUS_TORCH_THREADS")]
    pub threads: Option<usize>,
    /// Model replicas on the CPU, each running its own batches (the multi-GPU mechanism, on
    /// cores) [default: one per core, 1 thread each, unless --threads is given].
    #[arg(long, env = "ARGUS_CPU_REPLICAS")]
    pub cpu_replicas: Option<usize>,
    /// Minimum score of a reported detection [default: the model's, 0.3 for coco-centernet].
    #[arg(long, env = "ARGUS_SCORE_THRESHOLD")]
    pub threshold: Option<f32>,
    /// Scale video frames down to the model's input while decoding (8-bit swscale) instead of
    /// in float afterwards: 1.1–1.3× faster at 1080p on 2 cores, but scores move by up to ~0.05.
    #[arg(long, env = "ARGUS_FAST_RESIZE")]
    pub fast_resize: bool,
}

/// Resolves and loads the model the flags name.
pub fn load_detector(args: &ModelArgs) -> anyhow::Result<Detector> {
    let registry = Registry::new(
        args.models_dir
            .clone()
            .unwrap_or_else(Registry::default_dir),
    );
    let spec = registry.resolve(&args.model)?;
    if let Some(t) = args.threshold {
        if !(0.0..=1.0).contains(&t) {
            bail!("--threshold must lie in 0..=1, got {t}");
        }
    }
    let options = DetectorOptions {
        device: args.device.parse()?,
        max_batch: args.batch_size,
        score_threshold: args.threshold,
        cpu_threads: args.threads,
        cpu_replicas: args.cpu_replicas,
        fast_resize: args.fast_resize,
    };
    Ok(Detector::load(spec, &options)?)
}

pub fn model_info(detector: &Detector) -> ModelInfo {
    let spec = detector.spec();
    ModelInfo {
        name: spec.name.clone(),
        adapter: spec.adapter.name().to_string(),
        input_size: [spec.input_width, spec.input_height],
        score_threshold: detector.score_threshold(),
        devices: detector.device_names(),
    }
}
