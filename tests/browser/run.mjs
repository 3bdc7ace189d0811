// Browser end-to-end tests of the demo page against a running Carillon server.
//
//   node tests/browser/run.mjs --base-url http://127.0.0.1:8080 --tone-dir DIR CASE...
//
// DIR holds tone-<hz>.wav files (tests/browser/test_browser.py writes them). Each CASE
// prints a line `@@result {"case", "ok", "error", "metrics"}`; the exit status is 1 if any
// failed. Cases that call the meetings API (delete_attendee, delete_meeting) ask the Python
// wrapper over stdin/stdout (harness.mjs rpc).

import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { Attendee, DropProxy, rpc, sleep, summarize } from './harness.mjs';

export const TONES = { A: 500, B: 800, C: 1250 };

class Context {
  constructor(baseUrl, toneDir) {
    this.baseUrl = baseUrl;
    this.toneDir = toneDir;
    this.attendees = [];
    this.closers = [];
    this.metrics = {};
  }

  meetingName(label) {
    return `t-${label}-${randomBytes(4).toString('hex')}`;
  }

  tone(hz) {
    const file = path.join(this.toneDir, `tone-${hz}.wav`);
    if (!existsSync(file)) throw new Error(`missing tone file ${file}`);
    return file;
  }

  /** Launch attendees in parallel: launch('A', 'B') gives each its tone from TONES. */
  async launch(...labels) {
    const launched = await Promise.all(
      labels.map((label) => Attendee.launch(label, this.baseUrl, this.tone(TONES[label]))),
    );
    this.attendees.push(...launched);
    return launched;
  }

  async cleanUp() {
    for (const close of this.closers.reverse()) await close();
    await Promise.all(this.attendees.map((a) => a.close()));
  }
}

const NO_VIDEO = { video: false, rawAudio: true };

/** Wait until `who` sees `other` in its roster with `present`. */
function waitPresence(who, other, present, timeoutMs = 15000) {
  return who.waitFor(
    `${other.label} (${other.info.externalUserId}) ${present ? 'in' : 'out of'} the roster`,
    ({ id, ext, present: want }) =>
      window.carillon.state.roster.get(id)?.present === want &&
      window.carillon.state.roster.get(id)?.externalUserId === ext,
    { id: other.info.attendeeId, ext: other.info.externalUserId, present },
    timeoutMs,
  );
}

function waitStopStatus(who, name, timeoutMs = 15000) {
  return who.waitFor(
    `audioVideoDidStop(${name})`,
    (want) => window.carillon.state.stopStatus?.name === want,
    name,
    timeoutMs,
  );
}

async function waitRemoteTile(who, attendeeId, content, timeoutMs = 20000) {
  await who.waitFor(
    `a ${content ? 'content' : 'video'} tile from ${attendeeId}`,
    ({ id, content: c }) =>
      [...window.carillon.state.tiles.values()].some(
        (t) => !t.local && t.attendeeId === id && t.content === c && t.active,
      ),
    { id: attendeeId, content },
    timeoutMs,
  );
  const snap = await who.snapshot();
  return snap.tiles.find((t) => !t.local && t.attendeeId === attendeeId && t.content === content);
}

/** Frames of a tile advance: its frame counter grows and its picture changes. */
async function assertFramesAdvance(who, tileId, what) {
  const stats = [];
  for (let i = 0; i < 6; i += 1) {
    stats.push(await who.call('videoStats', tileId));
    await sleep(500);
  }
  const [first, last] = [stats[0], stats[stats.length - 1]];
  const hashes = new Set(stats.map((s) => s?.hash).filter((h) => h !== null && h !== undefined));
  const detail = JSON.stringify(stats);
  assert.ok(last && last.width > 0 && last.height > 0, `${what}: no decoded picture: ${detail}`);
  assert.ok(last.totalFrames - first.totalFrames >= 5, `${what}: frames do not advance: ${detail}`);
  assert.ok(hashes.size >= 2, `${what}: the picture never changes: ${detail}`);
  return { width: last.width, height: last.height, fps: (last.totalFrames - first.totalFrames) / 2.5 };
}

// Runs `check`; when it fails, the error also carries each page's video RTP statistics
// (what arrived, was decoded or dropped, and the key frames asked for).
async function withRtpStats(people, check) {
  try {
    return await check();
  } catch (error) {
    const stats = await Promise.all(people.map((p) => p.call('rtpStats').catch((e) => String(e))));
    const lines = people.map((p, i) => `${p.label} rtp: ${JSON.stringify(stats[i])}`);
    throw new Error(`${error.message}\n${lines.join('\n')}`, { cause: error });
  }
}

export const CASES = {
  // (a) The unmodified SDK joins: audioVideoDidStart, self in the roster, clean leave.
  async join(ctx) {
    const [a] = await ctx.launch('A');
    const snap = await a.join(ctx.meetingName('join'), { rawAudio: true });
    ctx.metrics.joinMs = Math.round(snap.joinMs);
    await waitPresence(a, a, true);
    await sleep(3000); // the session stays up (ping/pong, media keep-alive)
    const later = await a.snapshot();
    assert.equal(later.phase, 'started', `session did not stay up: ${summarize(later)}`);
    await a.leave();
    const end = await a.snapshot();
    assert.equal(end.stopStatus.name, 'Left', `leave ended with ${end.stopStatus.name}`);
  },

  // (b) Roster: each sees the other with its ExternalUserId; a leave removes it.
  async roster(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('roster');
    await a.join(meeting, NO_VIDEO);
    await b.join(meeting, NO_VIDEO);
    await waitPresence(a, b, true);
    await waitPresence(b, a, true);
    const entry = (await a.snapshot()).roster.find((e) => e.attendeeId === b.info.attendeeId);
    assert.equal(entry.name, 'B', `display name from ExternalUserId ${entry.externalUserId}`);
    await b.leave();
    await waitPresence(a, b, false);
    const gone = (await a.snapshot()).roster.find((e) => e.attendeeId === b.info.attendeeId);
    assert.equal(gone.dropped, false, 'a clean leave is reported as dropped');
  },

  // Mute state travels to the others (AUDIO_STREAM_ID_INFO muted).
  async mute(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('mute');
    await a.join(meeting, NO_VIDEO);
    await b.join(meeting, NO_VIDEO);
    await waitPresence(a, b, true);
    const muted = (want) =>
      a.waitFor(
        `B muted=${want} at A`,
        ({ id, want: w }) => window.carillon.state.roster.get(id)?.muted === w,
        { id: b.info.attendeeId, want },
      );
    await b.call('setMuted', true);
    await muted(true);
    await b.call('setMuted', false);
    await muted(false);
  },

  // (c) Mix-minus: each hears the others' tones and not its own.
  async mixminus(ctx) {
    const people = await ctx.launch('A', 'B', 'C');
    const meeting = ctx.meetingName('mix');
    for (const p of people) await p.join(meeting, NO_VIDEO);
    for (const p of people) for (const q of people) await waitPresence(p, q, true);
    await sleep(2000);
    const freqs = Object.values(TONES);
    const failures = [];
    // Levels are Web Audio analyser dB: a tone captured locally reads about -25 dB, the
    // decoded silence of an empty mix about -120 dB.
    const HEARD = -60;
    // The own tone is removed: what is left at its frequency is Opus coding noise of the
    // others' tones, about 40-50 dB below them. Without mix-minus it would be as loud.
    const REMOVED_DB = 30;
    for (const p of people) {
      const local = await p.call('audioAnalysis', { freqs, source: 'local', durationMs: 1000 });
      const own = TONES[p.label];
      if (local.error || local.levels[own] < HEARD) {
        failures.push(`${p.label}: own tone not captured locally: ${JSON.stringify(local)}`);
        continue;
      }
      const heard = await p.call('audioAnalysis', { freqs, durationMs: 2000 });
      ctx.metrics[`heard${p.label}`] = heard;
      if (heard.error) {
        failures.push(`${p.label}: ${heard.error}`);
        continue;
      }
      const weakest = Math.min(...people.filter((q) => q !== p).map((q) => heard.levels[TONES[q.label]]));
      for (const q of people) {
        const level = heard.levels[TONES[q.label]];
        const where = `${level.toFixed(1)} dB, floor ${heard.floor.toFixed(1)} dB, rms ${heard.rms.toFixed(5)}`;
        if (q === p && level > weakest - REMOVED_DB) {
          failures.push(`${p.label} hears its own ${own} Hz tone (${where})`);
        }
        if (q !== p && (level < HEARD || level - heard.floor < 20)) {
          failures.push(`${p.label} does not hear ${q.label}'s ${TONES[q.label]} Hz tone (${where})`);
        }
      }
    }
    assert.deepEqual(failures, []);
  },

  // (d) Volume indicators: the speaking attendee's level reaches the others; muted is silent.
  async volume(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('volume');
    await a.join(meeting, NO_VIDEO);
    await b.join(meeting, NO_VIDEO);
    await waitPresence(b, a, true);
    await b.call('setMuted', true);
    await b.waitFor(
      "A's volume indicator (speaking) at B",
      (id) => (window.carillon.state.roster.get(id)?.maxVolume ?? 0) >= 0.3,
      a.info.attendeeId,
    );
    await a.waitFor(
      'own volume indicator at A',
      (id) => (window.carillon.state.roster.get(id)?.maxVolume ?? 0) >= 0.3,
      a.info.attendeeId,
    );
    await sleep(1500);
    const snap = await a.snapshot();
    const self = snap.roster.find((e) => e.attendeeId === a.info.attendeeId);
    const muted = snap.roster.find((e) => e.attendeeId === b.info.attendeeId);
    ctx.metrics.volumeOfA = self.volume;
    assert.ok(self.speaking, `A is not shown speaking: ${JSON.stringify(self)}`);
    assert.ok(!muted.speaking, `muted B is shown speaking: ${JSON.stringify(muted)}`);
  },

  // (e) Chat over data messages: delivered to the other, never echoed to the sender.
  async chat(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('chat');
    await a.join(meeting, NO_VIDEO);
    await b.join(meeting, NO_VIDEO);
    await waitPresence(a, b, true);
    const text = `hello ${randomBytes(3).toString('hex')} ünïcode ✓`;
    await a.call('sendChat', text);
    await b.waitFor(
      'the chat message at B',
      (t) => window.carillon.state.messages.some((m) => !m.self && m.text === t),
      text,
    );
    const got = (await b.snapshot()).messages.find((m) => !m.self && m.text === text);
    assert.equal(got.senderAttendeeId, a.info.attendeeId);
    assert.equal(got.senderExternalUserId, a.info.externalUserId);
    assert.equal(got.throttled, false, 'message marked throttled (ingest_time_ns 0)');
    assert.ok(Math.abs(got.timestampMs - Date.now()) < 60000, `timestamp ${got.timestampMs}`);
    await b.call('sendChat', 'reply');
    await a.waitFor('the reply at A', () =>
      window.carillon.state.messages.some((m) => !m.self && m.text === 'reply'),
    );
    await sleep(1500);
    const echoesA = (await a.snapshot()).messages.filter((m) => !m.self && m.text === text);
    const echoesB = (await b.snapshot()).messages.filter((m) => !m.self && m.text === 'reply');
    assert.equal(echoesA.length, 0, 'the message was echoed to its sender');
    assert.equal(echoesB.length, 0, 'the reply was echoed to its sender');
  },

  // (f) A remote camera tile whose frames advance.
  async video(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('video');
    await a.join(meeting, { rawAudio: true, video: true });
    await b.join(meeting, { rawAudio: true, video: false });
    await a.waitFor('the local tile at A', () =>
      [...window.carillon.state.tiles.values()].some((t) => t.local),
    );
    const tile = await waitRemoteTile(b, a.info.attendeeId, false);
    ctx.metrics.video = await assertFramesAdvance(b, tile.tileId, "A's camera at B");
  },

  // (f2) Simulcast with VideoPriorityBasedPolicy against a server started with
  // --server-side-adaption (test_browser.py starts one): A sends a simulcast camera; B and C
  // ask for server-side adaption in JOIN and keep decoding A's camera. JOIN_ACK switched
  // their policy to server-side mode, and BITRATES carries the server's downlink estimate
  // (from the transport-cc feedback of B's browser), which the SDK takes as its own.
  // Three attendees: the SDK sends a single layer in calls of two (DefaultSimulcastUplinkPolicy).
  async simulcast_adaption(ctx) {
    const people = await ctx.launch('A', 'B', 'C');
    const [a, b, c] = people;
    const meeting = ctx.meetingName('simulcast');
    await a.join(meeting, { rawAudio: true, video: true, simulcast: true });
    await b.join(meeting, { rawAudio: true, video: false, simulcast: true });
    await c.join(meeting, { rawAudio: true, video: false, simulcast: true });
    const tile = await waitRemoteTile(b, a.info.attendeeId, false);
    ctx.metrics.first = await withRtpStats(people, () =>
      assertFramesAdvance(b, tile.tileId, "A's simulcast camera at B"),
    );
    await b.waitFor(
      'a server-side downlink estimate in BITRATES at B',
      () => window.carillon.state.serverEstimatesKbps.some((kbps) => kbps > 0),
      null,
      20000,
    );
    // Keeps decoding while the server adapts (BITRATES every 4 s, layer choice twice a second).
    await sleep(8000);
    ctx.metrics.later = await withRtpStats(people, () =>
      assertFramesAdvance(b, tile.tileId, "A's simulcast camera at B, later"),
    );
    const cTile = await waitRemoteTile(c, a.info.attendeeId, false);
    ctx.metrics.atC = await withRtpStats(people, () =>
      assertFramesAdvance(c, cTile.tileId, "A's simulcast camera at C"),
    );
    const snaps = await Promise.all(people.map((p) => p.snapshot()));
    for (const [p, snap] of people.map((q, i) => [q, snaps[i]])) {
      assert.equal(snap.phase, 'started', `${p.label}: ${summarize(snap)}`);
      assert.equal(snap.stopStatus, null, `${p.label} stopped: ${summarize(snap)}`);
      assert.equal(snap.reconnectCount, 0, `${p.label} reconnected: ${summarize(snap)}`);
      assert.equal(snap.startCount, 1, `${p.label} started more than once: ${summarize(snap)}`);
      assert.equal(
        snap.serverSideAdaption,
        'BandwidthProbingAndRemoteVideoQualityAdaption',
        `${p.label}: JOIN_ACK did not keep server-side adaption`,
      );
      // Errors (but the expected one: Carillon sends no TURN credentials, spec §3.2) and
      // anything the SDK says about its signaling socket or reconnecting.
      const problems = p.logs.filter(
        (line) =>
          (/^\[(error|pageerror)\]/.test(line) && !line.includes('missing TURN credentials')) ||
          /SignalingClient|WebSocket|reconnect/i.test(line),
      );
      assert.deepEqual(problems, [], `${p.label}: errors in the console`);
    }
    const estimates = snaps[1].serverEstimatesKbps;
    ctx.metrics.serverEstimatesKbpsAtB = estimates;
    ctx.metrics.availableIncomingBitrateAtB = snaps[1].availableIncomingBitrate;
    // A's uplink (measurement): its send-side estimate and what it sends per RID.
    ctx.metrics.availableOutgoingBitratesAtA = snaps[0].availableOutgoingBitrates;
    ctx.metrics.outboundByRidAtA = snaps[0].outboundByRid;
    // On the server's transport-cc feedback A's send estimate grows, and the SDK's simulcast
    // uplink policy sends more than its low layer (without feedback: only "low").
    const sending = Object.values(snaps[0].outboundByRid).filter((o) => o.bytesSent >= 50000);
    assert.ok(
      sending.length >= 2,
      `A sends ${sending.length} simulcast layer(s): ${JSON.stringify(snaps[0].outboundByRid)}, ` +
        `estimate ${JSON.stringify(snaps[0].availableOutgoingBitrates.slice(-3))}`,
    );
    const remote = snaps[1].tiles.find((t) => t.tileId === tile.tileId);
    assert.equal(remote.paused, false, `A's tile at B is paused: ${JSON.stringify(remote)}`);
  },

  // (f3) Layer switches in Chromium's decoder, driven by the server. A Python simulcast
  // camera (tests/browser/python_camera.py: VP8 160x120 `low` and 320x240 `hi`, each layer
  // numbering its pictures from its own random start, like libwebrtc) turns its high layer
  // off and on; with server-side adaption the server moves B's m-line to the layer that is
  // sending each time. B's tile must keep decoding after every switch: the server renumbers
  // the VP8 picture ids and TL0PICIDX on the m-line (mediaserver/sfu/picture_ids.py), or
  // Chromium's reference finder drops the new layer's frames and the tile freezes.
  async simulcast_switches(ctx) {
    const [b] = await ctx.launch('B');
    await b.join(ctx.meetingName('switches'), { rawAudio: true, video: false, simulcast: true });
    const camera = await rpc('python_camera_start', { MeetingId: b.info.meetingId });
    const tile = await waitRemoteTile(b, camera.attendeeId, false);
    const seen = [];
    const decodes = async (width, what) => {
      const deadline = Date.now() + 20000;
      let last = null;
      while (Date.now() < deadline) {
        last = await b.call('videoStats', tile.tileId);
        if (last?.width === width) break;
        await sleep(250);
      }
      assert.equal(last?.width, width, `${what}: B's tile shows ${JSON.stringify(last)}`);
      seen.push(await withRtpStats([b], () => assertFramesAdvance(b, tile.tileId, what)));
    };
    await decodes(320, 'the high layer at first');
    for (let round = 1; round <= 3; round += 1) {
      await rpc('python_camera_layer', { attendeeId: camera.attendeeId, rid: 'hi', active: false });
      await decodes(160, `round ${round}: the low layer after the high one stopped`);
      await rpc('python_camera_layer', { attendeeId: camera.attendeeId, rid: 'hi', active: true });
      await decodes(320, `round ${round}: the high layer again`);
    }
    ctx.metrics.decoded = seen;
    ctx.metrics.rtp = await b.call('rtpStats');
    const snap = await b.snapshot();
    assert.equal(snap.reconnectCount, 0, `B reconnected: ${summarize(snap)}`);
    assert.equal(
      snap.serverSideAdaption,
      'BandwidthProbingAndRemoteVideoQualityAdaption',
      'JOIN_ACK did not keep server-side adaption',
    );
  },

  // (g) Content share: a shared (canvas) stream appears as a content tile at the other.
  async content(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('content');
    await a.join(meeting, NO_VIDEO);
    await b.join(meeting, NO_VIDEO);
    await waitPresence(b, a, true);
    await a.call('shareCanvas');
    await a.waitFor('contentShareDidStart at A', () => window.carillon.state.sharing);
    const contentId = `${a.info.attendeeId}#content`;
    const tile = await waitRemoteTile(b, contentId, true);
    ctx.metrics.content = await assertFramesAdvance(b, tile.tileId, "A's content share at B");
    await a.call('stopShare');
    await b.waitFor(
      'the content tile to go away at B',
      (id) => ![...window.carillon.state.tiles.values()].some((t) => t.attendeeId === id),
      contentId,
    );
  },

  // (h1) DeleteAttendee ends that attendee's session with AudioAttendeeRemoved.
  async delete_attendee(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('delatt');
    await a.join(meeting, NO_VIDEO);
    await b.join(meeting, NO_VIDEO);
    await waitPresence(a, b, true);
    await rpc('delete_attendee', { MeetingId: b.info.meetingId, AttendeeId: b.info.attendeeId });
    await waitStopStatus(b, 'AudioAttendeeRemoved');
    await waitPresence(a, b, false);
    const snap = await a.snapshot();
    assert.equal(snap.phase, 'started', `A was affected: ${summarize(snap)}`);
  },

  // (h2) DeleteMeeting ends every session with MeetingEnded.
  async delete_meeting(ctx) {
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('delmeet');
    await a.join(meeting, NO_VIDEO);
    await b.join(meeting, NO_VIDEO);
    await waitPresence(a, b, true);
    await rpc('delete_meeting', { MeetingId: a.info.meetingId });
    await waitStopStatus(a, 'MeetingEnded');
    await waitStopStatus(b, 'MeetingEnded');
  },

  // (i) The signaling connection drops (TCP reset): the client reconnects by itself and
  // the meeting goes on (roster, chat) without a terminal status.
  async reconnect(ctx) {
    const proxy = await new DropProxy(new URL(ctx.baseUrl).port).listen();
    ctx.closers.push(() => proxy.close());
    const [a, b] = await ctx.launch('A', 'B');
    const meeting = ctx.meetingName('reconnect');
    await a.join(meeting, { ...NO_VIDEO, signalingHost: proxy.host });
    await b.join(meeting, NO_VIDEO);
    await waitPresence(a, b, true);
    await waitPresence(b, a, true);
    const started = Date.now();
    const dropped = proxy.drop();
    assert.ok(dropped >= 2, `no signaling connection went through the proxy (${dropped} sockets)`);
    await a.waitFor(
      'reconnection (audioVideoDidStart again)',
      () => window.carillon.state.reconnectCount >= 1 && window.carillon.state.startCount >= 2,
      null,
      45000,
    );
    ctx.metrics.reconnectMs = Date.now() - started;
    assert.ok(proxy.connections >= 2, 'the client did not open a new signaling connection');
    await waitPresence(a, b, true);
    await waitPresence(b, a, true);
    await b.call('sendChat', 'after reconnect');
    await a.waitFor('a chat message after the reconnection', () =>
      window.carillon.state.messages.some((m) => m.text === 'after reconnect'),
    );
    const snap = await a.snapshot();
    assert.equal(snap.stopStatus, null, `A stopped: ${summarize(snap)}`);
  },

  // Join time, join click → audioVideoDidStart, over 10 joins of one page.
  async jointime(ctx) {
    const [a] = await ctx.launch('A');
    const times = [];
    for (let i = 0; i < 10; i += 1) {
      const snap = await a.join(ctx.meetingName('time'), { rawAudio: true, video: false });
      times.push(snap.joinMs);
      await a.leave();
    }
    const sorted = [...times].sort((x, y) => x - y);
    ctx.metrics.joinMs = times.map((t) => Math.round(t));
    ctx.metrics.p50 = Math.round((sorted[4] + sorted[5]) / 2);
    ctx.metrics.max = Math.round(sorted[9]);
  },
};

async function runCase(name, baseUrl, toneDir) {
  const ctx = new Context(baseUrl, toneDir);
  const started = Date.now();
  let error = null;
  try {
    await CASES[name](ctx);
  } catch (caught) {
    error = caught;
    for (const attendee of ctx.attendees) {
      const snap = await attendee.snapshot().catch(() => null);
      console.log(`--- ${attendee.label} ${JSON.stringify(attendee.info)}\n  ${summarize(snap)}`);
      if (attendee.logs.length) console.log(`  console:\n    ${attendee.logs.slice(-25).join('\n    ')}`);
    }
  } finally {
    await ctx.cleanUp();
  }
  const result = {
    case: name,
    ok: error === null,
    error: error ? String(error.stack ?? error) : null,
    seconds: (Date.now() - started) / 1000,
    metrics: ctx.metrics,
  };
  console.log(`@@result ${JSON.stringify(result)}`);
  return result.ok;
}

async function main() {
  const { values, positionals } = parseArgs({
    options: {
      'base-url': { type: 'string' },
      'tone-dir': { type: 'string' },
    },
    allowPositionals: true,
  });
  const baseUrl = values['base-url'];
  const toneDir = values['tone-dir'];
  const names = positionals.length ? positionals : Object.keys(CASES);
  if (!baseUrl || !toneDir) {
    console.error('usage: run.mjs --base-url URL --tone-dir DIR [CASE...]');
    process.exit(2);
  }
  for (const name of names) {
    if (!(name in CASES)) {
      console.error(`unknown case ${name}; known: ${Object.keys(CASES).join(', ')}`);
      process.exit(2);
    }
  }
  let ok = true;
  for (const name of names) ok = (await runCase(name, baseUrl, toneDir)) && ok;
  process.exit(ok ? 0 : 1);
}

await main();
