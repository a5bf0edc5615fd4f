//! `argus-processor`: the processor worker (see the crate docs; flags and environment in docs/operations.md).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "argus-processor", version, about = "Argus processor worker")]
struct Cli {
    #[command(flatten)]
    args: argus_processor::service::ProcessorArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match argus_processor::service::run(Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
