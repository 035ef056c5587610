// stablesync page: camera + microphone (or the bundled sample) -> POST /offer -> lip-synced
// video + delayed audio back; figures from the server's "stats" data channel and getStats().
// The profile chooser lists GET /profiles (shown when the server serves any); ?profile=NAME
// preselects one.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get("token") || params.get("token");
const state = { pc: null, server: null, browser: {}, figures: {} };
window.stablesync = state; // for tests and curious users

function show(id, text) { $(id).textContent = text; state.figures[id] = text; }
function ms(x) { return x === null || x === undefined || Number.isNaN(x) ? "–" : `${Math.round(x)} ms`; }

async function capture() {
  if (params.get("source") === "sample") {
    const v = $("local");
    v.src = "sample.webm";
    v.loop = true;
    await v.play();
    // the element stays muted (you hear the returned audio only); its stream still carries sound
    return v.captureStream();
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: 25 },
    audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: true },
  });
  $("local").srcObject = stream;
  return stream;
}

function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function listProfiles() {
  const response = await fetch("profiles", { headers: authHeaders() });
  if (!response.ok) return; // no token yet, or an older server: offers name no profile
  const listing = await response.json();
  const select = $("profile");
  const fallback = listing.default ? `${listing.default} (default)` : "default weights";
  select.replaceChildren(new Option(fallback, ""));
  for (const name of listing.profiles) {
    if (name !== listing.default) select.add(new Option(name, name));
  }
  const wanted = params.get("profile");
  if (wanted && wanted !== listing.default) {
    // one not listed is offered as asked: the server's refusal says why it is not served
    if (!listing.profiles.includes(wanted)) select.add(new Option(wanted, wanted));
    select.value = wanted;
  }
  $("profile-choice").hidden = select.options.length < 2;
  state.profiles = listing.profiles;
}

async function start() {
  $("start").disabled = true;
  $("profile").disabled = true;
  $("error").textContent = "";
  show("state", "starting");
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  const stream = await capture();
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  const channel = pc.createDataChannel("stats");
  channel.onmessage = (event) => { state.server = JSON.parse(event.data); render(); };
  pc.ontrack = (event) => {
    const target = event.track.kind === "video" ? $("remote") : $("remote-audio");
    target.srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => show("state", pc.connectionState);
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  const headers = { "Content-Type": "application/json", ...authHeaders() };
  const offer = { sdp: pc.localDescription.sdp, type: pc.localDescription.type };
  if ($("profile").value) offer.profile = $("profile").value;
  const response = await fetch("offer", { method: "POST", headers, body: JSON.stringify(offer) });
  const answer = await response.json();
  if (response.status === 401 || response.status === 429) { // 429: wrong tokens before (this page's /profiles too)
    // what a browser user can do: the page carries the token in its address
    throw new Error(token
      ? "this server refused the token in the address: open the exact address `stablesync serve` printed"
      : "this server needs a token: open the address `stablesync serve` printed (it ends in #token=...)");
  }
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  show("profile-used", answer.profile || "default weights");
  await pc.setRemoteDescription(answer);
  $("stop").disabled = false;
  state.timer = setInterval(pollBrowserStats, 1000);
}

function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000); // host candidates are enough on one machine
  });
}

async function pollBrowserStats() {
  if (!state.pc) return;
  const report = await state.pc.getStats();
  const b = { rttMs: null };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      b.framesDecoded = s.framesDecoded;
      b.fps = s.framesPerSecond;
      b.jitterMs = s.jitterBufferEmittedCount ? (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount : null;
      b.decodeMs = s.framesDecoded ? (1000 * s.totalDecodeTime) / s.framesDecoded : null;
      b.videoPlayout = s.estimatedPlayoutTimestamp;
    } else if (s.type === "inbound-rtp" && s.kind === "audio") {
      b.audioSamples = s.totalSamplesReceived;
      b.audioEnergy = s.totalAudioEnergy;
      b.audioPlayout = s.estimatedPlayoutTimestamp;
    } else if (s.type === "outbound-rtp" && s.kind === "video") {
      b.encodeMs = s.framesEncoded ? (1000 * s.totalEncodeTime) / s.framesEncoded : null;
      b.framesSent = s.framesSent;
    } else if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
      b.rttMs = 1000 * s.currentRoundTripTime;
    }
  });
  state.browser = b;
  render();
}

function render() {
  const s = state.server;
  const b = state.browser;
  show("fps", b.fps !== undefined ? `${b.fps.toFixed(1)}` : s ? `${s.fps_out.toFixed(1)}` : "–");
  if (s) {
    const lat = s.server_latency_ms;
    show("server-latency", `${ms(lat.p50)} / ${ms(lat.p95)}`);
    show("late", `${s.late_frames}`);
    show("dropped", `${s.dropped_frames}`);
    show("lipsync", `${(s.modes && s.modes.lipsync) || 0} / ${s.frames_out}`);
    show("backend", s.backend);
    // Capture -> server is not measurable here; estimate it by encode + half the round trip.
    const parts = [lat.p50, b.encodeMs, b.rttMs, b.jitterMs, b.decodeMs];
    if (parts.every((x) => x !== null && x !== undefined)) show("g2g", ms(lat.p50 + b.encodeMs + b.rttMs + b.jitterMs + b.decodeMs));
  }
  if (b.videoPlayout && b.audioPlayout) show("av-offset", ms(b.videoPlayout - b.audioPlayout));
  else if (s) show("av-offset", `${ms(s.av_offset_ms)} (server)`);
}

async function stop() {
  clearInterval(state.timer);
  if (state.pc) state.pc.close();
  state.pc = null;
  show("state", "closed");
  $("start").disabled = false;
  $("profile").disabled = false;
  $("stop").disabled = true;
}

$("start").onclick = () => start().catch((e) => {
  $("error").textContent = String(e.message || e);
  $("start").disabled = false;
  $("profile").disabled = false;
});
$("stop").onclick = stop;
// the chooser is filled before an autostart, so ?profile=NAME&autostart=1 starts with that profile
listProfiles().catch(() => {}).finally(() => { if (params.get("autostart") === "1") $("start").onclick(); });
