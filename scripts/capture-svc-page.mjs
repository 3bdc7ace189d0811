// Chromium side of scripts/capture-svc-vectors.py: a plain RTCPeerConnection in headless
// Chromium that sends its fake camera as one SVC encoding (scalabilityMode, e.g. L3T3) in
// one codec to the Carillon server. Line protocol on stdin/stdout with the Python side:
//   -> OFFER <json sdp>     <- ANSWER <json sdp>     -> STATS <json>   (then it exits)
// Usage: node scripts/capture-svc-page.mjs <vp9|av1> <scalability mode> <seconds> [width
// height fps]. (libwebrtc keeps a VP9 spatial layer at least 320x180: L3T3 needs 1280x720.)

import { createRequire } from 'node:module';
import readline from 'node:readline';

const requireFromWeb = createRequire(new URL('../web/package.json', import.meta.url));
const { chromium } = requireFromWeb('playwright-core');

const [codec = 'vp9', mode = 'L3T3', seconds = '6', width = '1280', height = '720', fps = '15'] =
  process.argv.slice(2);
const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

const browser = await chromium.launch({
  executablePath: process.env.CARILLON_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});
try {
  const page = await browser.newPage();
  page.on('console', (msg) => process.stderr.write(`page: ${msg.text()}\n`));
  // A secure context (getUserMedia needs one) without serving anything: localhost, routed.
  await page.route('http://localhost/**', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>svc</title>' }),
  );
  await page.goto('http://localhost/');
  const offer = await page.evaluate(
    async ({ codec, mode, width, height, fps }) => {
      const media = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width, height, frameRate: fps },
      });
      const pc = new RTCPeerConnection();
      window.pc = pc;
      pc.addTransceiver(media.getAudioTracks()[0], { direction: 'sendrecv' });
      const video = pc.addTransceiver(media.getVideoTracks()[0], {
        direction: 'sendrecv',
        sendEncodings: [{ scalabilityMode: mode, maxBitrate: 2_500_000 }],
      });
      const wanted = RTCRtpSender.getCapabilities('video').codecs.filter(
        (c) =>
          c.mimeType.toLowerCase() === `video/${codec}` &&
          (codec !== 'vp9' || (c.sdpFmtpLine ?? '').includes('profile-id=0')),
      );
      if (!wanted.length) throw new Error(`Chromium cannot send ${codec}`);
      video.setCodecPreferences(wanted.slice(0, 1));
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') resolve();
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve();
        });
      });
      return pc.localDescription.sdp;
    },
    { codec, mode, width: Number(width), height: Number(height), fps: Number(fps) },
  );
  process.stdout.write(`OFFER ${JSON.stringify(offer)}\n`);
  const { value } = await lines.next();
  if (!value?.startsWith('ANSWER ')) throw new Error(`expected ANSWER, got ${value}`);
  const answer = JSON.parse(value.slice(7));
  const stats = await page.evaluate(
    async ({ answer, seconds }) => {
      const pc = window.pc;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      const found = [];
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          found.push({
            encoder: s.encoderImplementation,
            scalabilityMode: s.scalabilityMode,
            frameWidth: s.frameWidth,
            frameHeight: s.frameHeight,
            framesEncoded: s.framesEncoded,
            bytesSent: s.bytesSent,
            limitation: s.qualityLimitationReason,
          });
        }
      });
      return { connection: pc.connectionState, video: found };
    },
    { answer, seconds: Number(seconds) },
  );
  process.stdout.write(`STATS ${JSON.stringify(stats)}\n`);
} catch (error) {
  process.stderr.write(`capture page: ${error?.stack ?? error}\n`);
  process.exitCode = 1;
} finally {
  await browser.close();
  input.close();
  process.stdin.destroy();
}
