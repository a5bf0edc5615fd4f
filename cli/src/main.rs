//! `argus`: the command-line face of Argus.
//!
//! `argus detect INPUT...` runs the detector once, with no server: on photos, or on one video
//! through the embedded chunked pipeline (split → parallel chunk detection → merge). Exit
//! status: 0 when every input was processed, 1 when an input failed (other photos are still
//! processed and reported; a truncated video still gets the frames before the cut), 2 on a
//! usage or setup error (bad flag, unknown or broken model).

mod detect;
mod embedded;
mod progress;

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
}

#[derive(Args)]
pub struct ModelArgs {
    /// Model name in the models directory, or the path of a model manifest (.json).
    #[arg(long, env = "ARGUS_MODEL", default_value = argus_detector::registry::DEFAULT_MODEL)]
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
    /// CPU threads for inference [default: one per core].
    #[arg(long, env = "ARGUS_TORCH_THREADS")]
    pub threads: Option<usize>,
    /// Minimum score of a reported detection [default: the model's, 0.3 for coco-centernet].
    #[arg(long, env = "ARGUS_SCORE_THRESHOLD")]
    pub threshold: Option<f32>,
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
    /// Video only: target frames per chunk.
    #[arg(long, env = "ARGUS_CHUNK_SIZE", default_value_t = 64)]
    pub chunk_size: u64,
    /// Video only: chunks detected at once [default: 2 per device].
    #[arg(long, env = "ARGUS_DETECT_TASKS")]
    pub tasks: Option<usize>,
    /// Video only: decoder threads per chunk (0: FFmpeg decides).
    #[arg(long, env = "ARGUS_DECODE_THREADS", default_value_t = 1)]
    pub decode_threads: usize,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`argus detect ... | head`), as Unix tools do, instead of
    // panicking in println!.
    // SAFETY: setting a signal disposition at startup, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    log_allocator();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Detect(args) => detect::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Names the malloc in use (tcmalloc when the `tcmalloc` feature links it; see build.rs).
fn log_allocator() {
    #[cfg(feature = "tcmalloc")]
    {
        extern "C" {
            fn tc_version(
                major: *mut libc::c_int,
                minor: *mut libc::c_int,
                patch: *mut *const libc::c_char,
            ) -> *const libc::c_char;
        }
        // SAFETY: null out-pointers are allowed; the result is a static C string.
        let version = unsafe {
            std::ffi::CStr::from_ptr(tc_version(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ))
        };
        tracing::debug!(allocator = %version.to_string_lossy(), "malloc");
    }
    #[cfg(not(feature = "tcmalloc"))]
    tracing::debug!(allocator = "system", "malloc");
}
