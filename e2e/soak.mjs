// Soak: calls starting and ending across two MediLink instances that share one PostgreSQL
// database and one Redis, for SOAK_SECONDS (default 600). Each of SOAK_PAIRS pairs (default 50)
// has a doctor connected to instance B for the whole run and a patient who connects to instance A
// for each call, every SOAK_CALL_EVERY_MS (default 3000): ring, accept, OFFER/ANSWER, ICE candidates, media state, a chat message, end,
// disconnect. Prints errors, calls, signal latency, and each instance's resident memory and open
// file descriptors at the end of the warm-up, during the load, and after it stops. Prints numbers
// and asserts nothing; the exit code is 1 when any operation failed.
//
//   cargo build --release && node e2e/soak.mjs
// Settings: SOAK_SECONDS, SOAK_PAIRS, SOAK_POSTGRES (an admin URL, default
// postgres://postgres@127.0.0.1:5432/postgres), SOAK_REDIS (default redis://127.0.0.1:6379),
// E2E_SERVER_BIN (default target/release/medilink).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PASSWORD, adminLogin, approvedDoctor, client, freePort, inheritedEnv, register, run, serve } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
process.env.E2E_SERVER_BIN ??= join(here, '..', 'target', 'release', 'medilink');
const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const PAIRS = Number(process.env.SOAK_PAIRS ?? 50);
const POSTGRES = process.env.SOAK_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS = process.env.SOAK_REDIS ?? 'redis://127.0.0.1:6379';
const WARM_UP_SECONDS = Math.min(60, Math.max(5, SECONDS / 10));
const SAMPLE_EVERY_MS = Math.max(5000, (SECONDS * 1000) / 20);
const STEP_TIMEOUT_MS = 10000;
// One call per pair at most this often: a pace people keep (and the chat limit allows).
const CALL_EVERY_MS = Number(process.env.SOAK_CALL_EVERY_MS ?? 3000);
const SDP = `v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n${'a=x\r\n'.repeat(60)}`;

const errors = [];
const latencies = [];
let calls = 0;

function fail(where, error) {
  const message = `${where}: ${error?.message ?? error}`;
  if (errors.length < 10) console.log(`error: ${message}`);
  errors.push(message);
}

/// Resolves with the first event of `query` that `accept` takes, within STEP_TIMEOUT_MS.
/// `what` names the awaited event in the error.
function nextEvent(ws, query, variables, accept, what) {
  let dispose;
  const event = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
    dispose = ws.subscribe({ query, variables }, {
      next: (value) => {
        if (value.errors) {
          clearTimeout(timer);
          reject(new Error(JSON.stringify(value.errors)));
        } else if (accept(value.data)) {
          clearTimeout(timer);
          resolve(value.data);
        }
      },
      error: (e) => { clearTimeout(timer); reject(e instanceof Error ? e : new Error(JSON.stringify(e))); },
      complete: () => {},
    });
  });
  const settled = event.finally(() => dispose());
  // A step that fails before this is awaited must not leave an unhandled rejection behind.
  settled.catch(() => {});
  return { event: settled, dispose };
}

const CALL_EVENTS = 'subscription { callEvents { kind call { id } } }';
const SIGNALS = 'subscription($c: ID!) { signals(callId: $c) { kind sdp at } }';
const SEND = 'mutation($i: SendSignalInput!) { sendSignal(input: $i) }';

async function signal(ws, callId, kind, extra) {
  await run(ws, SEND, { i: { callId, kind, ...extra } });
}

/// Waits until `kind` arrives on the signals stream, and records its one-way latency.
function expectSignal(ws, callId, kind) {
  const { event } = nextEvent(ws, SIGNALS, { c: callId }, (d) => d.signals.kind === kind, kind);
  const received = event.then((d) => latencies.push(Date.now() - Date.parse(d.signals.at)));
  received.catch(() => {});
  return received;
}

async function oneCall(instanceA, pair) {
  const patientWs = client(instanceA.ws, pair.patient.token);
  let callId;
  try {
    const incoming = nextEvent(pair.doctorWs, CALL_EVENTS, {}, (d) => d.callEvents.kind === 'INCOMING', 'INCOMING');
    const patientEvents = nextEvent(patientWs, CALL_EVENTS, {}, (d) => d.callEvents.kind === 'ACCEPTED', 'ACCEPTED');
    await run(pair.doctorWs, '{ __typename }');
    await run(patientWs, '{ __typename }');
    const started = await run(patientWs, 'mutation($d: ID!) { startCall(input: { doctorId: $d }) { id } }', { d: pair.doctor.doctorId });
    callId = started.startCall.id;
    await incoming.event;
    const offer = expectSignal(pair.doctorWs, callId, 'OFFER');
    const answer = expectSignal(patientWs, callId, 'ANSWER');
    await run(pair.doctorWs, '{ __typename }');
    await run(pair.doctorWs, 'mutation($c: ID!) { answerCall(callId: $c, accept: true) { status } }', { c: callId });
    await patientEvents.event;
    await run(patientWs, '{ __typename }');
    await signal(patientWs, callId, 'OFFER', { sdp: SDP });
    await offer;
    await signal(pair.doctorWs, callId, 'ANSWER', { sdp: SDP });
    await answer;
    for (let i = 0; i < 3; i++) {
      const candidate = { candidate: `candidate:${i} 1 udp 2122260223 127.0.0.1 ${50000 + i} typ host`, sdpMid: '0', sdpMLineIndex: 0 };
      await signal(patientWs, callId, 'ICE_CANDIDATE', { candidate });
      await signal(pair.doctorWs, callId, 'ICE_CANDIDATE', { candidate });
    }
    await signal(patientWs, callId, 'MEDIA_STATE', { audioEnabled: true, videoEnabled: false });
    await run(patientWs, 'mutation($u: ID!) { sendMessage(input: { channel: { userId: $u }, body: "soak" }) { id } }', { u: pair.doctor.id });
    const ended = nextEvent(pair.doctorWs, CALL_EVENTS, {}, (d) => d.callEvents.kind === 'ENDED', 'ENDED');
    await run(pair.doctorWs, '{ __typename }');
    await run(patientWs, 'mutation($c: ID!) { endCall(callId: $c) { status } }', { c: callId });
    await ended.event;
    calls += 1;
    callId = undefined;
  } finally {
    // After a failed step, end the call so that one error does not turn into a CONFLICT on
    // every later call of the pair.
    if (callId) await run(patientWs, 'mutation($c: ID!) { endCall(callId: $c) { status } }', { c: callId }).catch(() => {});
    await patientWs.dispose();
  }
}

async function pairLoop(instanceA, pair, until) {
  while (Date.now() < until) {
    const next = Date.now() + CALL_EVERY_MS;
    try {
      await oneCall(instanceA, pair);
    } catch (error) {
      fail('call', error);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
}

function processStats(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKib = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return { rssMib: rssKib / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

function sample(label, instances) {
  const [a, b] = instances.map((i) => processStats(i.pid));
  const line = `${label.padEnd(22)} calls ${String(calls).padStart(7)}  errors ${String(errors.length).padStart(4)}  ` +
    `A ${a.rssMib.toFixed(1).padStart(6)} MiB ${String(a.fds).padStart(5)} fds  B ${b.rssMib.toFixed(1).padStart(6)} MiB ${String(b.fds).padStart(5)} fds`;
  console.log(line);
  return { a, b };
}

function psql(sql) {
  execFileSync('psql', [POSTGRES, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

async function main() {
  const database = `medilink_soak_${Date.now()}`;
  psql(`CREATE DATABASE ${database}`);
  const databaseUrl = `${POSTGRES.replace(/\/[^/]*$/, '')}/${database}`;
  const shared = {
    ...inheritedEnv(),
    MEDILINK_DATABASE_URL: databaseUrl,
    MEDILINK_REDIS_URL: REDIS,
    MEDILINK_REDIS_PREFIX: `${database}:`,
    MEDILINK_JWT_SECRET: 'a soak test secret of enough length for HS256',
    MEDILINK_LOG: 'warn',
    // Every client of the soak comes from 127.0.0.1: the per-address limits would stop it.
    MEDILINK_LIMIT_REGISTER_PER_IP: '100000/h',
    MEDILINK_LIMIT_WS_CONNECTS_PER_IP: '100000/min',
    MEDILINK_WS_MAX_CONNECTIONS_PER_IP: '100000',
  };
  execFileSync(process.env.E2E_SERVER_BIN, ['create-admin', '--email', 'admin@example.com'], {
    env: { ...shared, MEDILINK_ADMIN_PASSWORD: PASSWORD },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const instances = [];
  try {
    for (let i = 0; i < 2; i++) {
      instances.push(await serve({ ...shared, MEDILINK_BIND: `127.0.0.1:${await freePort()}` }));
    }
    const [a, b] = instances;
    const admin = await adminLogin(a.base);
    const pairs = [];
    for (let i = 0; i < PAIRS; i++) {
      const doctor = await approvedDoctor(b.base, admin);
      const patient = await register(a.base, 'PATIENT');
      const doctorWs = client(b.ws, doctor.token);
      await run(doctorWs, 'mutation { setDoctorStatus(status: ONLINE) }');
      pairs.push({ doctor, patient, doctorWs });
    }
    console.log(`soak: ${PAIRS} pairs, ${SECONDS} s, a call per pair every ${CALL_EVERY_MS} ms, patients on A (${a.base}), doctors on B (${b.base}), ${process.env.E2E_SERVER_BIN}`);
    const until = Date.now() + SECONDS * 1000;
    const loops = Promise.all(pairs.map((pair) => pairLoop(a, pair, until)));
    const started = Date.now();
    await new Promise((r) => setTimeout(r, WARM_UP_SECONDS * 1000));
    const warm = sample(`warm (${WARM_UP_SECONDS} s)`, instances);
    const timer = setInterval(() => sample(`t=${Math.round((Date.now() - started) / 1000)} s`, instances), SAMPLE_EVERY_MS);
    await loops;
    clearInterval(timer);
    const loaded = sample('end of load', instances);
    const elapsed = (Date.now() - started) / 1000;
    await Promise.all(pairs.map((pair) => pair.doctorWs.dispose()));
    await new Promise((r) => setTimeout(r, 10000));
    const after = sample('10 s after the load', instances);
    latencies.sort((x, y) => x - y);
    console.log(`calls: ${calls} (${(calls / elapsed).toFixed(1)}/s), errors: ${errors.length}`);
    const kinds = new Map();
    for (const error of errors) kinds.set(error, (kinds.get(error) ?? 0) + 1);
    for (const [error, count] of [...kinds].sort((x, y) => y[1] - x[1])) console.log(`  ${count} x ${error}`);
    console.log(`signal one-way latency (ms, clock of one machine): p50 ${percentile(latencies, 0.5)}, p99 ${percentile(latencies, 0.99)}, n=${latencies.length}`);
    for (const [name, key] of [['A', 'a'], ['B', 'b']]) {
      console.log(`instance ${name}: memory ${warm[key].rssMib.toFixed(1)} MiB warm -> ${loaded[key].rssMib.toFixed(1)} end of load -> ${after[key].rssMib.toFixed(1)} after; ` +
        `fds ${warm[key].fds} -> ${loaded[key].fds} -> ${after[key].fds}`);
    }
  } finally {
    await Promise.all(instances.map((i) => i.stop()));
    psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
  process.exitCode = errors.length ? 1 : 0;
}

await main();
