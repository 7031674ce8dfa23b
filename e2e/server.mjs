// Starts a real MediLink server on a free port with a fresh SQLite database, and offers the
// GraphQL calls the tests need to set up accounts.
import { spawn, execFileSync } from 'node:child_process';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const bin = process.env.E2E_SERVER_BIN ?? join(here, '..', 'target', 'debug', 'medilink');
export const PASSWORD = 'correct horse battery';

export async function freePort() {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/// The caller's environment without MEDILINK_* variables: the server refuses unknown settings,
/// so none may leak in.
export function inheritedEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MEDILINK_')));
}

/// `settings`: extra MEDILINK_* variables for this server.
export async function startServer(settings = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'medilink-e2e-'));
  const port = await freePort();
  const env = {
    ...inheritedEnv(),
    MEDILINK_DATABASE_URL: `sqlite://${join(dir, 'e2e.db')}`,
    MEDILINK_BIND: `127.0.0.1:${port}`,
    MEDILINK_JWT_SECRET: 'an end-to-end test secret of enough length',
    MEDILINK_LOG: 'warn',
    ...settings,
  };
  execFileSync(bin, ['create-admin', '--email', 'admin@example.com'], {
    env: { ...env, MEDILINK_ADMIN_PASSWORD: PASSWORD },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const server = await serve(env);
  return {
    ...server,
    /// Stops the server and removes its database.
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/// Serves with `env` as the whole environment and waits until the server answers:
/// { base, ws, pid, stop }.
export async function serve(env) {
  const child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const port = new URL(`http://${env.MEDILINK_BIND}`).port;
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    base,
    ws: `ws://127.0.0.1:${port}/graphql/ws`,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export async function gql(base, query, variables = {}, token) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

export async function register(base, role) {
  const email = `${role.toLowerCase()}-${Math.random().toString(36).slice(2)}@example.com`;
  const data = await gql(
    base,
    'mutation($input: RegisterInput!) { register(input: $input) { accessToken user { id } } }',
    { input: { email, password: PASSWORD, name: `E2E ${role}`, role } },
  );
  return { id: data.register.user.id, email, token: data.register.accessToken };
}

/// A registered, approved doctor: { id (user), doctorId, token }. `adminToken` saves a login.
export async function approvedDoctor(base, adminToken) {
  const doctor = await register(base, 'DOCTOR');
  const operations = {
    query: 'mutation($input: DoctorProfileInput!, $licence: Upload!) { submitDoctorProfile(input: $input, licence: $licence) { id } }',
    variables: {
      input: {
        specialization: 'General Practice', qualifications: ['MD'], experienceYears: 5,
        consultationFee: { amount: 3000, currency: 'EUR' }, languages: ['English'],
        licenceNumber: `E2E-${Math.random().toString(36).slice(2)}`, bio: 'End-to-end doctor',
      },
      licence: null,
    },
  };
  const form = new FormData();
  form.append('operations', JSON.stringify(operations));
  form.append('map', JSON.stringify({ 0: ['variables.licence'] }));
  form.append('0', new Blob(['%PDF-1.4\n%%EOF\n'], { type: 'application/pdf' }), 'licence.pdf');
  const submitted = await (await fetch(`${base}/graphql`, {
    method: 'POST', headers: { authorization: `Bearer ${doctor.token}` }, body: form,
  })).json();
  if (submitted.errors) throw new Error(JSON.stringify(submitted.errors));
  const doctorId = submitted.data.submitDoctorProfile.id;
  const admin = adminToken ?? await adminLogin(base);
  await gql(base, 'mutation($id: ID!) { approveDoctor(id: $id) { id } }', { id: doctorId }, admin);
  return { ...doctor, doctorId };
}

/// The access token of the admin that startServer creates.
export async function adminLogin(base) {
  const data = await gql(base, 'mutation($p: String!) { login(input: { email: "admin@example.com", password: $p }) { accessToken } }', { p: PASSWORD });
  return data.login.accessToken;
}

/// A `graphql-ws` client signed in with `token`, connected at once.
export function client(url, token) {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    // Keep the socket open between operations: a doctor is online only while connected.
    lazy: false,
    retryAttempts: 0,
  });
}

/// Runs a query or mutation over the socket.
export function run(ws, query, variables = {}) {
  return new Promise((resolve, reject) => {
    let result;
    ws.subscribe({ query, variables }, {
      next: (value) => { result = value; },
      error: reject,
      complete: () => (result?.errors ? reject(new Error(JSON.stringify(result.errors))) : resolve(result.data)),
    });
  });
}
