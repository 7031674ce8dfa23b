// The /demo page's account pieces in Chromium: a doctor's inbox with its unread count and
// "Mark all read", and a patient who forgot their password resetting it with the code of the
// mail the server wrote (MEDILINK_MAIL_DIR, as `serve --dev` does).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PASSWORD, approvedDoctor, gql, register, startServer } from './server.mjs';
import { launch, newPage } from './browser.mjs';

/// Polls `check` (in Node) until it returns a truthy value; that value.
async function until(check, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/// The text of the mails in `dir` sent to `email`, quoted-printable undone.
function mailsTo(dir, email) {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.eml'))
    .map((name) => readFileSync(join(dir, name), 'utf8'))
    .filter((mail) => mail.includes(`To: ${email}`))
    .map((mail) => mail.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16))));
}

describe('the /demo page: inbox and forgotten password', { timeout: 120000 }, () => {
  const mailDir = mkdtempSync(join(tmpdir(), 'medilink-e2e-mail-'));
  let server;
  let browser;

  before(async () => {
    server = await startServer({ MEDILINK_MAIL_DIR: mailDir });
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a doctor sees the approval in the inbox and marks it read', async () => {
    const doctor = await approvedDoctor(server.base);
    const page = await newPage(browser);
    await page.goto(`${server.base}/demo`);
    await page.fill('#email', doctor.email);
    await page.fill('#password', PASSWORD);
    await page.click('#sign-in');
    await page.waitForSelector('#inbox-panel:not(.hidden)');
    await page.waitForFunction(() => document.querySelector('#unread-count').textContent === '1');
    assert.match(await page.textContent('#inbox'), /approved/);
    await page.click('#mark-all-read');
    await page.waitForFunction(() => document.querySelector('#unread-count').textContent === '0');
    await page.close();
  });

  test('a patient who forgot their password resets it with the mailed code and is signed in', async () => {
    const patient = await register(server.base, 'PATIENT');
    const page = await newPage(browser);
    await page.goto(`${server.base}/demo`);
    await page.fill('#forgot-email', patient.email);
    await page.click('#forgot-form button[type="submit"]');
    const code = await until(() => {
      const reset = mailsTo(mailDir, patient.email).find((mail) => mail.includes('Reset your password'));
      return reset?.match(/with this code in the app: (\S+)/)?.[1];
    }, 'the reset mail');
    const newPassword = 'a brand new passphrase';
    await page.fill('#reset-token', code);
    await page.fill('#reset-password', newPassword);
    await page.click('#reset-submit');
    await page.waitForSelector('#patient-panel:not(.hidden)');

    const login = (password) => gql(server.base, 'mutation($e: String!, $p: String!) { login(input: { email: $e, password: $p }) { accessToken } }', { e: patient.email, p: password });
    await assert.rejects(login(PASSWORD), /incorrect|invalid/i);
    assert.ok((await login(newPassword)).login.accessToken);
    await page.close();
  });
});
