// The `graphql-ws` npm client, as web front ends use it, against the real server: it connects
// with connectionParams, subscribes, and receives a WebRTC signal relayed by the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { approvedDoctor, client, gql, register, run, startServer } from './server.mjs';

/// The first `count` events of a subscription, and a way to stop it.
function collect(ws, query, variables, count) {
  const events = [];
  let stop;
  const done = new Promise((resolve, reject) => {
    stop = ws.subscribe({ query, variables }, {
      next: (value) => {
        if (value.errors) return reject(new Error(JSON.stringify(value.errors)));
        events.push(value.data);
        if (events.length === count) resolve(events);
      },
      error: reject,
      complete: () => resolve(events),
    });
  });
  return { done, stop: () => stop() };
}

test('a signal travels from patient to doctor through graphql-ws', { timeout: 30000 }, async () => {
  const server = await startServer();
  try {
    const doctor = await approvedDoctor(server.base);
    const patient = await register(server.base, 'PATIENT');
    const doctorWs = client(server.ws, doctor.token);
    const patientWs = client(server.ws, patient.token);

    const online = await run(doctorWs, 'mutation { setDoctorStatus(status: ONLINE) }');
    assert.equal(online.setDoctorStatus, 'ONLINE');

    const incoming = collect(doctorWs, 'subscription { callEvents { kind call { id } } }', {}, 1);
    await run(doctorWs, '{ __typename }');
    const call = await run(patientWs, 'mutation($d: ID!) { startCall(input: { doctorId: $d }) { id status } }', { d: doctor.doctorId });
    assert.equal(call.startCall.status, 'RINGING');
    const [event] = await incoming.done;
    incoming.stop();
    assert.deepEqual(event.callEvents, { kind: 'INCOMING', call: { id: call.startCall.id } });

    await run(doctorWs, 'mutation($c: ID!) { answerCall(callId: $c, accept: true) { status } }', { c: call.startCall.id });
    const signals = collect(doctorWs, 'subscription($c: ID!) { signals(callId: $c) { from kind sdp } }', { c: call.startCall.id }, 1);
    await run(doctorWs, '{ __typename }');
    await run(patientWs, 'mutation($input: SendSignalInput!) { sendSignal(input: $input) }', {
      input: { callId: call.startCall.id, kind: 'OFFER', sdp: 'v=0 from node' },
    });
    const [signal] = await signals.done;
    signals.stop();
    assert.deepEqual(signal.signals, { from: patient.id, kind: 'OFFER', sdp: 'v=0 from node' });

    const ended = await gql(server.base, 'mutation($c: ID!) { endCall(callId: $c) { status } }', { c: call.startCall.id }, patient.token);
    assert.equal(ended.endCall.status, 'ENDED');
    await doctorWs.dispose();
    await patientWs.dispose();
  } finally {
    await server.stop();
  }
});

test('a bad token is refused with 4403, which graphql-ws reports as a close', { timeout: 15000 }, async () => {
  const server = await startServer();
  try {
    const ws = client(server.ws, 'not a token');
    const closed = await new Promise((resolve) => {
      ws.on('closed', (event) => resolve(event.code));
      ws.subscribe({ query: '{ __typename }' }, { next() {}, error() {}, complete() {} });
    });
    assert.equal(closed, 4403);
    await ws.dispose();
  } finally {
    await server.stop();
  }
});
