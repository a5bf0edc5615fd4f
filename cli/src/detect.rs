//! `argus detect`: photos, or one video, through the model; results printed and optionally
//! written as JSON (and, for a video, drawn into an annotated copy). A video goes through the
//! pipeline's own workers in this process (`crate::embedded`), as an upload does through the
//! distributed ones: the same plan and checks, chord, merge and state transitions, so the
//! two modes cannot drift.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use argus_common::state::{VideoState, VideoStatus};
use argus_common::storage::Storage;
use argus_common::{ImageOutcome, ImageResult, ImagesResult, Limits, VideoResult};
use argus_detector::config::{load_detector, model_info};
use argus_detector::images::{detect_images, is_image};
use argus_detector::Detection;
use argus_pipeline::run;
use argus_pipeline::store::RunStore;
use argus_pipeline::tasks::{ProcessVideo, VideoOptions, PROCESSOR_QUEUE};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use tokio::sync::watch;

use crate::embedded::Workers;
use crate::progress::Reporter;
use crate::DetectArgs;

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
            if args.video.options()? != VideoOptions::default() {
                bail!("--no-track, --zones, --lines, --stride and --keyframes-only take a video");
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
    let options = args.video.options()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let detector = Arc::new(load_detector(&args.model)?);
    let scratch = match Scratch::holding(path) {
        Ok(scratch) => scratch,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    // Ctrl-C or SIGTERM: the scratch directory goes, then the process (nothing to finish).
    // Installed before anything is written there.
    let root = scratch.root.clone();
    let (armed_tx, armed) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        interrupted(armed_tx).await;
        let _ = std::fs::remove_dir_all(&root);
        // _exit, not exit: libtorch's static destructors must not run under its own threads
        // still at work (exit() here ended in a segmentation fault).
        // SAFETY: ends the process at once; nothing after it runs.
        unsafe { libc::_exit(130) };
    });
    let _ = armed.recv_timeout(Duration::from_secs(5));
    let storage = Storage::new(&scratch.root);
    // Bounded all the same: a chunk or a plan that hangs ends with an error one day.
    let time_limit = Duration::from_secs(TASK_TIME_LIMIT_S);
    let workers = Workers::new(
        &runtime,
        detector,
        storage.clone(),
        &args.pipeline,
        Limits::default(),
        time_limit,
    )?;
    let (broker, backend) = (workers.broker.clone(), workers.backend.clone());
    let progress = Arc::new(Reporter::for_stderr(args.quiet));
    let (stop_tx, stop) = watch::channel(false);
    let driver = runtime.spawn({
        let (video_id, progress) = (scratch.video_id.clone(), progress.clone());
        async move {
            let outcome = drive(&broker, &backend, &video_id, options, &progress).await;
            let _ = stop_tx.send(true);
            outcome
        }
    });
    workers.run(&runtime, stop);
    let outcome = runtime.block_on(driver)?;
    progress.finish();
    let state = outcome?;
    if state.status != VideoStatus::Succeeded {
        // Media errors say what is wrong with the file, naming it by its name in the scratch
        // dir: the user's name for it goes there instead.
        let reason = state.error.as_deref().unwrap_or(state.status.as_str());
        let shown = path.display().to_string();
        let reason = reason.replace(&scratch.file_name, &shown);
        if reason.contains(&shown) {
            eprintln!("error: {reason}");
        } else {
            eprintln!("error: {shown}: {reason}");
        }
        return Ok(ExitCode::from(1));
    }
    let raw = std::fs::read(storage.result_path(&scratch.video_id)?)
        .context("reading the merged result")?;
    let result: VideoResult = serde_json::from_slice(&raw).context("the merged result")?;
    drop(raw);
    drop(scratch);
    print_video_summary(path, &result);
    if let Some(out) = &args.output {
        let json = serde_json::to_vec_pretty(&result)?;
        std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
        println!("result: {}", out.display());
    }
    if let Some(out) = &args.annotate {
        let frames = &result.frames;
        // Frames are sorted by index; skipped ones are missing from the list.
        let detections = |index: u64| {
            Ok(frames
                .binary_search_by_key(&index, |f| f.index)
                .map(|i| frames[i].detections.clone())
                .unwrap_or_default())
        };
        argus_media::annotate::annotate_video(path, &result.video, detections, out, &|| None)?;
        println!("annotated video: {}", out.display());
    }
    let mut partial = false;
    if let Some(why) = result
        .warnings
        .iter()
        .find_map(|w| w.strip_prefix("the file is truncated: "))
    {
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

/// What a task may take in `argus detect`: a day. The distributed workers' 900 s guards a
/// cluster's queue against a stuck chunk; here a person watches the progress and has Ctrl-C,
/// and a 10,000-frame chunk at 1080p on a slow CPU may well need more than 15 minutes.
const TASK_TIME_LIMIT_S: u64 = 86_400;

/// Sends the video to the workers as the API does (its state queued, then `process_video`),
/// reports its progress, and returns its final state.
async fn drive(
    broker: &Broker,
    backend: &Backend,
    video_id: &str,
    options: VideoOptions,
    progress: &Reporter,
) -> anyhow::Result<VideoState> {
    let task = TaskMessage::new(&ProcessVideo {
        video_id: video_id.to_string(),
        options,
    });
    // Subscribed before anything moves: no change is missed.
    let mut changes = backend.subscribe_states(Some(video_id)).await?;
    run::queue_video(backend, video_id, &task.id)
        .await?
        .context("a fresh video has no state yet")?;
    broker.send(PROCESSOR_QUEUE, &task).await?;
    let (mut total, mut done) = (0, 0);
    loop {
        // Changes are published as they happen; the read on a quiet second is the backstop
        // for one dropped on a lagging subscription.
        let state = match tokio::time::timeout(Duration::from_secs(1), changes.recv()).await {
            Ok(Some(json)) => serde_json::from_str::<VideoState>(&json)?,
            Ok(None) => bail!("the state subscription ended"),
            Err(_) => match backend.get_state(video_id).await? {
                Some(state) => state,
                None => bail!("the video's state is gone"),
            },
        };
        if state.frames_total != total {
            total = state.frames_total;
            progress.start(total);
        }
        if state.frames_done > done {
            progress.advance(state.frames_done - done);
            done = state.frames_done;
        }
        if state.status.is_final() {
            return Ok(state);
        }
    }
}

/// SIGINT, SIGTERM or SIGHUP (the terminal closed); `armed` says when the handlers are in.
async fn interrupted(armed: std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = armed.send(());
        return std::future::pending().await;
    };
    let _ = armed.send(());
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}

/// A private storage dir for one `argus detect` run, holding the input as its one video (a
/// link to it: nothing is copied) and, later, the chunk results and the merged result. Removed
/// when dropped.
struct Scratch {
    root: PathBuf,
    video_id: String,
    /// The video's file name in the scratch dir (`<video_id>.<ext>`).
    file_name: String,
}

impl Scratch {
    fn holding(input: &Path) -> anyhow::Result<Scratch> {
        let input = std::fs::canonicalize(input)
            .with_context(|| format!("cannot open {}", input.display()))?;
        if !input.is_file() {
            bail!("{} is not a file", input.display());
        }
        let video_id = uuid::Uuid::new_v4().to_string();
        let root = std::env::temp_dir().join(format!("argus-detect-{video_id}"));
        let extension = input
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        // Private: the detections written there are the user's alone.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .with_context(|| format!("creating {}", root.display()))?;
        // Owned from here: an error below removes what was made.
        let mut scratch = Scratch {
            root,
            video_id,
            file_name: String::new(),
        };
        let link = Storage::new(&scratch.root).new_video_path(&scratch.video_id, extension)?;
        scratch.file_name = link
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::os::unix::fs::symlink(&input, &link)
            .with_context(|| format!("linking {} into {}", input.display(), link.display()))?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
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
