//! `argus detect`: photos through the model, results printed and optionally written as JSON.

use std::process::ExitCode;

use anyhow::{bail, Context};
use argus_common::{ImageOutcome, ImageResult, ImagesResult, ModelInfo};
use argus_detector::images::detect_images;
use argus_detector::{Detection, Detector, DetectorOptions, Registry};

use crate::{DetectArgs, ModelArgs};

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

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let detector = load_detector(&args.model)?;
    let mut images = Vec::with_capacity(args.inputs.len());
    detect_images(&detector, &args.inputs, |outcome| {
        let path = outcome.path.display().to_string();
        let outcome = match outcome.result {
            Ok((frame, detections)) => {
                println!(
                    "{path} ({}x{}): {}",
                    frame.width,
                    frame.height,
                    count(&detections)
                );
                for d in &detections {
                    println!("  {}", describe(d));
                }
                ImageOutcome::Detected {
                    width: frame.width,
                    height: frame.height,
                    detections,
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ImageOutcome::Failed {
                    error: e.to_string(),
                }
            }
        };
        images.push(ImageResult { path, outcome });
    })?;
    let failed = images
        .iter()
        .filter(|i| matches!(i.outcome, ImageOutcome::Failed { .. }))
        .count();
    if let Some(path) = &args.output {
        let result = ImagesResult {
            model: model_info(&detector),
            images,
        };
        let json = serde_json::to_vec_pretty(&result)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if failed > 0 {
        eprintln!("{failed} of {} inputs failed", args.inputs.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn count(detections: &[Detection]) -> String {
    match detections.len() {
        1 => "1 object".into(),
        n => format!("{n} objects"),
    }
}

fn describe(d: &Detection) -> String {
    let b = d.bbox;
    format!(
        "{:<14} {:.2}  [{:.0}, {:.0}, {:.0}, {:.0}]",
        d.label, d.score, b.x1, b.y1, b.x2, b.y2
    )
}
