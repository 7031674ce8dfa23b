// Headless Debian Chromium through playwright-core, set up for WebRTC between two contexts on one
// machine: fake camera and microphone, camera/microphone granted (which also makes Chromium
// offer plain host candidates instead of mDNS names), and loopback candidates allowed.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = join(here, '..', 'target', 'e2e');

export async function launch() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.E2E_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--use-fake-device-for-media-stream', '--allow-loopback-in-peer-connection'],
  });
}

/// A context with camera and microphone granted, and a page in it (`options`: e.g. a viewport).
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ permissions: ['camera', 'microphone'], ...options });
  return context.newPage();
}

/// Polls `check` (a function run in the page) until it returns a truthy value; that value.
export async function eventually(page, check, arg, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await page.evaluate(check, arg);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
