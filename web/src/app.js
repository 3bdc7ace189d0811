// Carillon demo meeting page, built on the unmodified amazon-chime-sdk-js.
//
// The page asks the Carillon server for a Meeting and an Attendee (POST /demo/join) and
// hands them to the SDK. Everything it shows comes from SDK callbacks. `window.carillon`
// exposes the same actions and a JSON snapshot of the state, so the browser tests in
// tests/browser/ drive and observe the page without depending on its markup.

import {
  ConsoleLogger,
  DefaultDeviceController,
  DefaultMeetingSession,
  LogLevel,
  MeetingSessionConfiguration,
  MeetingSessionStatusCode,
  ServerSideNetworkAdaption,
  TargetDisplaySize,
  VideoPreference,
  VideoPreferences,
  VideoPriorityBasedPolicy,
} from 'amazon-chime-sdk-js';

const CHAT_TOPIC = 'chat';
const CONTENT_SUFFIX = '#content';
const SPEAKING_LEVEL = 0.2;

// ---------------------------------------------------------------------------------------
// State

const state = {
  phase: 'idle', // idle | joining | connecting | reconnecting | started | stopped | failed
  meetingId: null,
  externalMeetingId: null,
  attendeeId: null,
  externalUserId: null,
  joinStartedAt: null, // performance.now() at the join click
  joinMs: null, // join click → first audioVideoDidStart
  startCount: 0, // audioVideoDidStart calls (1 + successful reconnects)
  reconnectCount: 0, // audioVideoDidStartConnecting(true) calls
  stopStatus: null, // {code, name, terminal, failure} from audioVideoDidStop
  error: null,
  localMuted: false,
  cameraOn: false,
  sharing: false,
  roster: new Map(), // attendeeId → entry
  messages: [],
  tiles: new Map(), // tileId → {state fields, element}
  events: [],
  // With the `simulcast` join option (VideoPriorityBasedPolicy): the policy's server-side
  // network adaption mode once JOIN_ACK was handled (a ServerSideNetworkAdaption name),
  // the server's downlink estimates from BITRATES (kbps) and the SDK's availableIncomingBitrate.
  simulcast: false,
  serverSideAdaption: null,
  serverEstimatesKbps: [],
  availableIncomingBitrate: null,
  remoteVideoSources: [],
  // With `simulcast`: the uplink as this browser sends it, once a second from getStats():
  // the send-side estimate (availableOutgoingBitrate, bits/s; it grows only on the
  // server's transport-cc feedback) and the bytes sent and frame size per simulcast RID.
  availableOutgoingBitrates: [],
  outboundByRid: {},
};

let session = null;
let audioVideo = null;
let priorityPolicy = null;
let localAudioStream = null;
let shareCanvasTimer = null;
let analysisContext = null;

const $ = (id) => document.getElementById(id);

function logEvent(type, detail) {
  state.events.push({ t: Math.round(performance.now()), type, ...(detail ? { detail } : {}) });
  if (state.events.length > 500) state.events.shift();
}

function setStatus(text, kind = '') {
  const el = $('status');
  if (!el) return;
  el.textContent = text;
  el.className = `status ${kind}`;
}

function displayName(externalUserId, attendeeId) {
  if (!externalUserId) return attendeeId;
  const base = externalUserId.endsWith(CONTENT_SUFFIX)
    ? externalUserId.slice(0, -CONTENT_SUFFIX.length)
    : externalUserId;
  const hash = base.lastIndexOf('#');
  return hash > 0 ? base.slice(0, hash) : base;
}

function statusName(code) {
  return MeetingSessionStatusCode[code] ?? `Status${code}`;
}

const STOP_MESSAGES = {
  Left: 'You left the meeting',
  MeetingEnded: 'The meeting has ended',
  AudioAttendeeRemoved: 'You were removed from the meeting',
  AudioJoinedFromAnotherDevice: 'You joined from another device',
};

// ---------------------------------------------------------------------------------------
// Rendering (plain DOM; the state above is the source of truth)

function renderRoster() {
  const list = $('roster');
  if (!list) return;
  list.replaceChildren();
  for (const entry of state.roster.values()) {
    if (!entry.present || entry.content) continue;
    const item = document.createElement('li');
    item.dataset.attendeeId = entry.attendeeId;
    item.classList.toggle('speaking', entry.speaking);
    item.classList.toggle('muted', entry.muted === true);
    const level = document.createElement('span');
    level.className = 'level';
    const bar = document.createElement('span');
    bar.style.width = `${Math.round((entry.volume ?? 0) * 100)}%`;
    level.append(bar);
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = entry.name + (entry.attendeeId === state.attendeeId ? ' (you)' : '');
    const mic = document.createElement('span');
    mic.className = 'mic';
    mic.textContent = entry.muted ? 'muted' : '';
    item.append(level, who, mic);
    list.append(item);
  }
}

function renderMessage(message) {
  const list = $('messages');
  if (!list) return;
  const item = document.createElement('li');
  item.classList.toggle('self', message.self);
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = displayName(message.senderExternalUserId, message.senderAttendeeId);
  const text = document.createElement('span');
  text.textContent = message.text;
  item.append(from, text);
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

function renderControls() {
  const joined = session !== null && state.phase !== 'stopped' && state.phase !== 'failed';
  $('join-form')?.classList.toggle('hidden', joined);
  $('meeting-view')?.classList.toggle('hidden', !joined);
  const mute = $('mute');
  if (mute) {
    mute.textContent = state.localMuted ? 'Unmute' : 'Mute';
    mute.setAttribute('aria-pressed', String(state.localMuted));
  }
  const camera = $('camera');
  if (camera) camera.textContent = state.cameraOn ? 'Camera off' : 'Camera on';
  const share = $('share');
  if (share) share.textContent = state.sharing ? 'Stop sharing' : 'Share screen';
}

// ---------------------------------------------------------------------------------------
// Roster: presence, volume, mute

function rosterEntry(attendeeId, externalUserId) {
  let entry = state.roster.get(attendeeId);
  if (!entry) {
    entry = {
      attendeeId,
      externalUserId: externalUserId ?? null,
      name: displayName(externalUserId, attendeeId),
      content: attendeeId.endsWith(CONTENT_SUFFIX),
      present: false,
      dropped: false,
      muted: null,
      volume: null,
      maxVolume: 0,
      volumeEvents: 0,
      signalStrength: null,
      speaking: false,
      joins: 0,
      leaves: 0,
    };
    state.roster.set(attendeeId, entry);
  } else if (externalUserId) {
    entry.externalUserId = externalUserId;
    entry.name = displayName(externalUserId, attendeeId);
  }
  return entry;
}

function onVolume(attendeeId, volume, muted, signalStrength, externalUserId) {
  const entry = rosterEntry(attendeeId, externalUserId);
  entry.volumeEvents += 1;
  if (volume !== null) {
    entry.volume = volume;
    entry.maxVolume = Math.max(entry.maxVolume, volume);
    entry.speaking = volume >= SPEAKING_LEVEL;
  }
  if (muted !== null) entry.muted = muted;
  if (signalStrength !== null) entry.signalStrength = signalStrength;
  renderRoster();
}

function onPresence(attendeeId, present, externalUserId, dropped) {
  const entry = rosterEntry(attendeeId, externalUserId);
  if (present && !entry.present) {
    entry.joins += 1;
    if (!entry.content) audioVideo.realtimeSubscribeToVolumeIndicator(attendeeId, onVolume);
  } else if (!present && entry.present) {
    entry.leaves += 1;
    entry.dropped = Boolean(dropped);
    entry.speaking = false;
    entry.volume = null;
    if (!entry.content) audioVideo.realtimeUnsubscribeFromVolumeIndicator(attendeeId, onVolume);
  }
  entry.present = present;
  logEvent('presence', { attendeeId, present, externalUserId, dropped: Boolean(dropped) });
  renderRoster();
}

// ---------------------------------------------------------------------------------------
// Video tiles

function tileLabel(tileState) {
  if (tileState.localTile) return 'You';
  const name = displayName(tileState.boundExternalUserId, tileState.boundAttendeeId);
  return tileState.isContent ? `${name} (screen)` : name;
}

function tileUpdated(tileState) {
  if (!tileState.boundAttendeeId && !tileState.localTile) return;
  let tile = state.tiles.get(tileState.tileId);
  if (!tile) {
    const wrap = document.createElement('div');
    wrap.className = 'tile';
    wrap.dataset.tileId = String(tileState.tileId);
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    const label = document.createElement('span');
    label.className = 'label';
    wrap.append(video, label);
    $('tiles')?.append(wrap);
    tile = { element: wrap, video, label, updates: 0 };
    state.tiles.set(tileState.tileId, tile);
    audioVideo.bindVideoElement(tileState.tileId, video);
  }
  Object.assign(tile, {
    tileId: tileState.tileId,
    attendeeId: tileState.boundAttendeeId ?? state.attendeeId,
    externalUserId: tileState.boundExternalUserId ?? state.externalUserId,
    local: tileState.localTile,
    content: tileState.isContent,
    active: tileState.active,
    paused: tileState.paused,
    updates: tile.updates + 1,
  });
  tile.element.classList.toggle('content', tileState.isContent);
  tile.label.textContent = tileLabel(tileState);
  logEvent('tile', { tileId: tileState.tileId, local: tile.local, content: tile.content, active: tile.active });
}

function tileRemoved(tileId) {
  const tile = state.tiles.get(tileId);
  if (!tile) return;
  tile.element.remove();
  state.tiles.delete(tileId);
  logEvent('tileRemoved', { tileId });
}

// ---------------------------------------------------------------------------------------
// Session observer

const observer = {
  audioVideoDidStartConnecting(reconnecting) {
    if (reconnecting) {
      state.reconnectCount += 1;
      state.phase = 'reconnecting';
      setStatus('Reconnecting…');
    } else {
      state.phase = 'connecting';
      setStatus('Connecting…');
    }
    logEvent('connecting', { reconnecting });
  },
  audioVideoDidStart() {
    state.startCount += 1;
    state.phase = 'started';
    if (state.joinMs === null && state.joinStartedAt !== null) {
      state.joinMs = performance.now() - state.joinStartedAt;
    }
    setStatus(`In meeting “${state.externalMeetingId}”`, 'ok');
    logEvent('started');
    renderControls();
  },
  audioVideoDidStop(sessionStatus) {
    const code = sessionStatus.statusCode();
    state.stopStatus = {
      code,
      name: statusName(code),
      terminal: sessionStatus.isTerminal(),
      failure: sessionStatus.isFailure(),
    };
    state.phase = 'stopped';
    logEvent('stopped', state.stopStatus);
    const { name } = state.stopStatus;
    const text = STOP_MESSAGES[name] ?? 'Disconnected';
    setStatus(`${text} (${name}, status ${code})`, name === 'Left' ? '' : 'error');
    cleanUp();
  },
  videoTileDidUpdate: tileUpdated,
  videoTileWasRemoved: tileRemoved,
  connectionDidBecomePoor() {
    logEvent('connectionPoor');
  },
  connectionDidSuggestStopVideo() {
    logEvent('suggestStopVideo');
  },
  videoSendDidBecomeUnavailable() {
    logEvent('videoSendUnavailable');
  },
  // VideoPriorityBasedPolicy receives nothing the app has not chosen: choose every remote
  // camera and content share, all at the same priority.
  remoteVideoSourcesDidChange(sources) {
    state.remoteVideoSources = sources.map((s) => s.attendee.attendeeId);
    logEvent('remoteVideoSources', { attendeeIds: state.remoteVideoSources });
    if (!priorityPolicy) return;
    const preferences = VideoPreferences.prepare();
    for (const source of sources) {
      preferences.add(new VideoPreference(source.attendee.attendeeId, 1, TargetDisplaySize.High));
    }
    priorityPolicy.chooseRemoteVideoSources(preferences.build());
  },
  metricsDidReceive(report) {
    if (!priorityPolicy) return;
    const mode = priorityPolicy.getServerSideNetworkAdaption();
    state.serverSideAdaption = ServerSideNetworkAdaption[mode] ?? String(mode);
    const bitrate = report.getObservableMetrics().availableIncomingBitrate;
    if (bitrate !== undefined) state.availableIncomingBitrate = bitrate;
    recordUplink();
  },
};

/** The simulcast uplink from the peer connection's stats (see `availableOutgoingBitrates`). */
async function recordUplink() {
  if (!audioVideo) return;
  const report = await audioVideo.getRTCPeerConnectionStats();
  if (!report) return;
  report.forEach((stat) => {
    if (stat.type === 'candidate-pair' && stat.nominated && stat.availableOutgoingBitrate !== undefined) {
      state.availableOutgoingBitrates.push(stat.availableOutgoingBitrate);
      if (state.availableOutgoingBitrates.length > 200) state.availableOutgoingBitrates.shift();
    }
    if (stat.type === 'outbound-rtp' && stat.kind === 'video' && stat.rid !== undefined) {
      state.outboundByRid[stat.rid] = {
        bytesSent: stat.bytesSent,
        frameWidth: stat.frameWidth ?? null,
        frameHeight: stat.frameHeight ?? null,
        framesPerSecond: stat.framesPerSecond ?? null,
        qualityLimitationReason: stat.qualityLimitationReason ?? null,
        active: stat.active ?? null,
      };
    }
  });
}

// The SDK logs each server-side downlink estimate it takes from BITRATES (MonitorTask); this
// logger keeps them for the tests and passes everything on to the console logger.
const SERVER_ESTIMATE = /server side estimation of available incoming bitrate (\d+)kbps/;

function recordingLogger(inner) {
  return {
    info(message) {
      const found = SERVER_ESTIMATE.exec(message);
      if (found) {
        state.serverEstimatesKbps.push(Number(found[1]));
        if (state.serverEstimatesKbps.length > 200) state.serverEstimatesKbps.shift();
      }
      inner.info(message);
    },
    warn: (message) => inner.warn(message),
    error: (message) => inner.error(message),
    debug: (debugFunction) => inner.debug(debugFunction),
    setLogLevel: (level) => inner.setLogLevel(level),
    getLogLevel: () => inner.getLogLevel(),
  };
}

const contentShareObserver = {
  contentShareDidStart() {
    state.sharing = true;
    logEvent('contentShareStarted');
    renderControls();
  },
  contentShareDidStop() {
    state.sharing = false;
    stopShareCanvas();
    logEvent('contentShareStopped');
    renderControls();
  },
};

function cleanUp() {
  stopShareCanvas();
  for (const tileId of [...state.tiles.keys()]) tileRemoved(tileId);
  if (audioVideo) {
    audioVideo.stopAudioInput().catch(() => {});
    audioVideo.stopVideoInput().catch(() => {});
  }
  session = null;
  audioVideo = null;
  priorityPolicy = null;
  localAudioStream = null;
  state.cameraOn = false;
  state.sharing = false;
  renderRoster();
  renderControls();
}

// ---------------------------------------------------------------------------------------
// Actions

async function fetchJoinInfo(meeting, name) {
  const response = await fetch('/demo/join', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ meeting, name }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.Message || `join failed with HTTP ${response.status}`);
  }
  return body;
}

// Raw microphone (no echo cancellation, noise suppression or gain control): the tests
// send pure tones, which noise suppression would treat as noise.
async function rawMicrophone() {
  return navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
}

/**
 * Join a meeting. Options: meeting, name (required); audio, video (default true);
 * rawAudio (default false); signalingHost ("host:port" replacing the SignalingUrl's, e.g.
 * to go through a test proxy); logLevel (a LogLevel name, default 'WARN'); simulcast
 * (default false: send a simulcast camera and receive with VideoPriorityBasedPolicy, which
 * asks the server for server-side network adaption in JOIN).
 */
async function join(options) {
  if (session) throw new Error('already in a meeting');
  const {
    meeting,
    name,
    audio = true,
    video = true,
    rawAudio = false,
    signalingHost = null,
    simulcast = false,
  } = options;
  state.joinStartedAt = performance.now();
  Object.assign(state, {
    phase: 'joining',
    joinMs: null,
    startCount: 0,
    reconnectCount: 0,
    stopStatus: null,
    error: null,
    localMuted: false,
    cameraOn: false,
    sharing: false,
    simulcast,
    serverSideAdaption: null,
    serverEstimatesKbps: [],
    availableIncomingBitrate: null,
    remoteVideoSources: [],
    availableOutgoingBitrates: [],
    outboundByRid: {},
  });
  state.roster.clear();
  state.messages.length = 0;
  $('messages')?.replaceChildren();
  setStatus('Joining…');
  try {
    const info = await fetchJoinInfo(meeting, name);
    state.meetingId = info.Meeting.MeetingId;
    state.externalMeetingId = info.Meeting.ExternalMeetingId;
    state.attendeeId = info.Attendee.AttendeeId;
    state.externalUserId = info.Attendee.ExternalUserId;

    const consoleLogger = new ConsoleLogger('carillon', LogLevel[options.logLevel ?? 'WARN']);
    // The recording logger needs INFO messages from the SDK; the console still shows only
    // those at the chosen level.
    const logger = simulcast ? recordingLogger(consoleLogger) : consoleLogger;
    const deviceController = new DefaultDeviceController(logger);
    const configuration = new MeetingSessionConfiguration(info.Meeting, info.Attendee);
    if (simulcast) {
      configuration.enableSimulcastForUnifiedPlanChromiumBasedBrowsers = true;
      priorityPolicy = new VideoPriorityBasedPolicy(logger);
      configuration.videoDownlinkBandwidthPolicy = priorityPolicy;
    }
    if (signalingHost) {
      configuration.urls.urlRewriter = (url) => {
        if (!url || !url.includes('/control/')) return url;
        const rewritten = new URL(url);
        rewritten.host = signalingHost;
        return rewritten.toString();
      };
    }
    session = new DefaultMeetingSession(configuration, logger, deviceController);
    audioVideo = session.audioVideo;
    audioVideo.addObserver(observer);
    audioVideo.addContentShareObserver(contentShareObserver);
    audioVideo.realtimeSubscribeToAttendeeIdPresence(onPresence);
    audioVideo.realtimeSubscribeToReceiveDataMessage(CHAT_TOPIC, onChat);
    audioVideo.realtimeSubscribeToMuteAndUnmuteLocalAudio((muted) => {
      state.localMuted = muted;
      renderControls();
    });

    if (audio) {
      if (rawAudio) {
        localAudioStream = await audioVideo.startAudioInput(await rawMicrophone());
      } else {
        const inputs = await audioVideo.listAudioInputDevices();
        localAudioStream = await audioVideo.startAudioInput(inputs[0]?.deviceId ?? 'default');
      }
    }
    if (video) {
      const cameras = await audioVideo.listVideoInputDevices();
      if (cameras.length > 0) {
        await audioVideo.startVideoInput(cameras[0].deviceId);
        state.cameraOn = true;
      }
    }
    await audioVideo.bindAudioElement($('meeting-audio'));
    audioVideo.start();
    if (state.cameraOn) audioVideo.startLocalVideoTile();
    renderControls();
  } catch (error) {
    state.phase = 'failed';
    state.error = String(error?.message ?? error);
    setStatus(`Could not join: ${state.error}`, 'error');
    logEvent('joinFailed', { error: state.error });
    cleanUp();
    throw error;
  }
}

function leave() {
  audioVideo?.stop();
}

function setMuted(muted) {
  if (!audioVideo) return;
  if (muted) audioVideo.realtimeMuteLocalAudio();
  else audioVideo.realtimeUnmuteLocalAudio();
}

async function setCamera(on) {
  if (!audioVideo || on === state.cameraOn) return;
  if (on) {
    const cameras = await audioVideo.listVideoInputDevices();
    if (cameras.length === 0) throw new Error('no camera');
    await audioVideo.startVideoInput(cameras[0].deviceId);
    audioVideo.startLocalVideoTile();
  } else {
    audioVideo.stopLocalVideoTile();
    await audioVideo.stopVideoInput();
  }
  state.cameraOn = on;
  renderControls();
}

async function shareScreen() {
  if (!audioVideo) return;
  await audioVideo.startContentShareFromScreenCapture();
}

// Share an animated canvas instead of the screen (headless browsers have no screen
// picker). Each frame differs, so a receiver can tell that frames advance.
async function shareCanvas() {
  if (!audioVideo) return;
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 360;
  const g = canvas.getContext('2d');
  let frame = 0;
  const draw = () => {
    frame += 1;
    g.fillStyle = '#203060';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = '#f0c040';
    g.fillRect((frame * 8) % canvas.width, 120, 80, 120);
    g.fillStyle = '#ffffff';
    g.font = '32px sans-serif';
    g.fillText(`Carillon share ${frame}`, 24, 56);
  };
  draw();
  shareCanvasTimer = setInterval(draw, 66);
  await audioVideo.startContentShare(canvas.captureStream(15));
}

function stopShareCanvas() {
  if (shareCanvasTimer !== null) clearInterval(shareCanvasTimer);
  shareCanvasTimer = null;
}

function stopShare() {
  audioVideo?.stopContentShare();
}

function sendChat(text, lifetimeMs = 0) {
  if (!audioVideo) throw new Error('not in a meeting');
  audioVideo.realtimeSendDataMessage(CHAT_TOPIC, text, lifetimeMs);
  const message = {
    topic: CHAT_TOPIC,
    text,
    senderAttendeeId: state.attendeeId,
    senderExternalUserId: state.externalUserId,
    timestampMs: Date.now(),
    throttled: false,
    self: true,
  };
  state.messages.push(message);
  renderMessage(message);
}

function onChat(dataMessage) {
  const message = {
    topic: dataMessage.topic,
    text: dataMessage.text(),
    senderAttendeeId: dataMessage.senderAttendeeId,
    senderExternalUserId: dataMessage.senderExternalUserId,
    timestampMs: dataMessage.timestampMs,
    throttled: dataMessage.throttled,
    self: false,
  };
  state.messages.push(message);
  logEvent('chat', { from: message.senderAttendeeId, throttled: message.throttled });
  renderMessage(message);
}

// ---------------------------------------------------------------------------------------
// Measurements for the tests

/**
 * Spectrum of the meeting audio the page receives ('remote', default) or of the local
 * microphone ('local'), averaged over durationMs. Returns the peak level in dB (Web Audio
 * analyser scale) within ±binsAround bins of each frequency, the median level between
 * 100 Hz and 4 kHz as the noise floor, and the RMS of the time signal.
 */
async function audioAnalysis({ freqs = [], durationMs = 1500, source = 'remote', binsAround = 2 } = {}) {
  let stream;
  if (source === 'local') {
    stream = localAudioStream;
  } else {
    stream = audioVideo ? await audioVideo.getCurrentMeetingAudioStream() : null;
    stream = stream ?? $('meeting-audio')?.srcObject ?? null;
  }
  if (!stream || stream.getAudioTracks().length === 0) return { error: `no ${source} audio stream` };
  analysisContext = analysisContext ?? new AudioContext();
  await analysisContext.resume();
  const sourceNode = analysisContext.createMediaStreamSource(stream);
  const analyser = analysisContext.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  sourceNode.connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const power = new Float64Array(analyser.frequencyBinCount);
  const samples = new Float32Array(analyser.fftSize);
  let rmsSum = 0;
  let count = 0;
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    analyser.getFloatFrequencyData(bins);
    for (let i = 0; i < bins.length; i += 1) power[i] += 10 ** (bins[i] / 10);
    analyser.getFloatTimeDomainData(samples);
    let s = 0;
    for (const x of samples) s += x * x;
    rmsSum += Math.sqrt(s / samples.length);
    count += 1;
  }
  sourceNode.disconnect();
  const hzPerBin = analysisContext.sampleRate / analyser.fftSize;
  const db = Array.from(power, (p) => 10 * Math.log10(p / count + 1e-30));
  const levels = {};
  for (const f of freqs) {
    const centre = Math.round(f / hzPerBin);
    let peak = -Infinity;
    for (let i = centre - binsAround; i <= centre + binsAround; i += 1) peak = Math.max(peak, db[i] ?? -Infinity);
    levels[f] = peak;
  }
  const band = db.slice(Math.round(100 / hzPerBin), Math.round(4000 / hzPerBin)).sort((a, b) => a - b);
  return { levels, floor: band[Math.floor(band.length / 2)], rms: rmsSum / count, sampleRate: analysisContext.sampleRate };
}

/** Frame statistics of a tile's video element, and a hash of its current picture. */
function videoStats(tileId) {
  const tile = state.tiles.get(tileId);
  if (!tile) return null;
  const video = tile.video;
  const quality = video.getVideoPlaybackQuality?.();
  let hash = null;
  if (video.videoWidth > 0) {
    const canvas = document.createElement('canvas');
    canvas.width = 32;
    canvas.height = 18;
    const g = canvas.getContext('2d', { willReadFrequently: true });
    g.drawImage(video, 0, 0, canvas.width, canvas.height);
    const pixels = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 2166136261;
    for (let i = 0; i < pixels.length; i += 1) h = Math.imul(h ^ pixels[i], 16777619) >>> 0;
    hash = h;
  }
  return {
    width: video.videoWidth,
    height: video.videoHeight,
    currentTime: video.currentTime,
    totalFrames: quality ? quality.totalVideoFrames : null,
    hash,
  };
}

// The peer connection's RTP statistics (webrtc-stats), for diagnosing a frozen tile: what
// arrived, what was decoded or dropped, and the key frames and NACKs asked for.
const RTP_FIELDS = [
  'kind', 'ssrc', 'mid', 'rid', 'packetsReceived', 'packetsLost', 'framesReceived',
  'framesDecoded', 'keyFramesDecoded', 'framesDropped', 'freezeCount', 'pliCount', 'firCount',
  'nackCount', 'frameWidth', 'frameHeight', 'framesSent', 'bytesSent', 'keyFramesEncoded',
  'qualityLimitationReason', 'decoderImplementation', 'encoderImplementation', 'active',
];

async function rtpStats() {
  if (!session) return [];
  const report = await session.audioVideo.getRTCPeerConnectionStats();
  const found = [];
  report?.forEach((entry) => {
    if (entry.type !== 'inbound-rtp' && entry.type !== 'outbound-rtp') return;
    if (entry.kind !== 'video') return;
    const picked = { type: entry.type };
    for (const name of RTP_FIELDS) if (entry[name] !== undefined) picked[name] = entry[name];
    found.push(picked);
  });
  return found;
}

function snapshot() {
  const { roster, tiles, ...rest } = state;
  return {
    ...rest,
    inMeeting: session !== null,
    roster: [...roster.values()].map((entry) => ({ ...entry })),
    tiles: [...tiles.values()].map(({ element, video, label, ...tile }) => tile),
    messages: state.messages.map((m) => ({ ...m })),
    events: state.events.slice(),
  };
}

window.carillon = {
  join,
  leave,
  setMuted,
  setCamera,
  shareScreen,
  shareCanvas,
  stopShare,
  sendChat,
  snapshot,
  audioAnalysis,
  videoStats,
  rtpStats,
  get state() {
    return state;
  },
  get session() {
    return session;
  },
};

// ---------------------------------------------------------------------------------------
// Wiring of the form and buttons

function wireUi() {
  const form = $('join-form');
  if (!form) return;
  $('name').value = localStorage.getItem('carillon.name') ?? '';
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('name').value.trim();
    localStorage.setItem('carillon.name', name);
    $('join').disabled = true;
    join({
      meeting: $('meeting').value.trim(),
      name,
      audio: $('with-audio').checked,
      video: $('with-video').checked,
      // `?simulcast=1`: simulcast camera and VideoPriorityBasedPolicy (see join).
      simulcast: new URLSearchParams(window.location.search).get('simulcast') === '1',
    })
      .catch(() => {})
      .finally(() => {
        $('join').disabled = false;
      });
  });
  $('mute').addEventListener('click', () => setMuted(!state.localMuted));
  $('camera').addEventListener('click', () => {
    setCamera(!state.cameraOn).catch((error) => setStatus(`Camera: ${error.message}`, 'error'));
  });
  $('share').addEventListener('click', () => {
    if (state.sharing) stopShare();
    else shareScreen().catch((error) => setStatus(`Screen share: ${error.message}`, 'error'));
  });
  $('leave').addEventListener('click', leave);
  $('chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text || !audioVideo) return;
    try {
      sendChat(text);
      input.value = '';
    } catch (error) {
      setStatus(`Chat: ${error.message}`, 'error');
    }
  });
  renderControls();
}

wireUi();
