//! Benchmark of the REST API (`argus serve`): prints figures, asserts nothing.
//! `cargo bench --workspace --bench api` (scripts/bench.sh runs it too). Everything is measured
//! in this one run, on this machine, against the release `argus serve` on loopback:
//!
//! 1. a 1 GiB upload (raw body, `application/octet-stream`, sent from the file with
//!    `std::io::copy` on a plain TCP socket: sendfile, never whole in memory): MiB/s, the time
//!    split between the transfer and the answer (probe, record, queue, 202), and the server's
//!    resident memory (`VmRSS`, sampled every 50 ms) before and during it. The file is a valid
//!    video (lossless x264 of noise, made once with the ffmpeg CLI and kept under
//!    `$ARGUS_HOME/bench/`); it is deleted (`DELETE /api/v1/videos/{id}`) as soon as it is
//!    accepted, on a server of its own that is stopped right after;
//! 2. `GET /api/v1/videos/{id}` of a finished video (its answer carries the summary) from many
//!    concurrent clients (tokio + reqwest in this process, one connection per client):
//!    requests, requests/s, latency percentiles, and the CPU the server and the clients used;
//! 3. frames/s through the API (upload start to `succeeded`, followed on the video's event
//!    stream) against `argus detect` on the same file, same chunk size, threads and tasks,
//!    runs alternating, medians and their ratio.
//!
//! Knobs (environment): `ARGUS_BENCH_UPLOAD_MB` (1024), `ARGUS_BENCH_CLIENTS` (200),
//! `ARGUS_BENCH_SECONDS` (10), `ARGUS_BENCH_REPS` (3),
//! `ARGUS_BENCH_VIDEOS` (`carphone_pristine.mp4,bikes.mp4`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

const PASSWORD: &str = "bench-password-not-secret";
const MIB: f64 = 1024.0 * 1024.0;

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn argus_bin() -> &'static str {
    env!("CARGO_BIN_EXE_argus")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Resident memory of `pid` in KiB (`VmRSS`).
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds (user + system) `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses, which may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `argus serve` (the release binary) on a free loopback port, with its own storage.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    addr: String,
    storage: PathBuf,
    token: String,
}

impl Server {
    fn start(tag: &str, env: &[(&str, String)]) -> Server {
        let storage =
            std::env::temp_dir().join(format!("argus-bench-api-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&storage);
        std::fs::create_dir_all(&storage).unwrap();
        let log = std::fs::File::create(storage.join("serve.log")).unwrap();
        let mut cmd = Command::new(argus_bin());
        cmd.arg("serve")
            .env("ARGUS_STORAGE_DIR", &storage)
            .env("ARGUS_BIND", "127.0.0.1:0")
            .env("ARGUS_ADMIN_USER", "admin")
            .env("ARGUS_ADMIN_PASSWORD", PASSWORD)
            .env("ARGUS_DEVICE", "cpu")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start argus serve (release build)");
        // It prints its address once listening; whatever it prints later is drained.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "argus serve printed no address ({line:?}); its log: {}",
                    std::fs::read_to_string(storage.join("serve.log")).unwrap_or_default()
                )
            })
            .trim_end_matches('/')
            .to_string();
        let answer: Value = reqwest::blocking::Client::new()
            .post(format!("http://{addr}/api/v1/auth/token"))
            .form(&[("username", "admin"), ("password", PASSWORD)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        let token = answer["access_token"].as_str().unwrap().to_string();
        Server {
            child,
            addr,
            storage,
            token,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn http() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap()
    }

    fn get(&self, id: &str) -> Value {
        Self::http()
            .get(self.url(&format!("/api/v1/videos/{id}")))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn delete(&self, id: &str) -> u16 {
        Self::http()
            .delete(self.url(&format!("/api/v1/videos/{id}")))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// Blocks until the video's event stream ends (it ends at a final state).
    fn follow(&self, id: &str) {
        let _ = Self::http()
            .get(self.url(&format!("/api/v1/videos/{id}/events")))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .bytes();
    }

    /// SIGTERM, then SIGKILL if it has not gone in 30 s; its storage is removed.
    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

/// One raw-body upload: the request on a plain socket, the file sent with `std::io::copy`
/// (sendfile on Linux), the answer read to its end (`Connection: close`).
struct Upload {
    status: u16,
    body: Value,
    bytes: u64,
    /// From connecting to the last byte handed to the socket.
    sent_s: f64,
    /// From connecting to the first byte of the answer.
    answered_s: f64,
}

fn upload(server: &Server, file: &Path, filename: &str) -> Upload {
    let bytes = std::fs::metadata(file).unwrap().len();
    let started = Instant::now();
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    write!(
        stream,
        "POST /api/v1/videos?filename={filename} HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {bytes}\r\nConnection: close\r\n\r\n",
        server.addr, server.token
    )
    .unwrap();
    let mut source = std::fs::File::open(file).unwrap();
    if let Err(e) = std::io::copy(&mut source, &mut stream) {
        eprintln!("upload of {filename} cut short: {e} (the answer follows)");
    }
    let sent_s = started.elapsed().as_secs_f64();
    let mut answer = vec![0u8; 64 * 1024];
    let first = stream.read(&mut answer).unwrap();
    let answered_s = started.elapsed().as_secs_f64();
    answer.truncate(first);
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Upload {
        status,
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
        bytes,
        sent_s,
        answered_s,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Samples a process's VmRSS every 50 ms on a thread of its own.
struct RssSampler {
    stop: Arc<AtomicBool>,
    started: Instant,
    handle: std::thread::JoinHandle<Vec<(f64, u64)>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let handle = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = vm_rss_kib(pid) {
                        samples.push((started.elapsed().as_secs_f64(), kib));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                samples
            }
        });
        RssSampler {
            stop,
            started,
            handle,
        }
    }

    fn finish(self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// The upload video: lossless x264 of noise (so that it is big for its frame count, and quick
/// to make), cut at `mib` MiB by ffmpeg's `-fs`. Made once, kept under `$ARGUS_HOME/bench/`.
fn big_video(mib: u64) -> PathBuf {
    let home = std::env::var_os("ARGUS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/argus")
        });
    let dir = home.join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("big-{mib}MiB.mp4"));
    if path.is_file() {
        println!(
            "upload video: {} (kept from an earlier run)",
            path.display()
        );
        return path;
    }
    let partial = dir.join(format!("big-{mib}MiB.partial-{}.mp4", std::process::id()));
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=1280x720:rate=30,noise=alls=40:allf=t+u")
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0"])
        .args(["-pix_fmt", "yuv420p", "-fs"])
        .arg((mib << 20).to_string())
        .arg(&partial)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success(), "ffmpeg could not make the upload video");
    std::fs::rename(&partial, &path).unwrap();
    println!(
        "upload video: {} (made now with ffmpeg in {:.0} s)",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    path
}

/// Part 1: one big upload to a server of its own.
fn big_upload(mib: u64) {
    println!("## 1. Upload of a {mib} MiB video (raw body, streamed from the file)\n");
    let video = big_video(mib);
    let frames = argus_media::probe(&video)
        .map(|p| p.info.frame_count.to_string())
        .unwrap_or_else(|e| format!("? ({e})"));
    let bytes = std::fs::metadata(&video).unwrap().len();
    println!(
        "file: {bytes} bytes, {frames} frames of 1280x720 (lossless x264 of noise, libx264 ultrafast qp 0)\n"
    );
    // Read it once so that the client reads it from the page cache, as the server writes to it.
    std::io::copy(
        &mut std::fs::File::open(&video).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();
    let server = Server::start(
        "upload",
        &[("ARGUS_MAX_UPLOAD_BYTES", (bytes + (1 << 30)).to_string())],
    );
    std::thread::sleep(Duration::from_secs(2)); // settle after start
    let sampler = RssSampler::start(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let offset = sampler.started.elapsed().as_secs_f64();
    let up = upload(&server, &video, "big.mp4");
    let samples = sampler.finish();
    let id = up.body["id"].as_str().map(str::to_string);
    let deleted = id.as_deref().map(|id| server.delete(id));
    server.stop();

    let kib_to_mib = |k: u64| k as f64 / 1024.0;
    let before: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 < offset)
        .map(|s| s.1)
        .collect();
    let baseline = before.last().copied().unwrap_or(0);
    let peak_in = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|s| s.0 >= from && s.0 <= to)
            .map(|s| s.1)
            .max()
            .unwrap_or(0)
    };
    let peak_transfer = peak_in(offset, offset + up.sent_s);
    let peak_all = peak_in(offset, f64::MAX);
    let transfer = up.sent_s;
    let answer = up.answered_s - up.sent_s;
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| answer | {} (DELETE right after: {}) |",
        up.status,
        deleted.map_or("-".to_string(), |s| s.to_string())
    );
    println!(
        "| bytes sent | {} ({:.0} MiB) |",
        up.bytes,
        up.bytes as f64 / MIB
    );
    println!("| transfer (connect to last byte sent) | {transfer:.2} s |");
    println!("| answer after the last byte (probe, record, queue, 202) | {answer:.2} s |");
    println!("| total, connect to 202 | {:.2} s |", up.answered_s);
    println!(
        "| transfer rate | {:.0} MiB/s |",
        up.bytes as f64 / MIB / transfer
    );
    println!(
        "| rate to the 202 | {:.0} MiB/s |",
        up.bytes as f64 / MIB / up.answered_s
    );
    println!(
        "| server VmRSS before (baseline) | {:.1} MiB |",
        kib_to_mib(baseline)
    );
    println!(
        "| server VmRSS peak during the transfer | {:.1} MiB |",
        kib_to_mib(peak_transfer)
    );
    println!(
        "| growth during the transfer (peak during it - baseline) | {:.1} MiB |",
        kib_to_mib(peak_transfer.saturating_sub(baseline))
    );
    println!(
        "| server VmRSS peak up to the 202 | {:.1} MiB |",
        kib_to_mib(peak_all)
    );
    println!(
        "| growth (peak up to the 202 - baseline; goal < 50 MiB) | {:.1} MiB |",
        kib_to_mib(peak_all.saturating_sub(baseline))
    );
    println!("| RSS samples (every 50 ms) | {} |", samples.len());
    if up.status != 202 {
        println!("\nthe upload was not accepted: {}", up.body);
    }
    println!();
}

struct Load {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
    body_bytes: usize,
    server_cpu_s: f64,
    client_cpu_s: f64,
}

/// Part 2: `clients` clients, each on its own connection, GET the video in a loop for
/// `seconds` (after each has made one request to open its connection).
fn get_load(server: &Server, id: &str, clients: usize, seconds: f64, threads: usize) -> Load {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let url = server.url(&format!("/api/v1/videos/{id}"));
    let token = format!("Bearer {}", server.token);
    let start = tokio::time::Instant::now() + Duration::from_secs(3);
    let end = start + Duration::from_secs_f64(seconds);
    let server_pid = server.pid();
    let me = std::process::id();
    let (results, cpu) = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (url, token) = (url.clone(), token.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .pool_max_idle_per_host(1)
                        .build()
                        .unwrap();
                    let _ = get_once(&client, &url, &token).await; // opens the connection
                    tokio::time::sleep_until(start).await;
                    let (mut latencies, mut errors, mut body_bytes) = (Vec::new(), 0usize, 0);
                    while tokio::time::Instant::now() < end {
                        let t = Instant::now();
                        match get_once(&client, &url, &token).await {
                            Ok((true, n)) => {
                                latencies.push(t.elapsed().as_micros() as u64);
                                body_bytes = n;
                            }
                            _ => errors += 1,
                        }
                    }
                    (latencies, errors, body_bytes)
                })
            })
            .collect();
        tokio::time::sleep_until(start).await;
        let cpu_at_start = (cpu_seconds(server_pid), cpu_seconds(me));
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        let cpu = (
            cpu_seconds(server_pid) - cpu_at_start.0,
            cpu_seconds(me) - cpu_at_start.1,
        );
        (results, cpu)
    });
    let elapsed = seconds.max(1e-9);
    let mut latencies_us = Vec::new();
    let (mut errors, mut body_bytes) = (0, 0);
    for (l, e, b) in results {
        latencies_us.extend(l);
        errors += e;
        body_bytes = body_bytes.max(b);
    }
    latencies_us.sort_unstable();
    Load {
        requests: latencies_us.len(),
        errors,
        seconds: elapsed,
        latencies_us,
        body_bytes,
        server_cpu_s: cpu.0,
        client_cpu_s: cpu.1,
    }
}

/// One GET: whether it answered 200, and the body's size.
async fn get_once(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<(bool, usize), reqwest::Error> {
    let answer = client
        .get(url)
        .header("Authorization", token)
        .send()
        .await?;
    let ok = answer.status().as_u16() == 200;
    let body = answer.bytes().await?;
    Ok((ok, body.len()))
}

fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

struct ApiRun {
    frames: u64,
    wall_s: f64,
    server_fps: f64,
}

/// Uploads `video`, follows it to its end; frames / (upload start to succeeded).
fn through_api(server: &Server, video: &Path) -> ApiRun {
    let name = video.file_name().unwrap().to_string_lossy().into_owned();
    let started = Instant::now();
    let up = upload(server, video, &name);
    assert_eq!(up.status, 202, "upload of {name}: {}", up.body);
    let id = up.body["id"].as_str().unwrap().to_string();
    server.follow(&id);
    let wall_s = started.elapsed().as_secs_f64();
    let view = server.get(&id);
    assert_eq!(view["status"], "succeeded", "{view}");
    let summary = &view["summary"];
    ApiRun {
        frames: summary["frames_processed"].as_u64().unwrap(),
        wall_s,
        server_fps: summary["frames_per_second"].as_f64().unwrap_or(f64::NAN),
    }
}

struct DetectRun {
    frames: u64,
    process_s: f64,
    pipeline_fps: f64,
}

fn argus_detect(video: &Path, chunk: u64, threads: usize, tasks: usize) -> DetectRun {
    let out = std::env::temp_dir().join(format!("argus-bench-api-{}.json", std::process::id()));
    let started = Instant::now();
    let output = Command::new(argus_bin())
        .args(["detect", "-q", "--device", "cpu", "-o"])
        .arg(&out)
        .arg(video)
        .args(["--chunk-size", &chunk.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .output()
        .expect("run argus detect");
    let process_s = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "argus detect: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    DetectRun {
        frames: result["summary"]["frames_processed"].as_u64().unwrap(),
        process_s,
        pipeline_fps: result["summary"]["frames_per_second"].as_f64().unwrap(),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks; nothing to list
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let upload_mib: u64 = knob("ARGUS_BENCH_UPLOAD_MB", 1024);
    let clients: usize = knob("ARGUS_BENCH_CLIENTS", 200);
    let seconds: f64 = knob("ARGUS_BENCH_SECONDS", 10.0);
    let reps: usize = knob("ARGUS_BENCH_REPS", 3);
    let videos: String = knob(
        "ARGUS_BENCH_VIDEOS",
        "carphone_pristine.mp4,bikes.mp4".to_string(),
    );
    let (chunk, threads, tasks) = (64u64, cores, 2usize);
    println!(
        "# Argus REST API benchmark ({cores} cores, CPU, malloc: {}, release argus serve on loopback)\n",
        argus_detector::allocator::name()
    );
    println!("started {}; load average {}\n", now_utc(), loadavg());

    big_upload(upload_mib);

    // One server for parts 2 and 3, the same settings as the argus detect runs.
    let server = Server::start(
        "serve",
        &[
            ("ARGUS_CHUNK_SIZE", chunk.to_string()),
            ("ARGUS_TORCH_THREADS", threads.to_string()),
            ("ARGUS_DETECT_TASKS", tasks.to_string()),
            ("ARGUS_API_WORKERS", cores.to_string()),
        ],
    );
    // Warm-up (first model runs) and the finished video for part 2.
    let carphone = argus_common::paths::media_dir().join("carphone_pristine.mp4");
    let warm = upload(&server, &carphone, "carphone_pristine.mp4");
    assert_eq!(warm.status, 202, "{}", warm.body);
    let finished = warm.body["id"].as_str().unwrap().to_string();
    server.follow(&finished);
    assert_eq!(server.get(&finished)["status"], "succeeded");

    println!(
        "## 2. GET /api/v1/videos/{{id}} (a succeeded video, with its summary), {clients} concurrent clients\n"
    );
    println!(
        "client: tokio + reqwest 0.12 in the benchmark process ({cores} runtime threads), one \
         connection per client, on the same {cores} cores as the server ({} API workers)\n",
        cores
    );
    let load = get_load(&server, &finished, clients, seconds, cores);
    println!("| figure | value |");
    println!("|---|---|");
    println!("| duration | {:.1} s |", load.seconds);
    println!("| requests (200 OK) | {} |", load.requests);
    println!("| errors (non-200 or failed) | {} |", load.errors);
    println!(
        "| requests/s | {:.0} |",
        load.requests as f64 / load.seconds
    );
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        println!(
            "| latency {name} | {:.1} ms |",
            percentile_ms(&load.latencies_us, q)
        );
    }
    println!("| answer body | {} bytes |", load.body_bytes);
    println!(
        "| CPU used: server / client | {:.2} / {:.2} cores |\n",
        load.server_cpu_s / load.seconds,
        load.client_cpu_s / load.seconds
    );

    println!(
        "## 3. frames/s through the API against argus detect (chunk size {chunk}, {threads} torch threads, {tasks} tasks, batch 1)\n"
    );
    println!(
        "API: upload start to `succeeded` (followed on the event stream), server warm; detect: \
         the release `argus detect` process (pipeline: its summary's frames/s, model load \
         excluded; process: start to exit). The server's own summary counts from the video's \
         `queued` state (after upload and probe) to the merge. Runs alternate, {reps} of each.\n"
    );
    println!("| video | run | frames | API frames/s | API wall s | server summary frames/s (queued to merged) | detect pipeline frames/s | detect process frames/s | detect process s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut summary_rows = Vec::new();
    for name in videos.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let path = argus_common::paths::media_dir().join(name);
        let (mut api, mut detect) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            // Alternate which goes first, so that drift falls on both.
            if rep % 2 == 0 {
                api.push(through_api(&server, &path));
                detect.push(argus_detect(&path, chunk, threads, tasks));
            } else {
                detect.push(argus_detect(&path, chunk, threads, tasks));
                api.push(through_api(&server, &path));
            }
            let (a, d) = (api.last().unwrap(), detect.last().unwrap());
            println!(
                "| {name} | {} | {} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.2} |",
                rep + 1,
                a.frames,
                a.frames as f64 / a.wall_s,
                a.wall_s,
                a.server_fps,
                d.pipeline_fps,
                d.frames as f64 / d.process_s,
                d.process_s
            );
        }
        let api_fps = median(
            &api.iter()
                .map(|a| a.frames as f64 / a.wall_s)
                .collect::<Vec<_>>(),
        );
        let detect_pipeline = median(&detect.iter().map(|d| d.pipeline_fps).collect::<Vec<_>>());
        let detect_process = median(
            &detect
                .iter()
                .map(|d| d.frames as f64 / d.process_s)
                .collect::<Vec<_>>(),
        );
        summary_rows.push((name.to_string(), api_fps, detect_pipeline, detect_process));
    }
    println!("\n| video | API frames/s (median) | detect pipeline frames/s (median) | detect process frames/s (median) | API / detect pipeline (goal ≥ 0.95) | API / detect process |");
    println!("|---|---|---|---|---|---|");
    for (name, api, pipeline, process) in summary_rows {
        println!(
            "| {name} | {api:.1} | {pipeline:.1} | {process:.1} | {:.2} | {:.2} |",
            api / pipeline,
            api / process
        );
    }
    server.stop();
    println!("\nended {}; load average {}", now_utc(), loadavg());
}
