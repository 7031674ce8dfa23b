// The /demo page in two real Chromium contexts, a doctor and a patient: a whole video call
// (online, call, accept, media flowing both ways, mute, chat, hang-up), a declined call and a
// missed one, all through the page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PASSWORD, approvedDoctor, gql, startServer } from './server.mjs';
import { SCREENSHOTS, eventually, launch, newPage } from './browser.mjs';

const STUN = 'stun:127.0.0.1:3478';

describe('the /demo page', { timeout: 120000 }, () => {
  let server;
  let browser;
  let doctor;
  let doctorPage;
  let patientPage;
  /// RENEGOTIATE signals as the pages send them: who, and whether it carries an offer.
  const renegotiations = [];
  const record = (who) => (ws) => ws.on('framesent', (frame) => {
    const input = JSON.parse(frame.payload).payload?.variables?.input;
    if (input?.kind === 'RENEGOTIATE') renegotiations.push(`${who}:${input.sdp ? 'offer' : 'empty'}`);
  });

  const doctorStatus = async () =>
    (await gql(server.base, 'query($id: ID!) { doctor(id: $id) { status } }', { id: doctor.doctorId })).doctor.status;

  before(async () => {
    server = await startServer({ MEDILINK_RING_TIMEOUT_SECS: '3', MEDILINK_ICE_SERVERS: STUN });
    browser = await launch();
    doctor = await approvedDoctor(server.base);
    doctorPage = await newPage(browser);
    // The patient on a phone-width screen.
    patientPage = await newPage(browser, { viewport: { width: 390, height: 844 } });
    doctorPage.on('websocket', record('doctor'));
    patientPage.on('websocket', record('patient'));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('a doctor signs in and goes online; a patient registers and sees them live', async () => {
    await doctorPage.goto(`${server.base}/demo`);
    await doctorPage.fill('#email', doctor.email);
    await doctorPage.fill('#password', PASSWORD);
    await doctorPage.click('#sign-in');
    await doctorPage.waitForSelector('#my-status[data-status="OFFLINE"]');

    await patientPage.goto(`${server.base}/demo`);
    await patientPage.fill('#email', `patient-${Date.now()}@example.com`);
    await patientPage.fill('#password', PASSWORD);
    await patientPage.fill('#name', 'Pat Patient');
    await patientPage.selectOption('#role', 'PATIENT');
    await patientPage.click('#register');
    await patientPage.waitForSelector('#patient-panel:not(.hidden)');
    assert.equal(await patientPage.locator(`li[data-doctor-id="${doctor.doctorId}"]`).count(), 0);

    await doctorPage.click('#go-online');
    await doctorPage.waitForSelector('#my-status[data-status="ONLINE"]');
    // The patient's list updates from doctorStatusChanged, without a reload.
    await patientPage.waitForSelector(`li[data-doctor-id="${doctor.doctorId}"] button:enabled`);
  });

  test('a whole call: ring, accept, video both ways, mute, chat, hang up', async () => {
    await patientPage.click(`li[data-doctor-id="${doctor.doctorId}"] [data-testid="call-doctor"]`);
    await patientPage.waitForSelector('#outgoing:not(.hidden)');
    await doctorPage.waitForSelector('#incoming:not(.hidden)');
    assert.equal(await doctorPage.textContent('#incoming-from'), 'Pat Patient');
    assert.equal(await doctorStatus(), 'BUSY');
    await doctorPage.click('#accept');

    for (const page of [doctorPage, patientPage]) {
      await eventually(page, () => window.medilinkPeerConnection?.connectionState === 'connected', null, 'a connected peer connection');
      const frames = await eventually(page, async () => {
        const stats = await window.medilinkPeerConnection.getStats();
        for (const report of stats.values()) {
          if (report.type === 'inbound-rtp' && report.kind === 'video' && report.framesDecoded > 0) return report.framesDecoded;
        }
        return 0;
      }, null, 'decoded inbound video frames');
      assert.ok(frames > 0);
      // The page asks the server for its ICE servers instead of hard-coding them.
      const iceServers = await page.evaluate(() => window.medilinkPeerConnection.getConfiguration().iceServers);
      assert.deepEqual(iceServers.map((s) => s.urls).flat(), [STUN]);
    }

    await patientPage.click('#toggle-audio');
    await doctorPage.waitForSelector('#remote-media[data-audio="off"][data-video="on"]');
    await patientPage.click('#toggle-video');
    await doctorPage.waitForSelector('#remote-media[data-audio="off"][data-video="off"]');
    assert.match(await doctorPage.textContent('#remote-media'), /microphone and camera off/);
    await patientPage.click('#toggle-audio');
    await doctorPage.waitForSelector('#remote-media[data-audio="on"][data-video="off"]');

    await patientPage.fill('#chat-input', 'Hello, doctor');
    await patientPage.click('#chat-send');
    await doctorPage.waitForSelector('#chat-log li:has-text("Hello, doctor")');
    await doctorPage.fill('#chat-input', 'Hello, how can I help?');
    await doctorPage.press('#chat-input', 'Enter');
    await patientPage.waitForSelector('#chat-log li:has-text("Hello, how can I help?")');

    await doctorPage.screenshot({ path: join(SCREENSHOTS, 'doctor-mid-call.png'), fullPage: true });
    await patientPage.screenshot({ path: join(SCREENSHOTS, 'patient-mid-call.png'), fullPage: true });
    // ICE restart. A real ICE failure cannot be forced on loopback, so the doctor's page is
    // told its connection failed: it sends an ICE-restart offer as RENEGOTIATE, the patient's
    // page answers, and the call carries on with new ICE credentials.
    const ufrag = (page) => page.evaluate(() => window.medilinkPeerConnection.remoteDescription.sdp.match(/a=ice-ufrag:(\S+)/)[1]);
    const before = await ufrag(doctorPage);
    await doctorPage.evaluate(() => restartIce(state.call));
    await eventually(doctorPage, (old) => {
      const sdp = window.medilinkPeerConnection.remoteDescription.sdp;
      return !sdp.includes(`a=ice-ufrag:${old}`) && window.medilinkPeerConnection.connectionState === 'connected';
    }, before, 'a restarted, connected ICE session');
    assert.notEqual(await ufrag(doctorPage), before);
    assert.equal(await patientPage.evaluate(() => window.medilinkPeerConnection.connectionState), 'connected');
    assert.deepEqual(renegotiations, ['doctor:offer']);

    for (const page of [doctorPage, patientPage]) assert.equal(await page.isHidden('#error'), true, await page.textContent('#error'));
    await patientPage.click('#hang-up');
    await patientPage.waitForSelector('#call.hidden', { state: 'attached' });
    await doctorPage.waitForSelector('#call.hidden', { state: 'attached' });
    await doctorPage.waitForSelector('#my-status[data-status="ONLINE"]');
    assert.equal(await doctorStatus(), 'ONLINE');
    assert.equal(await doctorPage.textContent('#notice'), 'The call has ended.');
    assert.equal(await patientPage.evaluate(() => window.medilinkPeerConnection.connectionState), 'closed');
  });

  test('a declined call tells the patient and leaves the doctor online', async () => {
    await patientPage.click(`li[data-doctor-id="${doctor.doctorId}"] button:enabled`);
    await doctorPage.waitForSelector('#incoming:not(.hidden)');
    await doctorPage.click('#decline');
    await patientPage.waitForSelector('#notice:has-text("declined the call")');
    await patientPage.waitForSelector('#outgoing.hidden', { state: 'attached' });
    await doctorPage.waitForSelector('#incoming.hidden', { state: 'attached' });
    await doctorPage.waitForSelector('#my-status[data-status="ONLINE"]');
    assert.equal(await doctorStatus(), 'ONLINE');
  });

  test('an unanswered call is missed on both sides after the ring timeout', async () => {
    await patientPage.click(`li[data-doctor-id="${doctor.doctorId}"] button:enabled`);
    await doctorPage.waitForSelector('#incoming:not(.hidden)');
    await patientPage.waitForSelector('#notice:has-text("did not answer")');
    await doctorPage.waitForSelector('#notice:has-text("You missed a call from Pat Patient")');
    await doctorPage.waitForSelector('#incoming.hidden', { state: 'attached' });
    await doctorPage.waitForSelector('#my-status[data-status="ONLINE"]');
    assert.equal(await doctorStatus(), 'ONLINE');
  });

  test('errors are shown in words', async () => {
    const page = await newPage(browser);
    await page.goto(`${server.base}/demo`);
    await page.fill('#email', doctor.email);
    await page.fill('#password', 'not the password');
    await page.click('#sign-in');
    await page.waitForSelector('#error:not(.hidden)');
    assert.match(await page.textContent('#error'), /^Could not sign in: /);
    await page.context().close();
  });
});
