//! Photo collections against the strongest honest baseline (issue 24). Prints figures and
//! ratios, asserts nothing: `cargo bench --workspace --bench collections`. On this machine, CPU:
//!
//! - the photos: made from scikit-image's astronaut, camera, chelsea and coffee, each cut a
//!   different way and every other one mirrored, saved as JPEG (quality 90) under
//!   `$ARGUS_HOME/bench/photos` (13,000 of them, made once);
//! - the baseline: a plain Python loop over the same TorchScript face model
//!   (cli/benches/python_faces_baseline.py: OpenCV decode, the same letterbox, crops and
//!   `embed`, every core as torch threads) on the first `ARGUS_BENCH_PHOTOS` (default 1000);
//! - Argus: the release `argus serve --model faces`, the same photos sent as one tar to
//!   `POST /api/v1/collections`, timed from the request to `succeeded` (upload, unpacking,
//!   batches, merge); then all 13,000 photos end to end, and the server's peak memory after each
//!   (flat with the number of photos: one batch in memory at a time).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

const ALL_PHOTOS: usize = 13_000;

fn home() -> PathBuf {
    argus_common::paths::argus_home()
}

fn python() -> PathBuf {
    std::env::var("ARGUS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home().join("venv"))
        .join("bin/python")
}

/// The photos, made once: `<i>.jpg` for i < 13,000.
fn photos() -> PathBuf {
    let dir = home().join("bench").join("photos");
    if dir.join(format!("{:05}.jpg", ALL_PHOTOS - 1)).is_file() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let media = argus_common::paths::media_dir();
    let bases: Vec<image::RgbImage> = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png"]
        .iter()
        .map(|n| {
            image::open(media.join(n))
                .expect("run scripts/setup.sh")
                .into_rgb8()
        })
        .collect();
    for i in 0..ALL_PHOTOS {
        let base = &bases[i % bases.len()];
        let (w, h) = base.dimensions();
        // A different cut of each: up to a fifth off each side.
        let (x0, y0) = ((i as u32 * 37) % (w / 5), (i as u32 * 53) % (h / 5));
        let (x1, y1) = (w - (i as u32 * 17) % (w / 5), h - (i as u32 * 29) % (h / 5));
        let mut photo = image::imageops::crop_imm(base, x0, y0, x1 - x0, y1 - y0).to_image();
        if (i / bases.len()) % 2 == 1 {
            photo = image::imageops::flip_horizontal(&photo);
        }
        let out = std::fs::File::create(dir.join(format!("{i:05}.jpg"))).unwrap();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(out, 90);
        encoder.encode_image(&photo).unwrap();
    }
    dir
}

/// A tar of the first `n` photos.
fn tar_of(dir: &Path, n: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("argus-bench-photos-{n}.tar"));
    let mut tar = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(&path).unwrap(),
    ));
    for i in 0..n {
        let name = format!("{i:05}.jpg");
        tar.append_path_with_name(dir.join(&name), &name).unwrap();
    }
    tar.into_inner().unwrap().into_inner().unwrap();
    path
}

struct Serve {
    child: std::process::Child,
    url: String,
    storage: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

fn serve() -> Serve {
    let storage = std::env::temp_dir().join(format!("argus-bench-serve-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .arg("serve")
        .env("ARGUS_STORAGE_DIR", &storage)
        .env("ARGUS_BIND", "127.0.0.1:0")
        .env("ARGUS_ADMIN_USER", "admin")
        .env("ARGUS_ADMIN_PASSWORD", "bench-password-1")
        .env("ARGUS_MODEL", "faces")
        .env("ARGUS_DEVICE", "cpu")
        .env("ARGUS_MAX_COLLECTION_PHOTOS", "20000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("argus serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an address")
        .trim_end_matches('/')
        .to_string();
    Serve {
        child,
        url,
        storage,
    }
}

/// Sends `tar` as a collection and waits for it: (seconds, faces found).
fn run_collection(
    http: &reqwest::blocking::Client,
    s: &Serve,
    token: &str,
    tar: &Path,
) -> (f64, u64) {
    let started = Instant::now();
    let body = std::fs::read(tar).unwrap();
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/collections", s.url))
        .bearer_auth(token)
        .header("content-type", "application/x-tar")
        .body(body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    loop {
        let c: serde_json::Value = http
            .get(format!("{}/api/v1/collections/{id}", s.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        match c["status"].as_str() {
            Some("succeeded") => {
                return (
                    started.elapsed().as_secs_f64(),
                    c["summary"]["faces"]["count"].as_u64().unwrap_or(0),
                )
            }
            Some("failed" | "cancelled") => panic!("{c}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn main() {
    let n: usize = std::env::var("ARGUS_BENCH_PHOTOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .min(ALL_PHOTOS);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let dir = photos();
    let model = argus_common::paths::models_dir().join("faces.pt");

    // The baseline, on the first n photos (a folder holding only them).
    let subset = std::env::temp_dir().join(format!("argus-bench-subset-{n}"));
    if !subset.join(format!("{:05}.jpg", n - 1)).is_file() {
        std::fs::create_dir_all(&subset).unwrap();
        for i in 0..n {
            let name = format!("{i:05}.jpg");
            std::fs::copy(dir.join(&name), subset.join(&name)).unwrap();
        }
    }
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/python_faces_baseline.py"
        ))
        .arg(&model)
        .arg(&subset)
        .arg(cores.to_string())
        .output()
        .expect("the Python baseline");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let baseline: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let base_pps = baseline["photos_per_s"].as_f64().unwrap();

    let s = serve();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let token: serde_json::Value = http
        .post(format!("{}/api/v1/auth/token", s.url))
        .form(&[("username", "admin"), ("password", "bench-password-1")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let small = tar_of(&dir, n);
    let (seconds, faces) = run_collection(&http, &s, &token, &small);
    let rss_small = support::peak_rss_mb(s.child.id());
    let pps = n as f64 / seconds;
    println!(
        "photo collections, CPU ({cores} cores), faces model (BlazeFace + face check + FaceRes)"
    );
    println!("| run | photos | faces | seconds | photos/s | ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| Python loop, {cores} torch threads | {n} | {} | {:.1} | {base_pps:.1} | 1.00 |",
        baseline["faces"],
        baseline["seconds"].as_f64().unwrap()
    );
    println!(
        "| argus serve, POST /collections (tar) to succeeded | {n} | {faces} | {seconds:.1} | {pps:.1} | {:.2} |",
        pps / base_pps
    );
    let all = tar_of(&dir, ALL_PHOTOS);
    let (seconds, faces) = run_collection(&http, &s, &token, &all);
    let rss_all = support::peak_rss_mb(s.child.id());
    println!(
        "| argus serve, {ALL_PHOTOS} photos end to end | {ALL_PHOTOS} | {faces} | {seconds:.1} | {:.1} | {:.2} |",
        ALL_PHOTOS as f64 / seconds,
        ALL_PHOTOS as f64 / seconds / base_pps
    );
    println!("peak memory of argus serve: {rss_small:.0} MB after {n} photos, {rss_all:.0} MB after {ALL_PHOTOS}");
    let _ = std::fs::remove_file(small);
    let _ = std::fs::remove_file(all);
}
