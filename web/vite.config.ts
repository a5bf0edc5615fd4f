import { defineConfig } from 'vite';

// Node's, for this file only (no @types/node just for one variable).
declare const process: { env: Record<string, string | undefined> };

// The API the dev server forwards /api to (`npm run dev`); the built files are embedded in
// argus-api, which serves them itself.
const api = process.env.ARGUS_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  // Preact's automatic JSX runtime (no React, no Babel plugin needed).
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    // The polyfill would be an inline <script>, which the CSP (script-src 'self') blocks.
    modulePreload: { polyfill: false },
    // Never inline assets as data: URIs into JS/CSS: every file is a real, hashed asset.
    assetsInlineLimit: 0,
    target: 'es2022',
    sourcemap: false,
  },
  server: {
    proxy: { '/api': { target: api, changeOrigin: false } },
  },
});
