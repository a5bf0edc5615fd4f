//! `argus user add NAME [--admin]` and `argus user list`: manage API users straight in the
//! database (SQLite under the storage dir, or `ARGUS_DATABASE_URL`), e.g. the first admin of a
//! cluster, without a running server. The password comes from ARGUS_PASSWORD or a prompt.

use std::path::PathBuf;

use anyhow::{bail, Context};
use argus_api::db::Db;
use argus_api::users::{add_user, list_users, Role};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (password from ARGUS_PASSWORD, or asked twice).
    Add(AddArgs),
    /// List users.
    List(DbArgs),
}

#[derive(Args)]
pub struct DbArgs {
    /// Root of the storage; the default SQLite database is <storage-dir>/argus.db.
    #[arg(long, env = "ARGUS_STORAGE_DIR", default_value = "./data")]
    pub storage_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…` [default: sqlite://<storage-dir>/argus.db].
    #[arg(long, env = "ARGUS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Args)]
pub struct AddArgs {
    pub name: String,
    /// Make the user an admin (manages users).
    #[arg(long)]
    pub admin: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

impl DbArgs {
    async fn open(&self) -> anyhow::Result<Db> {
        let url = match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.trim().to_string(),
            _ => {
                std::fs::create_dir_all(&self.storage_dir)?;
                format!("sqlite://{}", self.storage_dir.join("argus.db").display())
            }
        };
        Ok(Db::open(&url).await?)
    }
}

pub fn run(command: UserCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            UserCommand::Add(args) => {
                let password = match std::env::var("ARGUS_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        let first =
                            rpassword::prompt_password(format!("password for {}: ", args.name))
                                .context("reading the password (or set ARGUS_PASSWORD)")?;
                        let again = rpassword::prompt_password("again: ")?;
                        if first != again {
                            bail!("the passwords differ");
                        }
                        first
                    }
                };
                let role = if args.admin { Role::Admin } else { Role::User };
                let db = args.db.open().await?;
                let user = add_user(&db, &args.name, &password, role).await?;
                println!("added {} ({})", user.username, user.role.as_str());
                db.close().await;
            }
            UserCommand::List(args) => {
                let db = args.open().await?;
                for user in list_users(&db).await? {
                    let disabled = if user.disabled { " (disabled)" } else { "" };
                    println!("{}\t{}{disabled}", user.username, user.role.as_str());
                }
                db.close().await;
            }
        }
        Ok(())
    })
}
