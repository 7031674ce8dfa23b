// GraphiQL at GET /graphql in headless Chromium: the page renders, runs `me` with an
// Authorization header, and a subscription over /graphql/ws delivers an event. Its CDN assets are
// served from the npm packages through Playwright's request routing; a second run serves them
// from a local folder with MEDILINK_GRAPHIQL_ASSETS and lets no request leave the server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { approvedDoctor, client, register, run, startServer } from './server.mjs';
import { eventually, launch } from './browser.mjs';

const modules = join(dirname(fileURLToPath(import.meta.url)), 'node_modules');

/// The installed package for a CDN path such as `graphiql@4/graphiql.min.js`, checked to be of
/// the major version the page asks for.
function packageFile(path) {
  const match = path.match(/^((?:@[^/]+\/)?[^@/]+)@([^/]+)\/(.*)$/);
  if (!match) return null;
  const [, name, wanted, rest] = match;
  const { version } = JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8'));
  assert.equal(version.split('.')[0], wanted.split('.')[0], `${name}@${wanted} is installed as ${version}`);
  const file = join(modules, name, rest);
  return existsSync(file) ? file : null;
}

/// A browser context that serves unpkg from node_modules and refuses every other outside request,
/// noting it in `outside`.
async function context(browser, outside) {
  const ctx = await browser.newContext();
  await ctx.route((url) => url.hostname !== '127.0.0.1', async (route) => {
    const url = new URL(route.request().url());
    const file = url.hostname === 'unpkg.com' && packageFile(url.pathname.slice(1));
    if (file) return route.fulfill({ path: file });
    if (url.href === 'https://graphql.org/favicon.ico') return route.fulfill({ status: 204 });
    outside.push(url.href);
    return route.abort();
  });
  return ctx;
}

/// Types a document and headers into GraphiQL's editors and runs it.
async function execute(page, query, headers) {
  await page.evaluate(([query, headers]) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(query);
    const [, headersEditor] = document.querySelectorAll('.graphiql-editor-tool .graphiql-editor .CodeMirror');
    headersEditor.CodeMirror.setValue(JSON.stringify(headers));
  }, [query, headers]);
  // GraphiQL parses the document after an edit; it tells subscriptions from the rest by it.
  await eventually(page, (query) => {
    const editor = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;
    return editor.documentAST?.loc?.source.body === query;
  }, query, 'GraphiQL to parse the document');
  await page.click('.graphiql-execute-button');
}

function response(page) {
  return page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '');
}

async function openGraphiQL(browser, base, outside) {
  const ctx = await context(browser, outside);
  const page = await ctx.newPage();
  await page.goto(`${base}/graphql`);
  await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror');
  await page.waitForSelector('.graphiql-execute-button');
  return page;
}

describe('GraphiQL', { timeout: 90000 }, () => {
  let browser;
  before(async () => { browser = await launch(); });
  after(async () => { await browser?.close(); });

  test('runs me with a token, and a subscription delivers an event', async () => {
    const server = await startServer();
    const outside = [];
    try {
      const patient = await register(server.base, 'PATIENT');
      const page = await openGraphiQL(browser, server.base, outside);

      await execute(page, '{ me { id role } }', { Authorization: `Bearer ${patient.token}` });
      const me = await eventually(page, () => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue().includes('"role"'), null, 'the me result')
        .then(() => response(page));
      assert.deepEqual(JSON.parse(me).data.me, { id: patient.id, role: 'PATIENT' });

      // The subscription goes over /graphql/ws with the header as a connection parameter.
      const subscribed = page.waitForEvent('websocket').then((ws) => ws.waitForEvent('framesent', {
        predicate: (frame) => String(frame.payload).includes('"subscribe"'),
      }));
      await execute(page, 'subscription { doctorStatusChanged { doctor { id } status } }', { Authorization: `Bearer ${patient.token}` });
      await subscribed;
      const doctor = await approvedDoctor(server.base);
      const doctorWs = client(server.ws, doctor.token);
      // The frame left the browser, but the server may not have started the subscription yet:
      // go online again until an event shows.
      let event;
      for (let attempt = 0; attempt < 5 && !event; attempt++) {
        await run(doctorWs, 'mutation { setDoctorStatus(status: ONLINE) }');
        try {
          await eventually(page, () => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue().includes('doctorStatusChanged'), null, 'an event', 2000);
          event = JSON.parse(await response(page));
        } catch {
          await run(doctorWs, 'mutation { setDoctorStatus(status: OFFLINE) }');
        }
      }
      assert.deepEqual(event?.data.doctorStatusChanged, { doctor: { id: doctor.doctorId }, status: 'ONLINE' });
      await doctorWs.dispose();
      assert.deepEqual(outside, [], 'no other outside requests');
      await page.context().close();
    } finally {
      await server.stop();
    }
  });

  test('with MEDILINK_GRAPHIQL_ASSETS every asset comes from the server', async () => {
    const assets = mkdtempSync(join(tmpdir(), 'medilink-graphiql-'));
    for (const [name, major] of [['react', 18], ['react-dom', 18], ['graphiql', 4]]) {
      symlinkSync(join(modules, name), join(assets, `${name}@${major}`));
    }
    const server = await startServer({ MEDILINK_GRAPHIQL_ASSETS: assets });
    const outside = [];
    try {
      const patient = await register(server.base, 'PATIENT');
      const page = await openGraphiQL(browser, server.base, outside);
      await execute(page, '{ me { id } }', { Authorization: `Bearer ${patient.token}` });
      await eventually(page, () => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue().includes('"id"'), null, 'the me result');
      assert.deepEqual(JSON.parse(await response(page)).data.me, { id: patient.id });
      assert.deepEqual(outside, [], 'nothing from outside the server');
      await page.context().close();
    } finally {
      await server.stop();
      rmSync(assets, { recursive: true, force: true });
    }
  });
});
