//! `argus`: the command-line face of Argus.
//!
//! - `argus detect INPUT...` runs the detector once, with no server: on photos, or on one video
//!   through the embedded chunked pipeline (split → parallel chunk detection → merge). Exit
//!   status: 0 when every input was processed, 1 when an input failed (other photos are still
//!   processed and reported; a truncated or damaged video still gets its readable frames), 2 on
//!   a usage or setup error (bad flag, unknown or broken model).
//! - `argus serve` runs the API and both workers in one process (the main job).
//! - `argus submit FILE...` uploads videos to a running API and saves their results.
//! - `argus worker processor|detector` runs a distributed worker role.
//! - `argus user add|passwd|list` manages API users in the database.

mod collection;
mod detect;
mod embedded;
mod options;
mod progress;
mod serve;
mod submit;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "argus", version, about = "Find objects in videos and photos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in photos (jpeg, png, webp, bmp, tiff, gif) or in one video.
    Detect(DetectArgs),
    /// Run the API, the processor and the detector in one process (memory://, SQLite).
    Serve(Box<serve::ServeArgs>),
    /// Upload videos to an Argus API, follow them and save their results.
    Submit(submit::SubmitArgs),
    /// Run a distributed worker role (the same code as argus-processor / argus-detector).
    #[command(subcommand)]
    Worker(WorkerRole),
    /// Manage API users (in the database, no server needed).
    #[command(subcommand)]
    User(user::UserCommand),
}

#[derive(Subcommand)]
enum WorkerRole {
    /// Consume the `processor` queue: process_video, merge_chunks.
    Processor(argus_processor::service::ProcessorArgs),
    /// Consume the `detector` queue: detect_frames.
    Detector(argus_detector::service::DetectorArgs),
}

#[derive(Args)]
pub struct DetectArgs {
    /// Photos, or one video.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Video only: write the video with boxes and labels drawn to this file (H.264 mp4).
    #[arg(long)]
    pub annotate: Option<PathBuf>,
    /// Video only: how it is cut and detected.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Video only: tracking, zones, lines, and which frames are detected.
    #[command(flatten)]
    pub video: options::VideoFlags,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub model: argus_detector::config::ModelArgs,
}

/// How videos are cut and detected in this process (`argus detect`, `argus serve`).
#[derive(Args)]
pub struct PipelineArgs {
    /// Target frames per chunk: no chunk is longer (1..=10000; an upload's `chunk_size`
    /// overrides it).
    #[arg(long, env = "ARGUS_CHUNK_SIZE", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=argus_common::limits::MAX_CHUNK_FRAMES))]
    pub chunk_size: u64,
    /// Chunks detected at once [default: 2 per device].
    #[arg(long, env = "ARGUS_DETECT_TASKS")]
    pub tasks: Option<usize>,
    /// Decoder threads per chunk (0: FFmpeg decides).
    #[arg(long, env = "ARGUS_DECODE_THREADS", default_value_t = 1)]
    pub decode_threads: usize,
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`argus detect ... | head`), as Unix tools do, instead of
    // panicking in println!.
    // SAFETY: setting a signal disposition at startup, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // `argus detect` reports a failed video itself, in the user's terms: the in-process
    // workers' own log of it (with the scratch dir's paths) would only repeat it.
    let quiet_workers = matches!(cli.command, Command::Detect(_));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                if quiet_workers {
                    "warn,argus_queue::worker=off".into()
                } else {
                    "warn".into()
                }
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    tracing::debug!(allocator = %argus_detector::allocator::name(), "malloc");
    let outcome = match cli.command {
        Command::Detect(args) => detect::run(args),
        Command::Worker(WorkerRole::Processor(args)) => {
            argus_processor::service::run(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Worker(WorkerRole::Detector(args)) => {
            argus_detector::service::run(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Submit(args) => submit::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::User(command) => user::run(command).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
