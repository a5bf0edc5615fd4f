//! Swagger UI in a real browser: `argus serve` (the real binary) driven by headless Chromium
//! through chromedriver (WebDriver), the way a person uses `/swagger-ui/`: Authorize with the
//! OAuth2 password flow (username + password typed into the dialog), upload the sample video
//! through `POST /api/v1/videos` (Try it out, multipart, the file picker), follow it with
//! `GET /api/v1/videos/{id}` until it has succeeded, and read `GET /api/v1/videos/{id}/result`.
//! Every step asserts on what the page shows. Screenshots of the key steps are written under
//! the test's scratch directory and copied to `/tmp/argus-swagger-*.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/setup.sh installs them); a missing
//! browser or driver fails the test, it never skips.
//!
//! Selectors follow the Swagger UI that utoipa-swagger-ui 9 vendors (5.17.14).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{media, scratch};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const PASSWORD: &str = "correct-horse-battery";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Window size of the browser (screenshots of a step grow it to fit what they show).
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1000;
/// How long the page may take for one step (render, a response).
const STEP: Duration = Duration::from_secs(30);
/// How long the video may take to be detected (CPU; about 110 s on 2 busy cores, so a
/// ceiling well above that: the poll stops as soon as the page shows `succeeded`).
const DETECTION: Duration = Duration::from_secs(300);

/// `argus serve` on a free port, API + workers in one process; killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(storage: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
            .arg("serve")
            .env("ARGUS_STORAGE_DIR", storage)
            .env("ARGUS_BIND", "127.0.0.1:0")
            .env("ARGUS_ADMIN_USER", "admin")
            .env("ARGUS_ADMIN_PASSWORD", PASSWORD)
            .env("ARGUS_DEVICE", "cpu")
            .env("ARGUS_CHUNK_SIZE", "32")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start argus serve");
        // It prints its address once listening; whatever it prints later is drained, so that
        // its stdout never becomes a closed pipe.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                eprintln!("argus serve: {line}");
            }
        });
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver on a free port, in its own process group: dropping it kills the group, so a
/// browser it started cannot outlive a failed test.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        for (binary, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(binary).is_file(),
                "{binary} missing: install the Debian package {package} (scripts/setup.sh does)"
            );
        }
        let port = argus_testkit::free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver does not listen on {port}: see {}",
                dir.join("chromedriver.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A new headless Chromium session, with an empty profile under `dir`.
async fn browser(driver: &Driver, dir: &Path) -> Client {
    let profile = dir.join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--window-size={WIDTH},{HEIGHT}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("no Chromium session from chromedriver: {e}"))
}

/// Waits for `css` under `root` (an element, or the page when `None`).
async fn wait_for(c: &Client, root: Option<&Element>, css: &str, what: &str) -> Element {
    let started = Instant::now();
    loop {
        let found = match root {
            Some(root) => root.find(Locator::Css(css)).await,
            None => c.find(Locator::Css(css)).await,
        };
        if let Ok(element) = found {
            return element;
        }
        assert!(
            started.elapsed() < STEP,
            "the page does not show {what} ({css}) after {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `css` under `root` is gone.
async fn wait_gone(root: &Element, css: &str, what: &str) {
    let started = Instant::now();
    while root.find(Locator::Css(css)).await.is_ok() {
        assert!(
            started.elapsed() < STEP,
            "the page still shows {what} ({css}) after {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operation block of `METHOD path` (its summary carries the path in `data-path`).
async fn operation(c: &Client, method: &str, path: &str) -> Element {
    let xpath = format!(
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' opblock-{method} ')]\
         [.//*[contains(@class, 'opblock-summary-path') and @data-path='{path}']]"
    );
    c.find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|_| panic!("no operation {method} {path} on the page"))
}

/// Expands the operation and presses "Try it out"; returns the operation block.
/// Types `id` into an operation's `{id}` path parameter.
async fn fill_path_id(op: &Element, id: &str) {
    op.find(Locator::Css(
        "tr[data-param-name='id'][data-param-in='path'] input",
    ))
    .await
    .unwrap()
    .send_keys(id)
    .await
    .unwrap();
}

async fn try_it_out(c: &Client, method: &str, path: &str) -> Element {
    let op = operation(c, method, path).await;
    let class = op.attr("class").await.unwrap().unwrap_or_default();
    if !class.split_whitespace().any(|c| c == "is-open") {
        op.find(Locator::Css(".opblock-summary-control"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    let button = wait_for(c, Some(&op), ".try-out__btn", "Try it out").await;
    assert_eq!(button.text().await.unwrap().trim(), "Try it out");
    button.click().await.unwrap();
    wait_for(c, Some(&op), "button.execute", "Execute").await;
    op
}

/// What the page shows as the server's response of an operation.
struct Shown {
    status: u16,
    body: String,
    /// The curl command Swagger UI shows for the request it sent.
    curl: String,
    /// The whole response cell: body, then the response headers.
    headers: String,
}

/// Presses Execute (after Clear, when a response is shown) and reads the server's response
/// from the page.
async fn execute(c: &Client, op: &Element) -> Shown {
    const LIVE: &str = ".live-responses-table tr.response";
    if let Ok(clear) = op.find(Locator::Css("button.btn-clear")).await {
        clear.click().await.unwrap();
        wait_gone(op, LIVE, "the previous response").await;
    }
    op.find(Locator::Css("button.execute"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = wait_for(c, Some(op), LIVE, "the server response").await;
    let status_text = row
        .find(Locator::Css("td.response-col_status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status = status_text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {status_text:?}"));
    // textContent: the JSON exactly as Swagger UI formatted it, not as laid out on screen.
    let text_of = |css: &'static str, root: Element| async move {
        let script = format!(
            "const e = arguments[0].querySelector({css:?}); return e ? e.textContent : '';"
        );
        c.execute(&script, vec![serde_json::to_value(&root).unwrap()])
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let body = text_of(".highlight-code pre", row.clone()).await;
    let headers = text_of("td.response-col_description", row).await;
    let curl = text_of(".curl-command .curl", op.clone()).await;
    Shown {
        status,
        body,
        curl,
        headers,
    }
}

/// Screenshots: written under `dir`, copied to `/tmp/argus-swagger-NAME.png`.
struct Shots {
    dir: PathBuf,
    taken: Vec<(PathBuf, PathBuf)>,
}

impl Shots {
    /// The viewport as it is.
    async fn page(&mut self, c: &Client, name: &str) {
        let png = c.screenshot().await.unwrap();
        self.save(name, &png);
    }

    /// `top` scrolled to the top of a window tall enough to show everything down to the
    /// bottom of `bottom`.
    async fn region(&mut self, c: &Client, top: &Element, bottom: &Element, name: &str) {
        let measure = "const [top, bottom] = arguments; top.scrollIntoView({block: 'start'}); \
                       const height = bottom.getBoundingClientRect().bottom \
                                      - top.getBoundingClientRect().top; \
                       return [Math.ceil(height), window.outerHeight - window.innerHeight];";
        let args = vec![
            serde_json::to_value(top).unwrap(),
            serde_json::to_value(bottom).unwrap(),
        ];
        let sizes = c.execute(measure, args.clone()).await.unwrap();
        let (height, chrome) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
        let window = (height + chrome + 16).clamp(HEIGHT as u64, 6000) as u32;
        c.set_window_size(WIDTH, window).await.unwrap();
        c.execute("arguments[0].scrollIntoView({block: 'start'});", args)
            .await
            .unwrap();
        let png = c.screenshot().await.unwrap();
        c.set_window_size(WIDTH, HEIGHT).await.unwrap();
        self.save(name, &png);
    }

    fn save(&mut self, name: &str, png: &[u8]) {
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        let copy = PathBuf::from(format!("/tmp/argus-swagger-{name}.png"));
        std::fs::write(&copy, png).unwrap();
        println!(
            "screenshot {name}: {} (copy: {})",
            path.display(),
            copy.display()
        );
        self.taken.push((path, copy));
    }
}

fn json_of(shown: &Shown, what: &str) -> Value {
    serde_json::from_str(&shown.body)
        .unwrap_or_else(|e| panic!("{what}: the page shows no JSON body ({e}): {}", shown.body))
}

/// The issue's check: the Swagger UI loads in headless Chromium and its Authorize + upload
/// flow works there, end to end.
#[tokio::test]
async fn swagger_ui_authorize_upload_and_result_in_chromium() {
    let dir = scratch("swagger-ui");
    let video = media("carphone_pristine.mp4");
    let server = Server::start(&dir.join("storage"));
    let driver = Driver::start(&dir);
    let c = browser(&driver, &dir).await;
    let mut shots = Shots {
        dir: dir.join("screenshots"),
        taken: Vec::new(),
    };
    std::fs::create_dir_all(&shots.dir).unwrap();

    // The flow runs as its own task so that a failed assertion still closes the browser.
    let flow = {
        let c = c.clone();
        let url = server.url.clone();
        tokio::spawn(async move {
            flow(&c, &url, &video, &mut shots).await;
            shots
        })
    };
    let outcome = flow.await;
    if outcome.is_err() {
        // What the page showed when it failed.
        if let Ok(png) = c.screenshot().await {
            let path = dir.join("failure.png");
            std::fs::write(&path, png).unwrap();
            eprintln!("the page when the test failed: {}", path.display());
        }
    }
    let _ = c.close().await;
    drop(driver);
    drop(server);
    match outcome {
        Ok(shots) => {
            assert_eq!(shots.taken.len(), 4);
            let _ = std::fs::remove_dir_all(dir.join("chromium-profile"));
        }
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn flow(c: &Client, url: &str, video: &Path, shots: &mut Shots) {
    let started = Instant::now();
    let step = |what: &str| println!("{:>6.1} s  {what}", started.elapsed().as_secs_f64());
    // The page renders the document's operations.
    c.goto(&format!("{url}/swagger-ui/")).await.unwrap();
    wait_for(c, None, ".opblock .opblock-summary", "the operations").await;
    step("Swagger UI rendered the operations");
    let title = wait_for(c, None, ".info .title", "the title").await;
    assert!(
        title.text().await.unwrap().contains("Argus API"),
        "title: {}",
        title.text().await.unwrap()
    );

    // Authorize: the OAuth2 password flow, username and password typed as a person does.
    let open = wait_for(c, None, ".auth-wrapper button.authorize", "Authorize").await;
    open.click().await.unwrap();
    wait_for(c, None, ".dialog-ux #oauth_username", "the login fields").await;
    let oauth2 = c
        .find(Locator::XPath(
            "//div[contains(@class, 'auth-container')][.//input[@id='oauth_username']]",
        ))
        .await
        .unwrap();
    let heading = oauth2.find(Locator::Css("h4")).await.unwrap();
    assert!(
        heading
            .text()
            .await
            .unwrap()
            .contains("oauth2 (OAuth2, password)"),
        "{}",
        heading.text().await.unwrap()
    );
    let field = |css: &'static str| {
        let oauth2 = oauth2.clone();
        async move { oauth2.find(Locator::Css(css)).await.unwrap() }
    };
    field("#oauth_username")
        .await
        .send_keys("admin")
        .await
        .unwrap();
    field("#oauth_password")
        .await
        .send_keys(PASSWORD)
        .await
        .unwrap();
    // client_id / client_secret stay empty: the token endpoint needs neither.
    oauth2
        .find(Locator::XPath(".//button[contains(@class, 'authorize')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        if let Ok(error) = oauth2.find(Locator::Css(".errors")).await {
            panic!("Authorize failed: {}", error.text().await.unwrap());
        }
        if let Ok(done) = oauth2.find(Locator::XPath(".//h6")).await {
            assert_eq!(done.text().await.unwrap().trim(), "Authorized");
            break;
        }
        assert!(started.elapsed() < STEP, "Authorize: no answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = oauth2.text().await.unwrap();
    assert!(shown.contains("username: admin"), "{shown}");
    assert!(oauth2
        .find(Locator::XPath(".//button[normalize-space()='Logout']"))
        .await
        .is_ok());
    c.execute(
        "arguments[0].scrollIntoView({block: 'start'});",
        vec![serde_json::to_value(&oauth2).unwrap()],
    )
    .await
    .unwrap();
    step("authorized");
    shots.page(c, "1-authorized").await;
    oauth2
        .find(Locator::Css("button.btn-done"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let body = c.find(Locator::Css("body")).await.unwrap();
    wait_gone(&body, ".dialog-ux", "the Authorize dialog").await;
    let lock = c
        .find(Locator::Css(".auth-wrapper button.authorize"))
        .await
        .unwrap();
    let class = lock.attr("class").await.unwrap().unwrap_or_default();
    assert!(
        class.contains("locked") && !class.contains("unlocked"),
        "{class}"
    );

    // Upload: multipart/form-data, the sample video chosen for `file`.
    let upload = try_it_out(c, "post", "/api/v1/videos").await;
    let body_section = upload
        .find(Locator::Css(".opblock-section-request-body"))
        .await
        .unwrap();
    body_section
        .find(Locator::Css("select.content-type"))
        .await
        .unwrap()
        .select_by_value("multipart/form-data")
        .await
        .unwrap();
    let file = wait_for(
        c,
        Some(&body_section),
        "tr[data-property-name='file'] input[type='file']",
        "the file picker of field `file`",
    )
    .await;
    file.send_keys(video.to_str().unwrap()).await.unwrap();
    let sent = execute(c, &upload).await;
    assert_eq!(sent.status, 202, "upload: {}", sent.body);
    assert!(
        sent.curl.contains("Authorization: Bearer ") && !sent.curl.contains("Bearer Bearer"),
        "the request does not carry the token from Authorize: {}",
        sent.curl
    );
    assert!(sent.curl.contains("multipart/form-data"), "{}", sent.curl);
    let queued = json_of(&sent, "upload");
    let id = queued["id"].as_str().expect("an id").to_string();
    assert_eq!(queued["filename"], "carphone_pristine.mp4", "{queued}");
    assert_eq!(queued["owner"], "admin", "{queued}");
    assert_eq!(queued["video"]["frame_count"], 120, "{queued}");
    assert!(
        sent.headers
            .contains(&format!("location: /api/v1/videos/{id}")),
        "{}",
        sent.headers
    );
    step(&format!(
        "uploaded: 202, id {id}, options {}",
        queued["options"]
    ));
    // Only the file was chosen: no option may have been sent behind the person's back (Swagger
    // UI fills a form's fields with their schema examples).
    assert_eq!(queued["options"], serde_json::json!({}), "{queued}");
    let live = upload
        .find(Locator::Css(".live-responses-table"))
        .await
        .unwrap();
    shots.region(c, &upload, &live, "2-uploaded").await;

    // Progress: GET /api/v1/videos/{id}, executed again until it shows `succeeded`.
    let status_op = try_it_out(c, "get", "/api/v1/videos/{id}").await;
    fill_path_id(&status_op, &id).await;
    let started = Instant::now();
    let done = loop {
        let shown = execute(c, &status_op).await;
        assert_eq!(shown.status, 200, "status: {}", shown.body);
        let view = json_of(&shown, "status");
        assert_eq!(view["id"], id.as_str());
        match view["status"].as_str().unwrap() {
            "succeeded" => break view,
            "failed" | "cancelled" => panic!("the video did not succeed: {view}"),
            _ => {}
        }
        assert!(
            started.elapsed() < DETECTION,
            "not succeeded after {DETECTION:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(done["progress"]["frames_done"], 120, "{done}");
    step("the page shows `succeeded`");
    let live = status_op
        .find(Locator::Css(".live-responses-table"))
        .await
        .unwrap();
    shots.region(c, &status_op, &live, "3-succeeded").await;

    // The result document.
    let result_op = try_it_out(c, "get", "/api/v1/videos/{id}/result").await;
    fill_path_id(&result_op, &id).await;
    let shown = execute(c, &result_op).await;
    assert_eq!(shown.status, 200, "result: {}", shown.body);
    assert!(shown.body.contains("\"frames\""), "{}", shown.body);
    assert!(shown.body.contains("\"person\""), "{}", shown.body);
    let result = json_of(&shown, "result");
    assert_eq!(result["frames"].as_array().map(Vec::len), Some(120));
    assert!(
        result["summary"]["top_classes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|class| class == "person"),
        "{}",
        result["summary"]
    );
    step("the result: 200, 120 frames, person among them");
    // The response box scrolls: bring its `"frames"` line to the top for the screenshot.
    let live = result_op
        .find(Locator::Css(".live-responses-table"))
        .await
        .unwrap();
    let scrolled = c
        .execute(
            r#"const box = arguments[0].querySelector('.highlight-code pre');
               const walk = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
               for (let n = walk.nextNode(); n; n = walk.nextNode()) {
                 const at = n.textContent.indexOf('"frames"');
                 if (at < 0) continue;
                 const range = document.createRange();
                 range.setStart(n, at);
                 range.setEnd(n, at + 8);
                 let scroller = n.parentElement;
                 while (scroller !== box && scroller.scrollHeight <= scroller.clientHeight)
                   scroller = scroller.parentElement;
                 scroller.scrollTop += range.getBoundingClientRect().top
                                       - scroller.getBoundingClientRect().top - 8;
                 return true;
               }
               return false;"#,
            vec![serde_json::to_value(&live).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(
        scrolled,
        Value::Bool(true),
        "no \"frames\" in the response box"
    );
    shots.region(c, &result_op, &live, "4-result").await;
}
