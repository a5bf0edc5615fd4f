//! `argus-detector`: the detector worker (see the crate docs; flags and environment in docs/operations.md).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "argus-detector", version, about = "Argus detector worker")]
struct Cli {
    #[command(flatten)]
    args: argus_detector::service::DetectorArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    tracing::debug!(allocator = %argus_detector::allocator::name(), "malloc");
    match argus_detector::service::run(Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
