//! Progress of a video: a bar on a terminal (frames done/total, frames/s, ETA), plain lines
//! when stderr is a file or a pipe (CI logs, `2> log`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub enum Reporter {
    Bar(ProgressBar),
    Lines {
        total: AtomicU64,
        done: AtomicU64,
        started: Instant,
        last: Mutex<Instant>,
    },
    Silent,
}

impl Reporter {
    pub fn for_stderr(quiet: bool) -> Reporter {
        if quiet {
            Reporter::Silent
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {pos}/{len} frames  {per_sec}  ETA {eta}",
                )
                .expect("valid template"),
            );
            Reporter::Bar(bar)
        } else {
            Reporter::Lines {
                total: AtomicU64::new(0),
                done: AtomicU64::new(0),
                started: Instant::now(),
                last: Mutex::new(Instant::now()),
            }
        }
    }

    pub fn finish(&self) {
        match self {
            Reporter::Bar(bar) => bar.finish_and_clear(),
            Reporter::Lines { total, .. } if total.load(Ordering::Relaxed) > 0 => self.line(),
            Reporter::Lines { .. } | Reporter::Silent => {}
        }
    }

    fn line(&self) {
        if let Reporter::Lines {
            total,
            done,
            started,
            ..
        } = self
        {
            let (done, total) = (done.load(Ordering::Relaxed), total.load(Ordering::Relaxed));
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let eta = if rate > 0.0 {
                (total.saturating_sub(done)) as f64 / rate
            } else {
                0.0
            };
            eprintln!("progress: {done}/{total} frames, {rate:.1} frames/s, ETA {eta:.0} s");
        }
    }
}

impl Reporter {
    /// The video has this many frames.
    pub fn start(&self, total_frames: u64) {
        match self {
            Reporter::Bar(bar) => bar.set_length(total_frames),
            Reporter::Lines { total, .. } => total.store(total_frames, Ordering::Relaxed),
            Reporter::Silent => {}
        }
    }

    /// This many more frames are done.
    pub fn advance(&self, frames: u64) {
        match self {
            Reporter::Bar(bar) => bar.inc(frames),
            Reporter::Lines { done, last, .. } => {
                done.fetch_add(frames, Ordering::Relaxed);
                let mut last = last.lock().expect("not poisoned");
                if last.elapsed() >= Duration::from_secs(2) {
                    *last = Instant::now();
                    drop(last);
                    self.line();
                }
            }
            Reporter::Silent => {}
        }
    }
}
