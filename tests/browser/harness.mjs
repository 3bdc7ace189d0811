// Harness for the browser tests: one headless Chromium process per attendee, driving the
// demo page through its `window.carillon` hooks; a TCP proxy that can cut the signaling
// connection; and a line-based RPC to the Python wrapper (which owns the AWS credentials).

import { createRequire } from 'node:module';
import { once } from 'node:events';
import net from 'node:net';
import readline from 'node:readline';

const requireFromWeb = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = requireFromWeb('playwright-core');

export const CHROMIUM = process.env.CARILLON_CHROMIUM ?? '/usr/bin/chromium';
export const TIMEOUT_FACTOR = Number(process.env.CARILLON_TESTS_TIMEOUT_FACTOR ?? '1');

// Flags required on this machine (no network but loopback) plus fake media devices.
const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function scaled(ms) {
  return Math.round(ms * TIMEOUT_FACTOR);
}

/** One attendee: its own Chromium process, one page with the demo loaded. */
export class Attendee {
  constructor(label, browser, page, logs) {
    this.label = label;
    this.browser = browser;
    this.page = page;
    this.logs = logs;
    this.info = null; // {meetingId, attendeeId, externalUserId} once joined
  }

  /** Launch Chromium with `tone` (a WAV path, or null for Chromium's own beep) as microphone. */
  static async launch(label, baseUrl, tone) {
    const args = [...BASE_FLAGS];
    if (tone) args.push(`--use-file-for-fake-audio-capture=${tone}`);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args,
      timeout: scaled(30000),
    });
    const page = await browser.newPage({ viewport: { width: 1024, height: 720 } });
    const logs = [];
    page.on('console', (msg) => {
      if (['error', 'warning'].includes(msg.type())) logs.push(`[${msg.type()}] ${msg.text()}`);
      if (logs.length > 300) logs.shift();
    });
    page.on('pageerror', (error) => logs.push(`[pageerror] ${error.message}`));
    await page.goto(`${baseUrl}/`, { timeout: scaled(15000) });
    await page.waitForFunction(() => window.carillon !== undefined, null, { timeout: scaled(10000) });
    return new Attendee(label, browser, page, logs);
  }

  /** Join and wait for audioVideoDidStart. Options go to window.carillon.join. */
  async join(meeting, options = {}) {
    const name = options.name ?? this.label;
    await this.page.evaluate((o) => window.carillon.join(o), { meeting, name, ...options });
    await this.waitFor(
      'audioVideoDidStart',
      () => {
        const s = window.carillon.state;
        return s.phase === 'started' || s.phase === 'stopped' || s.phase === 'failed';
      },
      null,
      options.timeout ?? 20000,
    );
    const snap = await this.snapshot();
    if (snap.phase !== 'started') {
      throw new Error(
        `${this.label}: join ended in phase ${snap.phase}` +
          (snap.stopStatus ? ` with status ${snap.stopStatus.name} (${snap.stopStatus.code})` : '') +
          (snap.error ? `: ${snap.error}` : ''),
      );
    }
    this.info = {
      meetingId: snap.meetingId,
      attendeeId: snap.attendeeId,
      externalUserId: snap.externalUserId,
    };
    return snap;
  }

  snapshot() {
    return this.page.evaluate(() => window.carillon.snapshot());
  }

  call(method, ...args) {
    return this.page.evaluate(({ m, a }) => window.carillon[m](...a), { m: method, a: args });
  }

  /** Wait until `predicate(arg)` is true in the page; fail with `what` and a snapshot. */
  async waitFor(what, predicate, arg = null, timeoutMs = 15000) {
    try {
      await this.page.waitForFunction(predicate, arg, { timeout: scaled(timeoutMs), polling: 100 });
    } catch (error) {
      if (!String(error?.message).includes('Timeout')) throw error;
      const snap = await this.snapshot().catch(() => null);
      throw new Error(
        `${this.label}: timed out after ${scaled(timeoutMs)} ms waiting for ${what}\n` +
          `  state: ${summarize(snap)}`,
      );
    }
  }

  async leave() {
    await this.call('leave');
    await this.waitFor('audioVideoDidStop after leave', () => window.carillon.state.phase === 'stopped');
  }

  async close() {
    await this.browser.close().catch(() => {});
  }
}

/** A short, readable summary of a page snapshot for failure messages. */
export function summarize(snap) {
  if (!snap) return '(page unavailable)';
  const roster = snap.roster
    .map((e) => `${e.externalUserId ?? e.attendeeId}:${e.present ? 'in' : 'out'}${e.muted ? ':muted' : ''}`)
    .join(', ');
  const tiles = snap.tiles
    .map((t) => `${t.tileId}${t.local ? 'L' : ''}${t.content ? 'C' : ''}${t.active ? '' : '(inactive)'}`)
    .join(', ');
  const events = snap.events
    .slice(-12)
    .map((e) => `${e.t} ${e.type}${e.detail ? ' ' + JSON.stringify(e.detail) : ''}`)
    .join('\n    ');
  return (
    `phase=${snap.phase} stop=${snap.stopStatus ? snap.stopStatus.name : '-'} ` +
    `starts=${snap.startCount} reconnects=${snap.reconnectCount} error=${snap.error ?? '-'}\n` +
    `  roster: [${roster}]\n  tiles: [${tiles}]\n  messages: ${snap.messages.length}\n` +
    `  last events:\n    ${events}`
  );
}

/**
 * A TCP proxy in front of the server's HTTP port. The page is told to reach signaling
 * through it (MeetingSessionURLs.urlRewriter); drop() resets every proxied connection,
 * which the browser sees as an abnormal close (1006), like a network failure.
 */
export class DropProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.connections = 0;
    this.server = net.createServer((client) => this.#accept(client));
  }

  async listen() {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = this.server.address().port;
    return this;
  }

  get host() {
    return `127.0.0.1:${this.port}`;
  }

  #accept(client) {
    this.connections += 1;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  drop() {
    const count = this.sockets.size;
    for (const socket of this.sockets) socket.resetAndDestroy();
    return count;
  }

  async close() {
    this.drop();
    this.server.close();
  }
}

// -- RPC to the Python wrapper ------------------------------------------------------------

let rpcLines = null;
let rpcNext = 1;

/** Ask the Python wrapper to do `op` (e.g. delete_attendee) and wait for its answer. */
export async function rpc(op, args) {
  if (process.env.CARILLON_BROWSER_RPC !== '1') {
    throw new Error(`rpc ${op}: needs the Python wrapper (tests/browser/test_browser.py)`);
  }
  if (rpcLines === null) {
    rpcLines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  }
  const id = rpcNext++;
  process.stdout.write(`@@rpc ${JSON.stringify({ id, op, args })}\n`);
  const { value, done } = await rpcLines.next();
  if (done) throw new Error(`rpc ${op}: the wrapper closed stdin`);
  const reply = JSON.parse(value);
  if (reply.id !== id) throw new Error(`rpc ${op}: reply ${reply.id} for request ${id}`);
  if (!reply.ok) throw new Error(`rpc ${op} failed: ${reply.error}`);
  return reply.result;
}
