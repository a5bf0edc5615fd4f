//! `argus submit FILE…`: a client of the REST API. Logs in (or takes a token), uploads each
//! file with a progress bar, follows the video's server-sent events with a progress bar of
//! frames, and saves the result next to where it was asked (`<stem>.json`). A folder of photos
//! or an archive of them (`.tar`, `.tar.gz`, `.tgz`, `.zip`) is a photo collection
//! ([`crate::collection`]).
//!
//! Exit status: 0 when every video succeeded, 1 when a video failed or was cancelled (the
//! others are still processed), 2 on a usage, connection or login error.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

#[derive(Args)]
pub struct SubmitArgs {
    /// Videos to upload; a folder of photos, or a .tar, .tar.gz, .tgz or .zip of them, is
    /// uploaded as a photo collection.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The API's base URL.
    #[arg(long, env = "ARGUS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// User to log in as (the password comes from ARGUS_PASSWORD or a prompt).
    #[arg(long, short, env = "ARGUS_USER")]
    pub user: Option<String>,
    /// A token instead of a login.
    #[arg(long, env = "ARGUS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where results are saved, as <file stem>.json.
    #[arg(long, short, default_value = ".")]
    pub output_dir: PathBuf,
    /// Model to detect with [default: the server's].
    #[arg(long)]
    pub model: Option<String>,
    /// Target frames per chunk [default: the server's].
    #[arg(long)]
    pub chunk_size: Option<u64>,
    /// Minimum score kept.
    #[arg(long)]
    pub score_threshold: Option<f32>,
    /// Class labels kept, comma-separated (e.g. person,car).
    #[arg(long)]
    pub classes: Option<String>,
    #[command(flatten)]
    pub video: crate::options::VideoFlags,
    /// Where the server POSTs each video or collection, signed, once it ends (see docs/api.md,
    /// Webhooks) [default: your default URL on the server, if any].
    #[arg(long, value_name = "URL")]
    pub callback: Option<String>,
    /// Upload and exit without waiting for the results.
    #[arg(long)]
    pub no_wait: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let base = args.url.trim_end_matches('/').to_string();
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(None)
        .build()?;
    let token = match &args.token {
        Some(t) => t.clone(),
        None => login(&http, &base, args.user.as_deref())?,
    };
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let mut failed = 0;
    for file in &args.files {
        let submitted = if crate::collection::is_collection(file) {
            crate::collection::submit(&http, &base, &token, file, &args)
        } else {
            submit_one(&http, &base, &token, file, &args)
        };
        match submitted {
            Ok(true) => {}
            Ok(false) => failed += 1,
            Err(e) => {
                eprintln!("error: {}: {e:#}", file.display());
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn login(
    http: &reqwest::blocking::Client,
    base: &str,
    user: Option<&str>,
) -> anyhow::Result<String> {
    let Some(user) = user else {
        bail!("give --user (or ARGUS_USER), or a token with --token (or ARGUS_TOKEN)");
    };
    let password = match std::env::var("ARGUS_PASSWORD") {
        Ok(p) => p,
        Err(_) => rpassword::prompt_password(format!("password for {user}: "))
            .context("reading the password (or set ARGUS_PASSWORD)")?,
    };
    let response = http
        .post(format!("{base}/api/v1/auth/token"))
        .form(&[("username", user), ("password", password.as_str())])
        .send()
        .with_context(|| format!("cannot reach {base}"))?;
    let body = api_json(response).context("login failed")?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .context("the token endpoint answered without a token")
}

/// The JSON body of a successful answer, or the API's `{code, message}` as the error.
pub(crate) fn api_json(response: reqwest::blocking::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        let code = body["code"].as_str().unwrap_or("");
        bail!("{status} {code}: {message}");
    }
    Ok(body)
}

fn bar(len: u64, template: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// A reader that moves a progress bar as the upload is read.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Uploads, follows and saves one video; Ok(false) when it did not succeed.
fn submit_one(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    file: &Path,
    args: &SubmitArgs,
) -> anyhow::Result<bool> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("a file name")?
        .to_string();
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let mut query: Vec<(&str, String)> = vec![("filename", name.clone())];
    if let Some(m) = &args.model {
        query.push(("model", m.clone()));
    }
    if let Some(n) = args.chunk_size {
        query.push(("chunk_size", n.to_string()));
    }
    if let Some(t) = args.score_threshold {
        query.push(("score_threshold", t.to_string()));
    }
    if let Some(c) = &args.classes {
        query.push(("classes", c.clone()));
    }
    query.extend(args.video.query()?);
    if let Some(url) = &args.callback {
        query.push(("callback_url", url.clone()));
    }
    let upload = bar(
        size,
        "{msg} {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec}",
        args.quiet,
    );
    upload.set_message(format!("uploading {name}"));
    let body = reqwest::blocking::Body::sized(
        Counted {
            inner: std::fs::File::open(file)?,
            bar: upload.clone(),
        },
        size,
    );
    let request = http
        .post(format!("{base}/api/v1/videos"))
        .bearer_auth(token);
    // Zones and lines can be tens of KB of JSON: past what a URL carries through a proxy (an
    // ingress answers 414), so with them the options go as form fields beside the file.
    let shapes = query.iter().any(|(k, _)| matches!(*k, "zones" | "lines"));
    let request = if shapes {
        let counted = Counted {
            inner: std::fs::File::open(file)?,
            bar: upload.clone(),
        };
        let mut form = reqwest::blocking::multipart::Form::new();
        for (k, v) in query.into_iter().filter(|(k, _)| *k != "filename") {
            form = form.text(k, v);
        }
        let part = reqwest::blocking::multipart::Part::reader_with_length(counted, size)
            .file_name(name.clone())
            .mime_str("application/octet-stream")?;
        drop(body);
        request.multipart(form.part("file", part))
    } else {
        request
            .query(&query)
            .header("content-type", "application/octet-stream")
            .body(body)
    };
    let response = request
        .send()
        .with_context(|| format!("cannot reach {base}"))?;
    upload.finish_and_clear();
    let video = api_json(response)?;
    let id = video["id"]
        .as_str()
        .context("the upload answer has no id")?
        .to_string();
    println!("{name}: uploaded as {id}");
    if args.no_wait {
        return Ok(true);
    }
    let state = follow(http, base, token, &id, &name, args.quiet)?;
    let status = state["status"].as_str().unwrap_or("?");
    if status != "succeeded" {
        let why = state["error"].as_str().unwrap_or("no reason given");
        eprintln!("error: {name}: {status}: {why}");
        return Ok(false);
    }
    let response = http
        .get(format!("{base}/api/v1/videos/{id}/result"))
        .bearer_auth(token)
        .send()?;
    let result = api_json(response)?;
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or(&id);
    let out = args.output_dir.join(format!("{stem}.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&result)?)
        .with_context(|| format!("writing {}", out.display()))?;
    print_summary(&name, &result);
    for warning in result["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {name}: {}", warning.as_str().unwrap_or_default());
    }
    println!("result: {}", out.display());
    Ok(true)
}

/// Follows the video's server-sent events until a terminal state; returns that state.
fn follow(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    id: &str,
    name: &str,
    quiet: bool,
) -> anyhow::Result<Value> {
    let progress = bar(
        0,
        "{msg} {bar:30.green/blue} {pos}/{len} frames {per_sec} ETA {eta}",
        quiet,
    );
    progress.set_message(name.to_string());
    let response = http
        .get(format!("{base}/api/v1/videos/{id}/events"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()?;
    if !response.status().is_success() {
        api_json(response)?;
        bail!("no event stream");
    }
    let mut last = Value::Null;
    let mut last_status = String::new();
    for line in BufReader::new(response).lines() {
        let line = line.context("the event stream broke off")?;
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(state) = serde_json::from_str::<Value>(data.trim()) else {
            continue;
        };
        let total = state["frames_total"].as_u64().unwrap_or(0);
        if total > 0 {
            progress.set_length(total);
            progress.set_position(state["frames_done"].as_u64().unwrap_or(0));
        }
        let status = state["status"].as_str().unwrap_or("").to_string();
        if status != last_status && progress.is_hidden() && !quiet {
            eprintln!("{name}: {status}");
        }
        last_status = status;
        let done = matches!(last_status.as_str(), "succeeded" | "failed" | "cancelled");
        last = state;
        if done {
            break;
        }
    }
    progress.finish_and_clear();
    if last.is_null() {
        bail!("the event stream ended without a state");
    }
    Ok(last)
}

fn print_summary(name: &str, result: &Value) {
    let s = &result["summary"];
    println!(
        "{name}: {} frames in {} chunks, {:.1} s, {:.1} frames/s",
        s["frames_processed"],
        s["chunks"],
        s["wall_time_s"].as_f64().unwrap_or(0.0),
        s["frames_per_second"].as_f64().unwrap_or(0.0)
    );
    for class in s["classes"].as_array().into_iter().flatten().take(10) {
        println!(
            "  {:<14} {:>6} objects in {:>6} frames",
            class["label"].as_str().unwrap_or("?"),
            class["objects"],
            class["frames"]
        );
    }
}
