// Playback smoothness with and without the overlay: plays an already processed video in the
// console for ARGUS_PLAY_S seconds with boxes on, then again with boxes off ("Show boxes"
// unchecked), and prints video.getVideoPlaybackQuality()'s dropped / total frames for each as
// JSON on stdout.
//
//   ARGUS_URL=http://127.0.0.1:8080 ARGUS_USER=admin ARGUS_PASSWORD=... ARGUS_VIDEO_ID=<uuid> \
//   ARGUS_PLAY_S=10 node e2e/playback.mjs
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') throw new Error(`set ${name}`);
  return value;
};
const BASE = env('ARGUS_URL').replace(/\/$/, '');
const USER = env('ARGUS_USER');
const PASSWORD = env('ARGUS_PASSWORD');
const ID = env('ARGUS_VIDEO_ID');
const PLAY_S = Number(env('ARGUS_PLAY_S', '10'));
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const ORIGIN = new URL(BASE).origin;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
});

/** Plays from the start for PLAY_S seconds; the playback quality counters of that run. */
async function play(page) {
  await page.evaluate(async () => {
    const video = document.querySelector('video');
    video.pause();
    video.currentTime = 0;
    await new Promise((resolve) => video.addEventListener('seeked', resolve, { once: true }));
  });
  const before = await page.evaluate(() => {
    const q = document.querySelector('video').getVideoPlaybackQuality();
    return { dropped: q.droppedVideoFrames, total: q.totalVideoFrames };
  });
  // Overlay work per presented frame, measured in the page: drawn frames and callbacks seen.
  await page.evaluate(() => {
    const video = document.querySelector('video');
    window.__presented = 0;
    window.__drawnFrames = new Set();
    const count = () => {
      window.__presented++;
      const f = Number(document.querySelector('[data-testid="overlay"]').dataset.frame);
      if (f >= 0) window.__drawnFrames.add(f);
      if (!video.paused) video.requestVideoFrameCallback(count);
    };
    video.requestVideoFrameCallback(count);
  });
  const t0 = Date.now();
  await page.evaluate(() => document.querySelector('video').play());
  await page.waitForTimeout(PLAY_S * 1000);
  const after = await page.evaluate(() => {
    const video = document.querySelector('video');
    video.pause();
    const q = video.getVideoPlaybackQuality();
    return {
      dropped: q.droppedVideoFrames,
      total: q.totalVideoFrames,
      played_s: video.currentTime,
      presented: window.__presented,
      frames_with_boxes_drawn: window.__drawnFrames.size,
    };
  });
  const dropped = after.dropped - before.dropped;
  const total = after.total - before.total;
  return {
    wall_s: (Date.now() - t0) / 1000,
    played_s: Math.round(after.played_s * 1000) / 1000,
    total_frames: total,
    dropped_frames: dropped,
    dropped_ratio: total > 0 ? Math.round((dropped / total) * 10000) / 10000 : null,
    presented_callbacks: after.presented,
    overlay_frames_drawn: after.frames_with_boxes_drawn,
  };
}

let code = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    return url.startsWith('blob:') || url.startsWith('data:') || new URL(url).origin === ORIGIN ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  await page.goto(`${BASE}/login?next=${encodeURIComponent(`/videos/${ID}`)}`);
  await page.getByLabel('Username').fill(USER);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((u) => u.pathname === `/videos/${ID}`, { timeout: 15_000 });
  // The review (overlay) once the video is loaded, or the page's error.
  await page.locator('[data-testid="overlay"], [role="alert"]').first().waitFor({ timeout: 30_000 });
  if (!(await page.locator('[data-testid="overlay"]').count())) {
    throw new Error(`video ${ID} cannot be reviewed: ${await page.locator('[role="alert"]').first().textContent()}`);
  }
  await page.waitForFunction(() => (document.querySelector('video')?.readyState ?? 0) >= 3, null, { timeout: 60_000 });
  const info = await page.evaluate(() => {
    const v = document.querySelector('video');
    return { width: v.videoWidth, height: v.videoHeight, duration_s: v.duration };
  });
  const toggle = page.locator('[data-testid="overlay-toggle"]');
  await toggle.check();
  const withOverlay = await play(page);
  await toggle.uncheck();
  const withoutOverlay = await play(page);
  console.log(JSON.stringify({ url: BASE, video_id: ID, play_s: PLAY_S, video: info, overlay_on: withOverlay, overlay_off: withoutOverlay }, null, 2));
} catch (error) {
  code = 1;
  console.error(`playback: ${error.message}`);
} finally {
  await browser.close();
}
process.exit(code);
