// The /demo page in two real Chromium contexts, a doctor and a patient: a whole video call
// (online, call, accept, media flowing both ways, mute, chat, hang-up), a declined call and a
// missed one, all through the page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PASSWORD, adminLogin, approvedDoctor, gql, register, startServer } from './server.mjs';
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
    // A figure, not an assertion: from the click to both peer connections connected.
    const accepted = Date.now();
    for (const page of [doctorPage, patientPage]) {
      await page.waitForFunction(() => window.medilinkPeerConnection?.connectionState === 'connected', null, { polling: 10 });
    }
    console.log(`accept to both peer connections connected: ${Date.now() - accepted} ms`);

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
    await patientPage.click('#toggle-video');
    await doctorPage.waitForSelector('#remote-media[data-audio="on"][data-video="on"]');
    assert.equal(await doctorPage.textContent('#remote-media'), '');

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

  test('a confirmed appointment\'s call is joined from the page', async () => {
    // Slots every 10 minutes from now on, so the next one is inside its call window (from 10
    // minutes before the start). Days end at 23:59, so late in the UTC day the doctor works in
    // a zone two hours behind.
    const timeZone = new Date().getUTCHours() >= 23 ? 'Etc/GMT+2' : 'UTC';
    const weekly = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY']
      .map((weekday) => ({ weekday, start: '00:00', end: '23:59' }));
    await gql(server.base, 'mutation($input: ScheduleInput!) { setSchedule(input: $input) { slotMinutes } }', {
      input: { timeZone, slotMinutes: 10, minNoticeMinutes: 0, weekly },
    }, doctor.token);
    const today = new Date().toISOString().slice(0, 10);
    const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
    const { availableSlots } = await gql(server.base, 'query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t, timeZone: "UTC") { startsAt } }', {
      d: doctor.doctorId, f: today, t: tomorrow,
    });
    const patient = await register(server.base, 'PATIENT');
    await gql(server.base, 'mutation($input: BookAppointmentInput!) { bookAppointment(input: $input) { status } }', {
      input: { doctorId: doctor.doctorId, startsAt: availableSlots[0].startsAt, reason: 'Follow-up' },
    }, patient.token);
    // The doctor's page hears of the booking and lists it without a reload.
    await doctorPage.waitForSelector('#appointments [data-testid="join-appointment"]');

    const page = await newPage(browser);
    page.on('websocket', record('appointment patient'));
    await page.goto(`${server.base}/demo`);
    await page.fill('#email', patient.email);
    await page.fill('#password', PASSWORD);
    await page.click('#sign-in');
    await page.click('#appointments [data-testid="join-appointment"]');
    await doctorPage.waitForSelector('#incoming:not(.hidden)');
    await doctorPage.click('#accept');
    for (const side of [doctorPage, page]) {
      await eventually(side, () => window.medilinkPeerConnection?.connectionState === 'connected', null, 'a connected peer connection');
    }
    // The appointment's own chat channel.
    await page.fill('#chat-input', 'About my appointment');
    await page.click('#chat-send');
    await doctorPage.waitForSelector('#chat-log li:has-text("About my appointment")');
    await doctorPage.click('#hang-up');
    await page.waitForSelector('#notice:has-text("The call has ended.")');
    await doctorPage.waitForSelector('#my-status[data-status="ONLINE"]');
    const { myAppointments } = await gql(server.base, '{ myAppointments { nodes { status } } }', {}, patient.token);
    assert.deepEqual(myAppointments.nodes, [{ status: 'IN_PROGRESS' }]);
    await page.context().close();
  });

  test('a new doctor submits a profile with a licence and is let in once approved', async () => {
    const page = await newPage(browser);
    await page.goto(`${server.base}/demo`);
    const email = `doctor-${Date.now()}@example.com`;
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await page.fill('#name', 'Dr New');
    await page.selectOption('#role', 'DOCTOR');
    await page.click('#register');
    await page.waitForSelector('#profile-form:not(.hidden)');
    await page.fill('#p-licence-number', `NEW-${Date.now()}`);
    await page.setInputFiles('#p-licence', { name: 'licence.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n%%EOF\n') });
    await page.click('#p-submit');
    await page.waitForSelector('#profile-state:has-text("waiting for an administrator")');

    const token = await adminLogin(server.base);
    const { pendingDoctors } = await gql(server.base, '{ pendingDoctors { nodes { id user { email } } } }', {}, token);
    const mine = pendingDoctors.nodes.find((d) => d.user.email === email);
    await gql(server.base, 'mutation($id: ID!) { approveDoctor(id: $id) { id } }', { id: mine.id }, token);
    await page.waitForSelector('#doctor-panel:not(.hidden) #my-status[data-status="OFFLINE"]');
    await page.context().close();
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
