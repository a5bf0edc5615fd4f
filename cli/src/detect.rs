//! `argus detect`: photos, or one video, through the model; results printed and optionally
//! written as JSON (and, for a video, drawn into an annotated copy).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use argus_common::{ImageOutcome, ImageResult, ImagesResult, VideoResult};
use argus_detector::images::{detect_images, is_image};
use argus_detector::{Batcher, Detection};

use crate::embedded::{run_video, PipelineOptions};
use crate::progress::Reporter;
use crate::DetectArgs;
use argus_detector::config::{load_detector, model_info};

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let videos: Vec<&Path> = args
        .inputs
        .iter()
        .map(|p| p.as_path())
        .filter(|p| !is_image(p))
        .collect();
    match (videos.len(), args.inputs.len()) {
        (0, _) => {
            if args.annotate.is_some() {
                bail!("--annotate takes a video");
            }
            run_images(args)
        }
        (1, 1) => run_one_video(&args),
        _ => bail!(
            "give photos, or one video; {} is not a photo (jpeg, png, webp, bmp, tiff, gif)",
            videos[0].display()
        ),
    }
}

fn run_one_video(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let path = &args.inputs[0];
    let detector = Arc::new(load_detector(&args.model)?);
    let model = model_info(&detector);
    let tasks = args.pipeline.tasks.unwrap_or(detector.chunk_tasks());
    let (batcher, local_loop) = Batcher::start_here(detector, Duration::from_millis(5));
    let options = PipelineOptions {
        chunk_size: args.pipeline.chunk_size,
        tasks,
        decode_threads: args.pipeline.decode_threads,
    };
    let progress = Reporter::for_stderr(args.quiet);
    // The pipeline runs on a spawned thread; this (main) thread serves the first device.
    let outcome = std::thread::scope(|scope| {
        let pipeline = scope.spawn(|| {
            let outcome = run_video(&batcher, model, path, &options, &progress);
            drop(batcher); // ends the local loop
            outcome
        });
        local_loop.run();
        pipeline.join().expect("pipeline thread panicked")
    });
    progress.finish();
    let (plan, result) = match outcome {
        Ok(done) => done,
        Err(e) => {
            // Media errors name the file (and chunk) themselves.
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    print_video_summary(path, &result);
    if let Some(out) = &args.output {
        let json = serde_json::to_vec_pretty(&result)?;
        std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
        println!("result: {}", out.display());
    }
    if let Some(out) = &args.annotate {
        argus_media::annotate::annotate_video(path, &result.video, &result.frames, out)?;
        println!("annotated video: {}", out.display());
    }
    let mut partial = false;
    if let Some(why) = plan.truncated {
        eprintln!(
            "error: {} is truncated ({why}); the {} frames before the cut were processed",
            path.display(),
            result.summary.frames_processed
        );
        partial = true;
    }
    if !result.skipped_frames.is_empty() {
        eprintln!(
            "error: {}: {} of {} frames could not be decoded (damaged data) and were skipped; the others were processed (skipped_frames in the result)",
            path.display(),
            result.skipped_frames.len(),
            result.video.frame_count
        );
        partial = true;
    }
    if partial {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_video_summary(path: &Path, result: &VideoResult) {
    let (v, s) = (&result.video, &result.summary);
    println!(
        "{} ({}x{}, {} frames, {:.1} s): {} chunks in {:.1} s, {:.1} frames/s",
        path.display(),
        v.width,
        v.height,
        s.frames_processed,
        v.duration_s,
        s.chunks,
        s.wall_time_s,
        s.frames_per_second
    );
    for class in s.classes.iter().take(10) {
        println!(
            "  {:<14} {:>6} objects in {:>6} frames",
            class.label, class.objects, class.frames
        );
    }
    if let Some(p) = &s.most_persons {
        println!("  most persons: {} in frame {}", p.count, p.index);
    }
}

fn run_images(args: DetectArgs) -> anyhow::Result<ExitCode> {
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
