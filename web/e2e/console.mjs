// End-to-end test of the web console in Chromium against a running Argus server.
//
//   ARGUS_URL=http://127.0.0.1:8080 ARGUS_USER=admin ARGUS_PASSWORD=... \
//   ARGUS_VIDEO=.../carphone_pristine.mp4 ARGUS_OUT=out/e2e node e2e/console.mjs
//
// One line per passed step; the first failure throws with what was expected and what was seen
// (exit status 1). Screenshots and report.json go to ARGUS_OUT. Only ARGUS_URL is contacted:
// any other request the page makes is blocked and fails the run.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') throw new Error(`set ${name}`);
  return value;
};
const BASE = env('ARGUS_URL').replace(/\/$/, '');
const USER = env('ARGUS_USER');
const PASSWORD = env('ARGUS_PASSWORD');
const VIDEO = resolve(env('ARGUS_VIDEO'));
const OUT = resolve(env('ARGUS_OUT'));
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const PROCESS_TIMEOUT_MS = Number(process.env.ARGUS_PROCESS_TIMEOUT_S ?? 180) * 1000;
const ORIGIN = new URL(BASE).origin;

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

mkdirSync(OUT, { recursive: true });
const report = { url: BASE, video: basename(VIDEO), started_at: new Date().toISOString(), steps: [], timings_ms: {} };
const started = Date.now();

function check(condition, message) {
  if (!condition) throw new Error(message);
}
function passed(step, detail = '') {
  report.steps.push({ step, ok: true, detail });
  console.log(`ok ${report.steps.length} - ${step}${detail ? `: ${detail}` : ''}`);
}
const path = (page) => {
  const u = new URL(page.url());
  return u.pathname + u.search;
};

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
});

const blocked = [];
const problems = [];
async function newContext(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, deviceScaleFactor: 1 });
  // Traffic only to the server under test.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || url.startsWith('blob:') || new URL(url).origin === ORIGIN) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  context.on('page', watch);
  return context;
}
function watch(page) {
  page.on('console', (msg) => {
    // CSP violations and script errors; 401s of the expired-token step are expected.
    if (msg.type() === 'error' && !/status of 401/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
}

/** axe-core's serious and critical violations on the page as it is now. */
async function axe(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern (an injected
  // <script> would be blocked by script-src 'self').
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(`${AXE_SOURCE}\n;true`);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

async function login(page) {
  await page.getByLabel('Username').fill(USER);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** Reads the overlay canvas around a box (video pixels): hits of `color` on its left edge and
 * inside its centre (where nothing of that colour should be, other boxes' marks excepted). */
async function sampleBox(page, box, color, probe, others) {
  return page.evaluate(
    ({ box, color, probe, others }) => {
      const canvas = document.querySelector('[data-testid="overlay"]');
      const video = document.querySelector('video');
      const ctx = canvas.getContext('2d');
      const cw = canvas.clientWidth;
      const ch = canvas.clientHeight;
      const dpr = canvas.width / cw;
      const pw = video.videoWidth || probe.width;
      const ph = video.videoHeight || probe.height;
      const scale = Math.min(cw / pw, ch / ph);
      const ox = (cw - pw * scale) / 2;
      const oy = (ch - ph * scale) / 2;
      const sx = (pw * scale) / probe.width;
      const sy = (ph * scale) / probe.height;
      const map = (b) => [ox + b[0] * sx, oy + b[1] * sy, ox + b[2] * sx, oy + b[3] * sy];
      const [x1, y1, x2, y2] = map(box);
      const marks = others.map(map);
      const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      const want = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
      const matches = (x, y) => {
        const px = Math.round(x * dpr);
        const py = Math.round(y * dpr);
        if (px < 0 || py < 0 || px >= canvas.width || py >= canvas.height) return false;
        const i = (py * canvas.width + px) * 4;
        return pixels[i + 3] > 200 && want.every((c, k) => Math.abs(pixels[i + k] - c) <= 40);
      };
      // Left edge, middle 40% of its height: any matching pixel within ±4 px of the line.
      let edgeHits = 0;
      let edgeSamples = 0;
      for (let y = y1 + 0.3 * (y2 - y1); y <= y1 + 0.7 * (y2 - y1); y += 2) {
        edgeSamples++;
        for (let dx = -4; dx <= 4; dx += 0.5) {
          if (matches(x1 + dx, y)) {
            edgeHits++;
            break;
          }
        }
      }
      // The centre (30%..70% both ways), away from other boxes' edges and labels.
      const nearOther = (x, y) =>
        marks.some(([a, b, c, d]) => {
          const nearEdge = (Math.abs(x - a) < 6 || Math.abs(x - c) < 6) && y > b - 6 && y < d + 6;
          const nearTop = (Math.abs(y - b) < 6 || Math.abs(y - d) < 6) && x > a - 6 && x < c + 6;
          const label = x > a - 4 && x < a + 160 && y > b - 20 && y < b + 18;
          return nearEdge || nearTop || label;
        });
      let insideHits = 0;
      let insideSamples = 0;
      for (let i = 0; i <= 10; i++) {
        for (let j = 0; j <= 10; j++) {
          const x = x1 + (0.3 + 0.04 * i) * (x2 - x1);
          const y = y1 + (0.3 + 0.04 * j) * (y2 - y1);
          if (nearOther(x, y)) continue;
          insideSamples++;
          if (matches(x, y)) insideHits++;
        }
      }
      return { edgeHits, edgeSamples, insideHits, insideSamples, canvas: [canvas.width, canvas.height], boxOnCanvas: [x1, y1, x2, y2].map((v) => Math.round(v)) };
    },
    { box, color, probe, others },
  );
}

const overlayAttr = (page, name) => page.locator('[data-testid="overlay"]').getAttribute(`data-${name}`).then(Number);
async function waitOverlayFrame(page, frame, what) {
  try {
    await page.waitForFunction((f) => document.querySelector('[data-testid="overlay"]')?.dataset.frame === String(f), frame, { timeout: 10_000 });
  } catch {
    throw new Error(`${what}: the overlay should show frame ${frame}, it shows ${await overlayAttr(page, 'frame')}`);
  }
}

/** GET an API path from inside the page, with the page's own token. */
const apiGet = (page, url) =>
  page.evaluate(async (url) => {
    const token = JSON.parse(localStorage.getItem('argus.token')).access_token;
    const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
    return response.json();
  }, url);

let exitCode = 0;
try {
  const context = await newContext();
  const page = await context.newPage();

  // 1. Logged out: / sends to /login; log in through the form.
  let t = Date.now();
  await page.goto(`${BASE}/`);
  await page.waitForURL((u) => u.pathname === '/login', { timeout: 10_000 }).catch(() => {
    throw new Error(`/ without a session should go to /login, it is at ${path(page)}`);
  });
  await login(page);
  await page.waitForURL((u) => u.pathname === '/', { timeout: 10_000 }).catch(async () => {
    const alert = await page.getByRole('alert').textContent().catch(() => null);
    throw new Error(`after logging in the console should be at /, it is at ${path(page)}${alert ? ` (alert: ${alert})` : ''}`);
  });
  await page.getByRole('heading', { level: 1, name: 'Videos' }).waitFor();
  report.timings_ms.login = Date.now() - t;
  const who = await page.locator('[data-testid="current-user"]').textContent();
  check(who.includes('(admin)'), `ARGUS_USER must be an admin (the /users page is tested); the header says "${who}"`);
  passed('login', `redirected to /login, logged in as ${USER} in ${report.timings_ms.login} ms`);

  // 2. Upload through the file input; the row reaches `succeeded` live, without a reload.
  await page.evaluate(() => {
    window.__noReload = true;
    window.__seen = [];
    // Every status and progress value any row shows, as the DOM changes.
    const record = () => {
      for (const row of document.querySelectorAll('tr[data-video-id]')) {
        const status = row.querySelector('[data-testid="status"]')?.textContent ?? '';
        const progress = row.querySelector('[data-testid="progress"]')?.value ?? -1;
        const last = window.__seen.findLast((s) => s.id === row.dataset.videoId);
        if (!last || last.status !== status || last.progress !== progress) window.__seen.push({ id: row.dataset.videoId, status, progress, at: performance.now() });
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  t = Date.now();
  const uploaded = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/videos' && r.request().method() === 'POST', { timeout: 120_000 });
  await page.locator('input[type="file"]').setInputFiles(VIDEO);
  const response = await uploaded;
  check(response.status() === 201 || response.status() === 202, `the upload should be accepted (201/202), it answered ${response.status()}: ${await response.text()}`);
  const created = await response.json();
  const id = created.id;
  report.video_id = id;
  report.timings_ms.upload = Date.now() - t;
  const row = page.locator(`tr[data-video-id="${id}"]`);
  await row.waitFor({ timeout: 15_000 }).catch(() => {
    throw new Error(`the list should show the uploaded video ${id}`);
  });
  t = Date.now();
  await page
    .waitForFunction((id) => document.querySelector(`tr[data-video-id="${id}"] [data-testid="status"]`)?.textContent === 'succeeded', id, {
      timeout: PROCESS_TIMEOUT_MS,
    })
    .catch(async () => {
      throw new Error(`the row should read succeeded within ${PROCESS_TIMEOUT_MS / 1000} s, it reads ${await row.locator('[data-testid="status"]').textContent()}`);
    });
  report.timings_ms.processing_seen = Date.now() - t;
  check(await page.evaluate(() => window.__noReload === true), 'the page reloaded while waiting for the video (window.__noReload is gone)');
  const seen = (await page.evaluate(() => window.__seen)).filter((s) => s.id === id);
  const intermediate = seen.filter((s) => !['succeeded', 'failed', 'cancelled'].includes(s.status) || (s.progress > 0 && s.progress < 100));
  check(intermediate.length > 0, `a status or progress before succeeded should have been shown live; seen: ${JSON.stringify(seen)}`);
  const live = await page.locator('[data-testid="live"]').getAttribute('data-live');
  check(live === 'stream', `the list should follow /api/v1/videos/events (data-live="stream"), it is "${live}"`);
  report.live_states_seen = seen.map((s) => `${s.status}:${s.progress}`);
  passed('upload and live progress', `${id} uploaded in ${report.timings_ms.upload} ms, succeeded ${report.timings_ms.processing_seen} ms later; seen live: ${report.live_states_seen.join(' → ')}`);

  // 3. The video page: seek to a frame with a person; the overlay draws its box there.
  await row.getByRole('link').first().click();
  await page.waitForURL((u) => u.pathname === `/videos/${id}`);
  await page.locator('[data-testid="overlay"]').waitFor({ timeout: 15_000 });
  await page.waitForFunction(() => (document.querySelector('video')?.readyState ?? 0) >= 2, null, { timeout: 20_000 }).catch(() => {
    throw new Error('the player should load the video (readyState ≥ 2) from its signed file URL');
  });
  const view = await apiGet(page, `/api/v1/videos/${id}`);
  const probe = view.video;
  const first = await apiGet(page, `/api/v1/videos/${id}/frames?from=0&to=${Math.min(120, probe.frame_count)}`);
  const persons = (f) => f.detections.filter((d) => d.label === 'person');
  const candidates = first.frames.filter((f) => persons(f).length > 0).sort((a, b) => Math.abs(a.index - 60) - Math.abs(b.index - 60) || persons(a).length - persons(b).length);
  check(candidates.length > 0, 'frames 0..120 should have a person detection');
  const F = candidates.find((f) => persons(f).length === 1) ?? candidates[0];
  const next = first.frames.find((f) => f.index === F.index + 1);
  const half = next ? (next.pts_ms - F.pts_ms) / 2 : 500 / probe.fps;
  await page.evaluate((seconds) => {
    const video = document.querySelector('video');
    video.pause();
    video.currentTime = seconds;
  }, (F.pts_ms + half) / 1000);
  await waitOverlayFrame(page, F.index, 'seek');
  const color = await page.locator('[data-testid="class-toggle-person"]').getAttribute('data-color');
  const person = persons(F).sort((a, b) => b.score - a.score)[0];
  const others = F.detections.filter((d) => d !== person && d.label === 'person').map((d) => d.box);
  const boxesBefore = await overlayAttr(page, 'boxes');
  check(boxesBefore === F.detections.length, `frame ${F.index} has ${F.detections.length} detections, the overlay drew ${boxesBefore}`);
  const on = await sampleBox(page, person.box, color, probe, others);
  check(on.edgeHits >= 0.5 * on.edgeSamples, `the person's colour ${color} should be on the box's left edge: ${on.edgeHits} of ${on.edgeSamples} points (${JSON.stringify(on)})`);
  check(on.insideHits <= 0.02 * on.insideSamples, `the person's colour should not fill the box: ${on.insideHits} of ${on.insideSamples} centre points have it`);
  // Tracks: the summary counts different objects as the result does, and the person's label
  // on the canvas carries its track id (read from the API; drawn as "person #N 0.xx").
  const tracksShown = Number(await page.locator('[data-testid="tracks-total"]').textContent());
  check(tracksShown === view.summary.tracks, `the summary should show ${view.summary.tracks} different objects, it shows ${tracksShown}`);
  check(Number.isInteger(person.track_id), `the person at frame ${F.index} should carry a track_id: ${JSON.stringify(person)}`);
  report.overlay = { frame: F.index, color, boxes: boxesBefore, sample_on: on, tracks: tracksShown, person_track: person.track_id };
  passed('overlay', `frame ${F.index}: ${boxesBefore} boxes, ${color} on ${on.edgeHits}/${on.edgeSamples} left-edge points, ${on.insideHits}/${on.insideSamples} inside`);

  // 4. Class toggle: person off removes its boxes (and their pixels); on brings them back.
  await page.locator('[data-testid="class-toggle-person"]').uncheck();
  const expectedOff = F.detections.length - persons(F).length;
  await page.waitForFunction((n) => document.querySelector('[data-testid="overlay"]').dataset.boxes === String(n), expectedOff, { timeout: 5000 }).catch(async () => {
    throw new Error(`with person off the overlay should draw ${expectedOff} boxes, it draws ${await overlayAttr(page, 'boxes')}`);
  });
  const off = await sampleBox(page, person.box, color, probe, []);
  check(off.edgeHits <= 0.05 * off.edgeSamples, `with person off its colour should be gone from the edge: ${off.edgeHits} of ${off.edgeSamples} points still have it`);
  await page.locator('[data-testid="class-toggle-person"]').check();
  await page.waitForFunction((n) => document.querySelector('[data-testid="overlay"]').dataset.boxes === String(n), boxesBefore, { timeout: 5000 }).catch(() => {
    throw new Error(`with person back on the overlay should draw ${boxesBefore} boxes again`);
  });
  passed('class toggle', `person off: ${boxesBefore} → ${expectedOff} boxes, edge hits ${off.edgeHits}/${off.edgeSamples}; back on: ${boxesBefore}`);

  // 5. Timeline click seeks to the frame under the pointer.
  const G = Math.min(30, probe.frame_count - 2);
  const timeline = page.locator('[data-testid="timeline"]');
  await timeline.scrollIntoViewIfNeeded();
  const track = await timeline.boundingBox();
  const count = Number(await timeline.getAttribute('data-frame-count'));
  t = Date.now();
  await page.mouse.click(track.x + ((G + 0.5) / count) * track.width, track.y + track.height / 2);
  await waitOverlayFrame(page, G, `timeline click at frame ${G}`);
  report.timings_ms.timeline_seek = Date.now() - t;
  passed('timeline seek', `clicked frame ${G} of ${count}, overlay at ${G} in ${report.timings_ms.timeline_seek} ms`);

  // 6. Keyboard: `.` one frame forward, `,` one back.
  await page.locator('[data-testid="timeline"]').focus();
  await page.keyboard.press('.');
  await waitOverlayFrame(page, G + 1, 'key "."');
  await page.keyboard.press(',');
  await waitOverlayFrame(page, G, 'key ","');
  passed('frame steps', `"." → ${G + 1}, "," → ${G}`);

  // 7. CSV download: the header and one row per detection.
  let detections = 0;
  for (let from = 0; from < probe.frame_count; from += 1000) {
    const page_ = await apiGet(page, `/api/v1/videos/${id}/frames?from=${from}&to=${Math.min(from + 1000, probe.frame_count)}`);
    detections += page_.frames.reduce((n, f) => n + f.detections.length, 0);
  }
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.locator('[data-testid="download-csv"]').click()]);
  const csvPath = join(OUT, 'result.csv');
  await download.saveAs(csvPath);
  const lines = readFileSync(csvPath, 'utf8').split('\n').filter((l) => l !== '');
  check(lines[0] === 'frame,pts_ms,label,class_id,score,x1,y1,x2,y2,track_id,predicted', `the CSV header should be frame,pts_ms,label,class_id,score,x1,y1,x2,y2,track_id,predicted, it is ${lines[0]}`);
  check(lines.length - 1 === detections, `the CSV should have one row per detection (${detections}), it has ${lines.length - 1}`);
  check(download.suggestedFilename().endsWith('.csv'), `the download should be named *.csv, it is ${download.suggestedFilename()}`);
  report.csv = { rows: lines.length - 1, file: download.suggestedFilename() };
  passed('CSV download', `${download.suggestedFilename()}: ${detections} rows`);

  // 7b. The annotated MP4: made from the video page, followed live, saved through a signed
  // link that answers range requests. Then the original file's link, and another user's token.
  const annotated = { seen: [] };
  report.annotated = annotated;
  await page.evaluate(() => {
    window.__annotated = [];
    // Every status and progress value the annotated row shows, as the DOM changes.
    const record = () => {
      const box = document.querySelector('[data-testid="annotated"]');
      if (!box) return;
      const status = box.dataset.status ?? '';
      const progress = box.querySelector('[data-testid="annotated-progress"]')?.value ?? -1;
      const text = box.querySelector('[data-testid="annotated-state"]')?.textContent ?? '';
      const last = window.__annotated.at(-1);
      if (!last || last.status !== status || last.progress !== progress) window.__annotated.push({ status, progress, text, at: performance.now() });
    };
    record();
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const makeButton = page.locator('[data-testid="make-annotated"]');
  const downloadLink = page.locator('[data-testid="download-annotated"]');
  await page.waitForFunction(() => ['absent', 'succeeded'].includes(document.querySelector('[data-testid="annotated"]')?.dataset.status), null, { timeout: 15_000 }).catch(async () => {
    const status = await page.locator('[data-testid="annotated"]').getAttribute('data-status').catch(() => null);
    throw new Error(`the Download panel should show the annotated MP4's state (absent: a "Make annotated MP4" button), it shows ${status}`);
  });
  annotated.initial = await page.locator('[data-testid="annotated"]').getAttribute('data-status');
  check(annotated.initial === 'absent', `the annotated MP4 of a fresh upload should be absent (a make-annotated button), it is ${annotated.initial}`);
  const seriousBefore = await axe(page);
  annotated.axe_before = seriousBefore;
  check(seriousBefore.length === 0, `axe: the video page with the make-annotated button: ${seriousBefore.map((v) => `${v.impact} ${v.id} (${v.nodes.join(', ')})`).join('; ')}`);
  t = Date.now();
  const posted = page.waitForResponse((r) => new URL(r.url()).pathname === `/api/v1/videos/${id}/annotated` && r.request().method() === 'POST', { timeout: 15_000 });
  await makeButton.click();
  const postResponse = await posted;
  annotated.post_status = postResponse.status();
  check([200, 202].includes(postResponse.status()), `POST /annotated should answer 202 (or 200), it answered ${postResponse.status()}: ${await postResponse.text()}`);
  await downloadLink.waitFor({ timeout: PROCESS_TIMEOUT_MS }).catch(async () => {
    const alert = await page.locator('[data-testid="annotated"] [role="alert"]').allTextContents();
    const status = await page.locator('[data-testid="annotated"]').getAttribute('data-status');
    throw new Error(`the annotated MP4 should be made within ${PROCESS_TIMEOUT_MS / 1000} s (a download-annotated link), it is ${status}${alert.length ? ` (alert: ${alert.join(' | ')})` : ''}`);
  });
  annotated.made_ms = Date.now() - t;
  annotated.seen = (await page.evaluate(() => window.__annotated)).map((s) => ({ status: s.status, progress: s.progress, text: s.text }));
  const between = annotated.seen.filter((s) => s.status === 'queued' || s.status === 'running' || (s.progress >= 0 && s.progress < 100));
  check(
    annotated.seen.some((s) => s.status === 'succeeded'),
    `the annotated row should have reached succeeded; seen: ${JSON.stringify(annotated.seen)}`,
  );
  // A short video can be made between two polls: then only the final state is seen.
  annotated.progress_seen = between.length > 0;
  for (const s of between.filter((s) => s.progress >= 0)) check(s.progress >= 0 && s.progress <= 100, `the annotated progress should be 0..100, it was ${s.progress}`);
  const href = await downloadLink.getAttribute('href');
  const downloadName = await downloadLink.getAttribute('download');
  const shownBytes = Number(await downloadLink.getAttribute('data-size-bytes'));
  annotated.size_text = (await page.locator('[data-testid="annotated-size"]').textContent())?.trim();
  annotated.download_name = downloadName;
  const stem = basename(VIDEO).replace(/\.[^.]+$/, '');
  check(downloadName === `${stem}.annotated.mp4`, `the link should save as ${stem}.annotated.mp4, its download attribute is ${downloadName}`);
  check(/[?&]sig=/.test(href ?? '') && href.includes(`/api/v1/videos/${id}/annotated/file`), `the link should be a signed /annotated/file link, it is ${href}`);
  check(Number.isInteger(shownBytes) && shownBytes > 0, `the size in bytes should be shown with the link, it is ${shownBytes}`);
  // Plain HTTP from Node, no cookie and no header but Range: the link alone must open the file.
  const linkUrl = new URL(href, BASE).toString();
  const part = await fetch(linkUrl, { headers: { Range: 'bytes=0-99' } });
  const partBytes = Buffer.from(await part.arrayBuffer());
  check(part.status === 206, `the annotated link with Range: bytes=0-99 should answer 206, it answered ${part.status}`);
  check(partBytes.length === 100, `the annotated link with Range: bytes=0-99 should send 100 bytes, it sent ${partBytes.length}`);
  check(partBytes.subarray(4, 8).toString('latin1') === 'ftyp', `the annotated file should be an MP4 (bytes 4..8 "ftyp"), they are ${JSON.stringify(partBytes.subarray(4, 8).toString('latin1'))}`);
  const whole = await fetch(linkUrl);
  const wholeLength = Number(whole.headers.get('content-length'));
  const wholeBytes = Buffer.from(await whole.arrayBuffer());
  check(whole.status === 200, `the annotated link without Range should answer 200, it answered ${whole.status}`);
  check(wholeLength === shownBytes, `the annotated file's Content-Length (${wholeLength}) should be the size shown (${shownBytes})`);
  check(wholeBytes.length === shownBytes, `the annotated file should be ${shownBytes} bytes, ${wholeBytes.length} came`);
  check(partBytes.equals(wholeBytes.subarray(0, 100)), 'the range 0-99 should be the first 100 bytes of the whole file');
  annotated.size_bytes = shownBytes;
  annotated.range = { status: part.status, bytes: partBytes.length, content_range: part.headers.get('content-range'), ftyp: true };
  annotated.full = { status: whole.status, content_length: wholeLength, content_type: whole.headers.get('content-type') };
  passed(
    'annotated MP4',
    `made in ${annotated.made_ms} ms (seen: ${annotated.seen.map((s) => `${s.status}:${s.progress}`).join(' → ')}${annotated.progress_seen ? '' : '; only the final state'}); ` +
      `${downloadName}, ${shownBytes} bytes; Range 0-99 → 206 ftyp; full → 200, Content-Length ${wholeLength}`,
  );

  // The original file: a signed link (POST file-url, no ?file) answers ranges with the bytes
  // as uploaded; another user's token cannot read it (404, as for a video that is not there).
  const ranges = {};
  report.ranges = ranges;
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('argus.token')).access_token);
  const bearer = (tok) => ({ Authorization: `Bearer ${tok}`, Accept: 'application/json' });
  const linkAnswer = await fetch(`${BASE}/api/v1/videos/${id}/file-url`, { method: 'POST', headers: bearer(token) });
  check(linkAnswer.ok, `POST /api/v1/videos/${id}/file-url should answer 200, it answered ${linkAnswer.status}: ${await linkAnswer.clone().text()}`);
  const videoLink = (await linkAnswer.json()).url;
  check(typeof videoLink === 'string' && videoLink.includes(`/api/v1/videos/${id}/file?`), `the video link should be /api/v1/videos/${id}/file?…, it is ${videoLink}`);
  const original = await fetch(new URL(videoLink, BASE), { headers: { Range: 'bytes=0-99' } });
  const originalBytes = Buffer.from(await original.arrayBuffer());
  const localBytes = readFileSync(VIDEO).subarray(0, 100);
  check(original.status === 206, `the video link with Range: bytes=0-99 should answer 206, it answered ${original.status}`);
  check(originalBytes.length === 100, `the video link with Range: bytes=0-99 should send 100 bytes, it sent ${originalBytes.length}`);
  check(originalBytes.equals(localBytes), `the video's bytes 0..99 should be those of ${basename(VIDEO)}`);
  ranges.video = { status: original.status, bytes: originalBytes.length, content_range: original.headers.get('content-range'), matches_local_file: true };
  ranges.annotated = annotated.range;
  const OTHER = 'e2e-other';
  const OTHER_PASSWORD = 'e2e-other-password-1';
  const createdOther = await fetch(`${BASE}/api/v1/users`, {
    method: 'POST',
    headers: { ...bearer(token), 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: OTHER, password: OTHER_PASSWORD, role: 'user' }),
  });
  check(createdOther.ok || createdOther.status === 409, `POST /api/v1/users (${OTHER}) should answer 201 or 409, it answered ${createdOther.status}: ${await createdOther.text()}`);
  const otherLogin = await fetch(`${BASE}/api/v1/auth/token`, {
    method: 'POST',
    headers: { Accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'password', username: OTHER, password: OTHER_PASSWORD }),
  });
  check(otherLogin.ok, `${OTHER} should log in (POST /api/v1/auth/token), it answered ${otherLogin.status}: ${await otherLogin.clone().text()}`);
  const otherToken = (await otherLogin.json()).access_token;
  const foreign = await fetch(`${BASE}/api/v1/videos/${id}/file`, { headers: { ...bearer(otherToken), Range: 'bytes=0-99' } });
  const foreignBody = await foreign.text();
  check(foreign.status === 404, `${OTHER}'s token should not read ${USER}'s video file (404), it answered ${foreign.status}`);
  const foreignAnnotated = await fetch(`${BASE}/api/v1/videos/${id}/annotated/file`, { headers: bearer(otherToken) });
  await foreignAnnotated.arrayBuffer();
  check(foreignAnnotated.status === 404, `${OTHER}'s token should not read ${USER}'s annotated file (404), it answered ${foreignAnnotated.status}`);
  ranges.other_user = {
    user: OTHER,
    created: createdOther.status === 409 ? 'existed' : 'created',
    video_file_status: foreign.status,
    video_file_code: (() => {
      try {
        return JSON.parse(foreignBody).code;
      } catch {
        return null;
      }
    })(),
    annotated_file_status: foreignAnnotated.status,
  };
  passed(
    'range requests and ownership',
    `video link Range 0-99 → 206, the first 100 bytes of ${basename(VIDEO)}; ${OTHER}'s token → 404 on /file and /annotated/file`,
  );

  // Tracks, zones and lines: a second upload (through the API) with a zone over the left three
  // quarters (the box's centre as anchor: the person sits there) and a line down the middle,
  // in normalised coordinates; its page draws both on the overlay
  // (and not once toggled off), lists its zones and lines with their counts, and a track's row
  // in the timeline seeks to the track's first frame.
  const shapes = {
    zones: JSON.stringify([{ name: 'left', normalized: true, anchor: 'center', points: [[0, 0], [0.75, 0], [0.75, 1], [0, 1]] }]),
    lines: JSON.stringify([{ name: 'middle', normalized: true, start: [0.5, 0], end: [0.5, 1] }]),
  };
  const query = new URLSearchParams({ filename: basename(VIDEO), ...shapes });
  const withShapes = await fetch(`${BASE}/api/v1/videos?${query}`, {
    method: 'POST',
    headers: { ...bearer(token), 'Content-Type': 'video/mp4' },
    body: readFileSync(VIDEO),
  });
  check(withShapes.status === 202, `an upload with zones and lines should answer 202, it answered ${withShapes.status}: ${await withShapes.clone().text()}`);
  const tracked = (await withShapes.json()).id;
  const deadline = Date.now() + PROCESS_TIMEOUT_MS;
  let trackedView;
  for (;;) {
    trackedView = await apiGet(page, `/api/v1/videos/${tracked}`);
    if (['succeeded', 'failed', 'cancelled'].includes(trackedView.status) || Date.now() > deadline) break;
    await page.waitForTimeout(500);
  }
  check(trackedView.status === 'succeeded', `the video with zones should succeed, it is ${trackedView.status}: ${trackedView.error ?? ''}`);
  const summary = trackedView.summary;
  check(summary.zones?.[0]?.name === 'left' && summary.lines?.[0]?.name === 'middle', `the summary should count zone "left" and line "middle": ${JSON.stringify(summary)}`);
  await page.goto(`${BASE}/videos/${tracked}`);
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="overlay"]')?.dataset.frame) >= 0, null, { timeout: 15_000 });
  await page.waitForFunction(() => document.querySelector('[data-testid="overlay"]').dataset.shapes === '2', null, { timeout: 10_000 }).catch(async () => {
    throw new Error(`the overlay should draw 1 zone and 1 line, it drew ${await overlayAttr(page, 'shapes')}`);
  });
  await page.locator('[data-testid="shapes-toggle"]').uncheck();
  await page.waitForFunction(() => document.querySelector('[data-testid="overlay"]').dataset.shapes === '0', null, { timeout: 5000 }).catch(async () => {
    throw new Error(`with "Zones & lines" off the overlay should draw no shape, it drew ${await overlayAttr(page, 'shapes')}`);
  });
  await page.locator('[data-testid="shapes-toggle"]').check();
  const zoneVisits = await page.locator('[data-testid="zone"][data-zone="left"] [data-testid="zone-visits"]').first().textContent();
  check(summary.zones[0].visits > 0, `the person sitting in zone "left" should count as a visit: ${JSON.stringify(summary.zones)}`);
  check(Number(zoneVisits) === summary.zones[0].visits, `the zones table should show ${summary.zones[0].visits} visits for "left", it shows ${zoneVisits}`);
  const lineIn = await page.locator('[data-testid="line"][data-line="middle"] [data-testid="line-in"]').first().textContent();
  check(Number(lineIn) === summary.lines[0].in, `the lines table should show ${summary.lines[0].in} in for "middle", it shows ${lineIn}`);
  const rows = page.locator('[data-testid="track-row"]');
  await rows.first().waitFor({ timeout: 10_000 });
  const rowCount = await rows.count();
  check(rowCount === Math.min(50, summary.tracks), `the timeline should list ${Math.min(50, summary.tracks)} track rows, it lists ${rowCount}`);
  // The row of the track that starts latest: seeking there is a visible move.
  let latest = 0;
  let latestFrame = -1;
  for (let i = 0; i < rowCount; i++) {
    const f = Number(await rows.nth(i).getAttribute('data-first-frame'));
    if (f > latestFrame) [latest, latestFrame] = [i, f];
  }
  await rows.nth(latest).click();
  await waitOverlayFrame(page, latestFrame, `clicking the row of the track that starts at frame ${latestFrame}`);
  report.tracks = { video: tracked, tracks: summary.tracks, rows: rowCount, zones: summary.zones, lines: summary.lines, seek_to: latestFrame };
  passed(
    'tracks, zones and lines',
    `${summary.tracks} tracks, ${rowCount} rows; zone "left" ${summary.zones[0].visits} visits, line "middle" ${summary.lines[0].in} in / ${summary.lines[0].out} out; ` +
      `overlay draws 2 shapes (0 when off); row → frame ${latestFrame}`,
  );

  // 8 + 9. axe-core on every page (no serious or critical violations) and screenshots at
  // desktop and phone sizes. /login is seen from a second, logged-out context.
  const outside = await newContext();
  const loginPage = await outside.newPage();
  const pages = [
    { name: 'login', page: loginPage, url: '/login', ready: () => loginPage.getByLabel('Username').waitFor() },
    { name: 'videos', page, url: '/', ready: () => page.locator(`tr[data-video-id="${id}"]`).waitFor() },
    {
      name: 'video',
      page,
      url: `/videos/${tracked}`,
      ready: () => page.waitForFunction(() => Number(document.querySelector('[data-testid="overlay"]')?.dataset.frame) >= 0, null, { timeout: 15_000 }),
    },
    { name: 'users', page, url: '/users', ready: () => page.locator('[data-testid="users-table"]').waitFor() },
  ];
  const axeReport = {};
  for (const p of pages) {
    await p.page.setViewportSize({ width: 1280, height: 800 });
    await p.page.goto(`${BASE}${p.url}`);
    await p.ready();
    const serious = await axe(p.page);
    axeReport[p.name] = serious;
    await p.page.screenshot({ path: join(OUT, `${p.name}.png`), fullPage: true });
    await p.page.setViewportSize({ width: 390, height: 844 });
    await p.page.waitForTimeout(300);
    const seriousPhone = await axe(p.page);
    if (seriousPhone.length) axeReport[`${p.name}-phone`] = seriousPhone;
    await p.page.screenshot({ path: join(OUT, `${p.name}-phone.png`), fullPage: true });
    const title = await p.page.title();
    check(title.includes('Argus'), `${p.url} should have a page title, it has "${title}"`);
    check((await p.page.locator('h1').count()) === 1, `${p.url} should have one <h1>`);
  }
  report.axe = axeReport;
  const failures = Object.entries(axeReport).filter(([, v]) => v.length > 0);
  if (failures.length) {
    for (const [name, list] of failures) for (const v of list) console.log(`# axe ${name}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.join(', ')})`);
  }
  check(failures.length === 0, `axe found serious or critical violations on: ${failures.map(([n]) => n).join(', ')}`);
  passed('accessibility', 'axe-core: no serious or critical violations on /login, /, /videos/<id>, /users (desktop and phone)');
  passed('screenshots', `${pages.map((p) => `${p.name}.png, ${p.name}-phone.png`).join(', ')} in ${OUT}`);
  await outside.close();
  await page.setViewportSize({ width: 1280, height: 800 });

  // 10. Log out; a bad or expired token sends to /login?next=…, and logging in comes back.
  await page.goto(`${BASE}/`);
  await page.locator('[data-testid="logout"]').click();
  await page.waitForURL((u) => u.pathname === '/login', { timeout: 5000 }).catch(() => {
    throw new Error(`log out should land on /login, it is at ${path(page)}`);
  });
  check((await page.evaluate(() => localStorage.getItem('argus.token'))) === null, 'log out should remove the token');
  const target = `/videos/${id}`;
  const expected = `/login?next=${encodeURIComponent(target)}`;
  for (const [what, token] of [
    ['a garbage token', { access_token: 'garbage.garbage.garbage', expires_at: Date.now() + 3_600_000 }],
    ['an expired token', { access_token: 'expired', expires_at: Date.now() - 1000 }],
  ]) {
    await page.evaluate((token) => localStorage.setItem('argus.token', JSON.stringify(token)), token);
    await page.goto(`${BASE}${target}`);
    await page.waitForURL((u) => u.pathname === '/login', { timeout: 10_000 }).catch(() => {
      throw new Error(`with ${what}, ${target} should go to ${expected}, it is at ${path(page)}`);
    });
    check(path(page) === expected, `with ${what}, the login page should be ${expected}, it is ${path(page)}`);
  }
  await login(page);
  await page.waitForURL((u) => u.pathname === target, { timeout: 10_000 }).catch(() => {
    throw new Error(`after logging in again the console should be back at ${target}, it is at ${path(page)}`);
  });
  passed('log out and session expiry', `logged out; garbage and expired tokens → ${expected}; logged in → ${target}`);

  check(blocked.length === 0, `the console should contact only ${ORIGIN}; blocked: ${blocked.join(', ')}`);
  const cspOrScript = problems.filter((p) => /Content Security Policy|Refused to|page error/i.test(p));
  check(cspOrScript.length === 0, `no CSP violation or script error should occur: ${cspOrScript.join(' | ')}`);
  report.console_errors = problems;
  passed('no external requests, no CSP violations', problems.length ? `other console errors: ${problems.length}` : '');
  await context.close();
} catch (error) {
  exitCode = 1;
  report.error = error.message;
  console.log(`not ok - ${error.message}`);
  if (problems.length) console.log(`# console: ${problems.slice(0, 10).join('\n# ')}`);
} finally {
  report.timings_ms.total = Date.now() - started;
  report.finished_at = new Date().toISOString();
  report.ok = exitCode === 0;
  writeFileSync(join(OUT, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  await browser.close();
}
process.exit(exitCode);
