//! The web console in a real browser: `argus serve` (the real model on the CPU, memory://
//! queues, SQLite) on a loopback port, and Debian's headless Chromium driven by Playwright
//! (`web/e2e/console.mjs`, npm `playwright-core`) through every step a person takes: log in,
//! upload carphone through the file input, watch it reach `succeeded` without a reload, seek to
//! a frame and find the person's box drawn on the canvas where the result says, toggle the class
//! off and on, click the timeline, step frames from the keyboard, download the CSV, run axe-core
//! on every page, log out, and come back through an expired session.
//!
//! The screenshots (1280×800 and a phone's 390×844) and the script's report are kept under
//! `$CARGO_TARGET_TMPDIR/console/` for a person to look at.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::media;
use common::serve::{Server, PASSWORD};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_person_reviews_a_video_in_the_console() {
    let web = repo().join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run scripts/setup.sh"
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();

    let server = Server::start("console");
    let run = Command::new("node")
        .arg(web.join("e2e/console.mjs"))
        .current_dir(&web)
        .env("ARGUS_URL", &server.url)
        .env("ARGUS_USER", "admin")
        .env("ARGUS_PASSWORD", PASSWORD)
        .env("ARGUS_VIDEO", media("carphone_pristine.mp4"))
        .env("ARGUS_OUT", &out)
        .output()
        .expect("node (scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report.json"))
            .expect("the report is JSON");
    println!("report: {report}");
    for shot in ["login", "videos", "video", "users"] {
        for suffix in ["", "-phone"] {
            let file = out.join(format!("{shot}{suffix}.png"));
            let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", file.display());
        }
    }
    server.stop();
}
