//! `argus user add NAME [--admin]`, `argus user passwd NAME` and `argus user list`: manage API
//! users straight in the database (SQLite under the storage dir, or `ARGUS_DATABASE_URL`), e.g.
//! the first admin of a cluster, or a locked-out admin's password, without a running server.
//! Passwords come from ARGUS_PASSWORD or a prompt (asked twice). A new password ends every token
//! the user had, on every API replica, at their next request.

use std::path::PathBuf;

use anyhow::{bail, Context};
use argus_api::db::Db;
use argus_api::password::Hasher;
use argus_api::users::{add_user, list_users, set_password, Role};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (password from ARGUS_PASSWORD, or asked twice).
    Add(AddArgs),
    /// Set a user's password (from ARGUS_PASSWORD, or asked twice); ends the user's tokens.
    Passwd(PasswdArgs),
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

#[derive(Args)]
pub struct PasswdArgs {
    pub name: String,
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
                let password = read_password(&format!("password for {}: ", args.name))?;
                let role = if args.admin { Role::Admin } else { Role::User };
                let db = args.db.open().await?;
                let user = add_user(&db, &Hasher::default(), &args.name, &password, role).await?;
                println!("added {} ({})", user.username, user.role.as_str());
                db.close().await;
            }
            UserCommand::Passwd(args) => {
                let password = read_password(&format!("new password for {}: ", args.name))?;
                let db = args.db.open().await?;
                let user = set_password(&db, &Hasher::default(), &args.name, &password).await?;
                println!(
                    "password of {} set; its earlier tokens no longer work",
                    user.username
                );
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

/// ARGUS_PASSWORD, else asked twice on the terminal.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("ARGUS_PASSWORD") {
        return Ok(password);
    }
    let first = rpassword::prompt_password(prompt)
        .context("reading the password (or set ARGUS_PASSWORD)")?;
    let again = rpassword::prompt_password("again: ")?;
    if first != again {
        bail!("the passwords differ");
    }
    Ok(first)
}
