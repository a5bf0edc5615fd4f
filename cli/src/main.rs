//! `argus`: the command-line face of Argus.
//!
//! `argus detect INPUT...` runs the detector once on photos, with no server. Exit status: 0 when
//! every input was processed, 1 when some input failed (the others are still processed and
//! reported), 2 on a usage or setup error (bad flag, unknown or broken model).

mod detect;

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
    /// Detect objects in photos (jpeg, png, webp, bmp, tiff, gif) and print them.
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
    /// Frames per forward pass on one device.
    #[arg(long, env = "ARGUS_BATCH_SIZE", default_value_t = 4)]
    pub batch_size: usize,
    /// CPU threads for inference [default: one per core].
    #[arg(long, env = "ARGUS_TORCH_THREADS")]
    pub threads: Option<usize>,
    /// Minimum score of a reported detection [default: the model's, 0.3 for coco-centernet].
    #[arg(long, env = "ARGUS_SCORE_THRESHOLD")]
    pub threshold: Option<f32>,
}

#[derive(Args)]
pub struct DetectArgs {
    /// Image files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
