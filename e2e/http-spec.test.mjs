// The GraphQL-over-HTTP specification as the `graphql-http` package audits a server: every MUST
// passes, and at least 44 of the 48 SHOULD and MAY items (the README says which remain and why).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAudits } from 'graphql-http';
import { startServer } from './server.mjs';

const MIN_OTHERS = 44;

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

test('the GraphQL-over-HTTP audits pass', async () => {
  const audits = serverAudits({ url: `${server.base}/graphql` });
  const results = await Promise.all(audits.map(({ fn }) => fn()));
  const must = results.filter((r) => r.name.startsWith('MUST'));
  const others = results.filter((r) => !r.name.startsWith('MUST'));
  const passed = (list) => list.filter((r) => r.status === 'ok').length;
  const failing = results.filter((r) => r.status !== 'ok');
  console.log(`MUST ${passed(must)}/${must.length}, SHOULD/MAY ${passed(others)}/${others.length}`);
  for (const r of failing) console.log(`  ${r.status} ${r.id} ${r.name}: ${r.reason}`);

  assert.equal(must.length, 13, 'the pinned graphql-http has 13 MUST audits');
  assert.equal(others.length, 48, 'the pinned graphql-http has 48 SHOULD/MAY audits');
  assert.deepEqual(
    must.filter((r) => r.status !== 'ok').map((r) => `${r.id} ${r.name}`),
    [],
    'every MUST passes',
  );
  assert.ok(passed(others) >= MIN_OTHERS, `at least ${MIN_OTHERS} SHOULD/MAY pass`);
});
