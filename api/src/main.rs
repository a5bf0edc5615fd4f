//! `argus-api`: the REST API server. Configuration from flags or `ARGUS_*` variables (see
//! `argus-api --help`); exits 2 when it cannot start (bad configuration, database unreachable),
//! 0 after a graceful shutdown (SIGTERM, Ctrl-C).

use std::io::IsTerminal;
use std::process::ExitCode;

use argus_api::{ApiConfig, StartupError};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "argus-api",
    version,
    about = "Argus REST API server",
    long_about = "Argus REST API server (/api/v1, Swagger UI at /swagger-ui/).\n\n\
                  ARGUS_JWT_SECRET is required. ARGUS_ADMIN_USER + ARGUS_ADMIN_PASSWORD create \
                  that admin at start when no user of that name exists; an existing user is \
                  never changed (a warning says when the given password does not match)."
)]
struct Cli {
    #[command(flatten)]
    api: ApiConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match actix_web::rt::System::new().block_on(argus_api::serve(cli.api)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartupError::Io(_)) => {
            eprintln!("argus-api: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("argus-api: cannot start: {e}");
            ExitCode::from(2)
        }
    }
}
