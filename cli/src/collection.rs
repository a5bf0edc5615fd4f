//! `argus submit FOLDER` and `argus submit photos.tar|.tar.gz|.tgz|.zip`: a photo collection.
//! A folder's photos (by name: jpeg, png, webp, bmp, tiff, gif; hidden files skipped; not
//! recursive) are packed into a temporary tar and sent as one body, so that ten thousand
//! photos need one request and no open file per photo; an archive is sent as it is. The
//! collection is then followed until it ends and its result saved as `<name>.json`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::submit::{api_json, SubmitArgs};

/// Whether `path` is sent as a collection rather than a video.
pub fn is_collection(path: &Path) -> bool {
    path.is_dir() || archive_type(path).is_some()
}

fn archive_type(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".tar") {
        Some("application/x-tar")
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some("application/gzip")
    } else if name.ends_with(".zip") {
        Some("application/zip")
    } else {
        None
    }
}

fn is_photo_name(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    !hidden
        && matches!(
            ext.as_str(),
            "jpg" | "jpeg" | "png" | "webp" | "bmp" | "tif" | "tiff" | "gif"
        )
}

/// A folder's photos packed into a tar in the system's temp dir (removed when dropped).
struct PackedFolder {
    path: PathBuf,
    photos: usize,
}

impl Drop for PackedFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pack(folder: &Path) -> anyhow::Result<PackedFolder> {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_photo_name(p))
        .collect();
    photos.sort();
    if photos.is_empty() {
        bail!(
            "{} holds no photos (jpeg, png, webp, bmp, tiff, gif)",
            folder.display()
        );
    }
    let path = std::env::temp_dir().join(format!(
        "argus-submit-{}.tar",
        uuid::Uuid::new_v4().simple()
    ));
    let packed = PackedFolder {
        path: path.clone(),
        photos: photos.len(),
    };
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(true);
    for photo in &photos {
        let name = photo.file_name().expect("a file");
        tar.append_path_with_name(photo, name)
            .with_context(|| format!("packing {}", photo.display()))?;
    }
    tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(packed)
}

/// Uploads, follows and saves one collection; `Ok(false)` when it did not succeed.
pub fn submit(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    input: &Path,
    args: &SubmitArgs,
) -> anyhow::Result<bool> {
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .context("a name")?
        .trim_end_matches('/')
        .to_string();
    let (body_path, content_type, _packed) = if input.is_dir() {
        let packed = pack(input)?;
        if !args.quiet {
            eprintln!("{name}: {} photos packed", packed.photos);
        }
        (packed.path.clone(), "application/x-tar", Some(packed))
    } else {
        (
            input.to_path_buf(),
            archive_type(input).expect("an archive"),
            None,
        )
    };
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(m) = &args.model {
        query.push(("model", m.clone()));
    }
    if let Some(t) = args.score_threshold {
        query.push(("score_threshold", t.to_string()));
    }
    if let Some(c) = &args.classes {
        query.push(("classes", c.clone()));
    }
    if let Some(url) = &args.callback {
        query.push(("callback_url", url.clone()));
    }
    let size = std::fs::metadata(&body_path)?.len();
    let body = reqwest::blocking::Body::sized(std::fs::File::open(&body_path)?, size);
    let response = http
        .post(format!("{base}/api/v1/collections"))
        .bearer_auth(token)
        .query(&query)
        .header("content-type", content_type)
        .body(body)
        .send()
        .with_context(|| format!("cannot reach {base}"))?;
    let created = api_json(response)?;
    let id = created["id"]
        .as_str()
        .context("the answer has no id")?
        .to_string();
    println!(
        "{name}: uploaded as collection {id} ({} photos, {} refused on the way in)",
        created["photos"], created["refused"]
    );
    if args.no_wait {
        return Ok(true);
    }
    let collection = follow(http, base, token, &id, &name, args.quiet)?;
    let status = collection["status"].as_str().unwrap_or("?");
    if status != "succeeded" {
        let why = collection["error"].as_str().unwrap_or("no reason given");
        eprintln!("error: {name}: {status}: {why}");
        return Ok(false);
    }
    let response = http
        .get(format!("{base}/api/v1/collections/{id}/result"))
        .bearer_auth(token)
        .send()?;
    let result = api_json(response)?;
    let stem = name
        .trim_end_matches(".tar.gz")
        .trim_end_matches(".tgz")
        .trim_end_matches(".tar")
        .trim_end_matches(".zip");
    let out = args.output_dir.join(format!("{stem}.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&result)?)
        .with_context(|| format!("writing {}", out.display()))?;
    print_summary(&name, &collection["summary"]);
    println!("result: {}", out.display());
    Ok(true)
}

/// Polls the collection once a second until it ends.
fn follow(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    id: &str,
    name: &str,
    quiet: bool,
) -> anyhow::Result<Value> {
    let bar = if quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30.green/blue} {pos}/{len} photos {per_sec} ETA {eta}",
            )
            .expect("a template"),
        );
        bar.set_message(name.to_string());
        bar
    };
    loop {
        let response = http
            .get(format!("{base}/api/v1/collections/{id}"))
            .bearer_auth(token)
            .send()?;
        let c = api_json(response)?;
        bar.set_length(c["progress"]["photos_total"].as_u64().unwrap_or(0));
        bar.set_position(c["progress"]["photos_done"].as_u64().unwrap_or(0));
        if matches!(
            c["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            bar.finish_and_clear();
            return Ok(c);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn print_summary(name: &str, s: &Value) {
    println!(
        "{name}: {} photos detected, {} failed",
        s["photos_detected"], s["photos_failed"]
    );
    if let Some(objects) = s["objects"].as_object() {
        for (label, n) in objects.iter().take(10) {
            println!(
                "  {label:<14} {n:>6} objects in {:>6} photos",
                s["photos_with"][label]
            );
        }
    }
    if let Some(count) = s["faces"]["count"].as_u64() {
        println!(
            "  faces: {count}, mean embedding of {} values",
            s["faces"]["mean_embedding"].as_array().map_or(0, Vec::len)
        );
    }
}
