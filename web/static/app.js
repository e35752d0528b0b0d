// app.js: the Rendezvous page. Uses signal.js for everything on the wire;
// this file is only the user interface.
//
// Messages over the data channel are JSON objects with a `kind`:
//   {kind: "hello", id, name}          who I am (sent when the channel opens)
//   {kind: "media", id, audio, video}  whether my microphone and camera are on
//   {kind: "chat", id, name, text}     a chat message
// Anything else (plain text from a bot, say) is shown as a chat message. A
// message carrying our own id is an echo (the Go bot echoes what it gets).

import { RendezvousClient, isResumableClose } from "./signal.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** sessionStorage key of the join token: the tab keeps it for a reload. */
const TOKEN_KEY = "rendezvous.token";
/** The join token (?token=), for servers run with -auth-secret; "" for none. */
const joinToken = takeToken();

const ui = {
  body: document.body,
  status: $("status"),
  roomChip: $("room-chip"),
  roomName: $("room-name"),
  seats: $("seats"),
  copyLink: $("copy-link"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeClose: $("notice-close"),
  form: $("join-form"),
  room: $("room"),
  name: $("name"),
  optCam: $("opt-cam"),
  optMic: $("opt-mic"),
  optData: $("opt-data"),
  join: $("join"),
  tiles: $("tiles"),
  localTile: $("tile-local"),
  localVideo: $("local-video"),
  localName: $("local-name"),
  localInitials: $("local-initials"),
  localMedia: $("local-media"),
  btnMic: $("btn-mic"),
  btnCam: $("btn-cam"),
  leave: $("leave"),
  chatLog: $("chat-log"),
  chatEmpty: $("chat-empty"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
  eventLog: $("event-log"),
  logPanel: $("log-panel"),
  logToggle: $("log-toggle"),
  logCount: $("log-count"),
  tileTemplate: $("tile-template"),
};

/** Everything the page knows; exposed as window.rendezvous for tests and debugging. */
const app = {
  /** @type {RendezvousClient} one client, hence one WebSocket, for the page's life */
  client: null,
  /** @type {MediaStream|null} */
  localStream: null,
  name: "",
  mic: true,
  cam: true,
  dataOnly: false,
  /** @type {Map<string, Tile>} remote members by id */
  tiles: new Map(),
  statsTimer: 0,
  /** Timings (performance.now() ms) for measuring call setup. */
  metrics: { joinAt: 0, mediaAt: 0, joinedAt: 0, peers: {} },
  logLines: 0,
  /** Protocol steps with times since the click on Join (with ?debug). */
  trace: [],
  /**
   * The client's membership events, oldest first (at most 500), each
   * {type, at (performance.now() ms), and the detail's plain fields}: what
   * happened to the call, for tests and debugging.
   */
  events: [],
};
window.rendezvous = app;

/**
 * @typedef {object} Tile
 * @property {string} id
 * @property {string|null} name  name from the member's hello
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} nameEl
 * @property {HTMLElement} initialsEl
 * @property {HTMLElement} stateEl
 * @property {HTMLElement} statsEl
 * @property {HTMLElement} micEl
 * @property {boolean|undefined} remoteVideo  camera state the member announced
 */

// ---------- small helpers ----------

/**
 * Reads the join token from ?token= and takes it out of the address bar
 * (the other parameters stay), so that it is not left on screen, in the
 * history, or in a link copied from there. The tab keeps it in
 * sessionStorage, so that a reload can still join; without ?token= the
 * token is the one the tab kept, if any.
 * @returns {string}
 */
function takeToken() {
  const token = params.get("token");
  if (!token) {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
  }
  params.delete("token");
  const url = new URL(location.href);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url);
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* storage off */ }
  return token;
}

function metricsFor(id) {
  return (app.metrics.peers[id] ||= { connectedAt: 0, firstFrameAt: 0 });
}

function shortId(id) {
  return id.length > 10 ? id.slice(0, 8) + "…" : id;
}

function initials(name) {
  const words = name.replace(/[^\p{L}\p{N} ]/gu, " ").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  return (words.length > 1 ? words[0][0] + words[1][0] : words[0][0]).toUpperCase();
}

function displayName(t) {
  return t.name || shortId(t.id);
}

function fmtRate(kbps) {
  if (kbps == null) return "–";
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mb/s` : `${Math.round(kbps)} kb/s`;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// ---------- event log ----------

/**
 * @param {string} text
 * @param {""|"server"|"peer"|"error"|"debug"} [kind]
 */
function log(text, kind = "") {
  const list = ui.eventLog;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const li = el("li", kind);
  const now = new Date();
  const time = el("time", "", now.toTimeString().slice(0, 8));
  time.dateTime = now.toISOString();
  li.append(time);
  if (kind) li.append(el("span", "tag", kind));
  li.append(el("span", "text", text));
  list.append(li);
  while (list.children.length > 300) list.firstElementChild.remove();
  app.logLines++;
  ui.logCount.textContent = String(app.logLines);
  if (nearBottom) list.scrollTop = list.scrollHeight;
}

// ---------- notices and status ----------

let noticeTimer = 0;

/**
 * Shows one notice at a time.
 * @param {string} kind stable name, for tests and styling (full, unreachable, ...)
 * @param {"info"|"warn"|"error"} level
 * @param {string} text
 * @param {number} [autoHideMs] hide after this long (0: stay)
 */
function notice(kind, level, text, autoHideMs = 0) {
  clearTimeout(noticeTimer);
  ui.notice.dataset.kind = kind;
  ui.notice.dataset.level = level;
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
  if (autoHideMs) noticeTimer = setTimeout(() => hideNotice(kind), autoHideMs);
}

/** Hides the notice; with kind, only a notice of that kind. */
function hideNotice(kind) {
  if (kind && ui.notice.dataset.kind !== kind) return;
  ui.notice.hidden = true;
  ui.notice.dataset.kind = "";
}

/** @param {"idle"|"connecting"|"reconnecting"|"joined"|"error"} state */
function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function setPhase(phase) {
  ui.body.dataset.phase = phase;
}

// ---------- local media ----------

/**
 * Gets the camera and/or microphone as chosen. Returns null, after telling
 * the user why, when they are blocked or missing; the call goes on without.
 */
async function getMedia(video, audio) {
  if (!video && !audio) return null;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    notice("camera-blocked", "warn", "This page cannot use the camera or microphone here (it needs https or localhost). You can still chat.");
    log("getUserMedia is not available (insecure context?)", "error");
    return null;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: video ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false,
      audio,
    });
  } catch (err) {
    const what = video && audio ? "Camera and microphone" : video ? "Camera" : "Microphone";
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      notice("camera-blocked", "warn", `${what} blocked. You are in without them; allow access in your browser's site settings, then turn them on below.`);
    } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      notice("no-camera", "warn", `No ${what.toLowerCase()} found. You are in without ${video && audio ? "them" : "it"}.`);
    } else if (err.name === "NotReadableError") {
      notice("camera-busy", "warn", `${what} is in use by another application. You are in without ${video && audio ? "them" : "it"}.`);
    } else {
      notice("camera-blocked", "warn", `${what} unavailable: ${err.message || err.name}.`);
    }
    log(`getUserMedia failed: ${err.name}: ${err.message}`, "error");
    return null;
  }
}

function hasLive(kind) {
  return !!app.localStream && app.localStream.getTracks().some((t) => t.kind === kind && t.readyState === "live");
}

function renderLocal() {
  const videoOn = hasLive("video");
  ui.localTile.dataset.video = videoOn ? "on" : "off";
  if (ui.localVideo.srcObject !== app.localStream) ui.localVideo.srcObject = app.localStream;
  const label = app.name ? `${app.name} (you)` : "You";
  ui.localName.textContent = label;
  ui.localInitials.textContent = app.name ? initials(app.name) : "You";
  const micOn = hasLive("audio") && app.mic;
  ui.localMedia.textContent = app.dataOnly ? "data only" : `${videoOn ? "camera on" : "camera off"} · ${micOn ? "mic on" : "mic off"}`;
  ui.btnMic.setAttribute("aria-pressed", String(micOn));
  ui.btnCam.setAttribute("aria-pressed", String(videoOn));
  ui.btnMic.disabled = ui.btnCam.disabled = app.dataOnly;
}

function stopMedia() {
  if (app.localStream) for (const t of app.localStream.getTracks()) t.stop();
  app.localStream = null;
  ui.localVideo.srcObject = null;
}

/** Whether the page is in a call (reconnecting to the server included). */
function inCall() {
  const s = app.client.state;
  return s === "joined" || s === "reconnecting";
}

/** Tells the others whether the microphone and camera are on. */
function announceMedia(to) {
  const c = app.client;
  if (!inCall()) return;
  c.send({ kind: "media", id: c.id, audio: hasLive("audio") && app.mic, video: hasLive("video") }, to);
}

async function toggleMic() {
  app.mic = !app.mic;
  const tracks = app.localStream ? app.localStream.getAudioTracks() : [];
  if (app.mic && !tracks.length) {
    const s = await getMedia(false, true);
    if (!s) { app.mic = false; renderLocal(); return; }
    await addTracks(s);
  }
  for (const t of tracks) t.enabled = app.mic;
  log(app.mic ? "Microphone on" : "Microphone off");
  renderLocal();
  announceMedia();
}

async function toggleCam() {
  if (hasLive("video")) {
    for (const t of app.localStream.getVideoTracks()) {
      t.stop();
      app.localStream.removeTrack(t);
    }
    app.cam = false;
    await app.client.setLocalStream(app.localStream);
    log("Camera off");
  } else {
    const s = await getMedia(true, false);
    if (!s) return;
    app.cam = true;
    await addTracks(s);
    log("Camera on");
  }
  renderLocal();
  announceMedia();
}

async function addTracks(stream) {
  if (!app.localStream) app.localStream = new MediaStream();
  for (const t of stream.getTracks()) app.localStream.addTrack(t);
  ui.localVideo.srcObject = null; // re-attach so the preview picks up the new track
  renderLocal();
  await app.client.setLocalStream(app.localStream);
}

// ---------- remote tiles ----------

/** @returns {Tile} */
function ensureTile(id) {
  let t = app.tiles.get(id);
  if (t) return t;
  const frag = ui.tileTemplate.content.cloneNode(true);
  const figure = frag.querySelector(".tile");
  figure.dataset.peer = id;
  t = {
    id, name: null, el: figure,
    video: figure.querySelector("video"),
    nameEl: figure.querySelector(".name"),
    initialsEl: figure.querySelector(".initials"),
    stateEl: figure.querySelector(".state"),
    statsEl: figure.querySelector(".stats"),
    micEl: figure.querySelector(".muted-mic"),
    remoteVideo: undefined,
  };
  app.tiles.set(id, t);
  renderTile(t);
  setTileState(t, "new");
  ui.tiles.append(figure);
  ui.tiles.dataset.count = String(app.tiles.size + 1);
  return t;
}

function removeTile(id) {
  const t = app.tiles.get(id);
  if (!t) return;
  t.video.srcObject = null;
  t.el.remove();
  app.tiles.delete(id);
  ui.tiles.dataset.count = String(app.tiles.size + 1);
}

function clearTiles() {
  for (const id of [...app.tiles.keys()]) removeTile(id);
}

/** @param {Tile} t */
function renderTile(t) {
  t.nameEl.textContent = displayName(t);
  t.nameEl.title = t.id;
  t.initialsEl.textContent = initials(displayName(t));
  const track = t.video.srcObject ? t.video.srcObject.getVideoTracks()[0] : null;
  const on = !!track && !track.muted && track.readyState === "live" && t.remoteVideo !== false && t.video.videoWidth > 0;
  t.el.dataset.video = on ? "on" : "off";
}

const stateLabels = {
  new: "Waiting", connecting: "Connecting", connected: "Connected",
  disconnected: "Reconnecting", failed: "Failed", closed: "Closed",
};

function setTileState(t, state) {
  t.el.dataset.state = state;
  t.stateEl.textContent = stateLabels[state] || state;
}

/** @param {Tile} t */
function attachStream(t, stream, track) {
  const v = t.video;
  if (v.srcObject !== stream) v.srcObject = stream;
  v.play().catch(() => {}); // autoplay may need the join click; it had one
  track.addEventListener("unmute", () => renderTile(t));
  track.addEventListener("mute", () => renderTile(t));
  track.addEventListener("ended", () => renderTile(t));
  if (track.kind === "video") {
    const m = metricsFor(t.id);
    const firstFrame = () => {
      if (v.videoWidth > 0 && !m.firstFrameAt) {
        m.firstFrameAt = performance.now();
        log(`First video frame from ${displayName(t)} (${v.videoWidth}×${v.videoHeight})`, "peer");
      }
      renderTile(t);
    };
    v.addEventListener("loadeddata", firstFrame);
    v.addEventListener("resize", firstFrame);
  }
}

async function updateStats() {
  const c = app.client;
  if (!c) return;
  for (const t of app.tiles.values()) {
    let s;
    try {
      s = await c.stats(t.id);
    } catch {
      continue;
    }
    if (!s || !app.tiles.has(t.id)) continue;
    t.el.dataset.rtt = s.rtt == null ? "" : s.rtt.toFixed(1);
    t.el.dataset.pair = s.pairType || "";
    t.el.dataset.frames = String(s.framesDecoded);
    if (t.el.dataset.state !== "connected" && !s.pairType) {
      t.statsEl.textContent = "";
      continue;
    }
    const parts = [
      ["RTT", s.rtt == null ? "–" : `${s.rtt < 10 ? s.rtt.toFixed(1) : Math.round(s.rtt)} ms`],
      ["↓", fmtRate(s.inKbps)],
      ["↑", fmtRate(s.outKbps)],
    ];
    t.statsEl.replaceChildren();
    parts.forEach(([k, v], i) => {
      if (i) t.statsEl.append(el("span", "sep", "·"));
      t.statsEl.append(`${k} `, el("b", "", v));
    });
    if (s.pairType) {
      t.statsEl.append(el("span", "sep", "·"));
      const types = s.localType === s.remoteType ? s.localType : `${s.localType}/${s.remoteType}`;
      const b = el("b", "pair", types);
      b.title = `Candidate pair: local ${s.localType}, remote ${s.remoteType}`;
      t.statsEl.append(b);
    }
    renderTile(t);
  }
}

// ---------- chat ----------

/**
 * @param {string} from
 * @param {string} text
 * @param {"mine"|"theirs"|"system"} who
 */
function addChat(from, text, who) {
  ui.chatEmpty.hidden = true;
  const li = el("li", `msg ${who}`);
  if (who !== "system") li.append(el("div", "from", from));
  li.append(el("div", "body", text));
  ui.chatLog.append(li);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

function setChatEnabled() {
  const c = app.client;
  const open = [...c.peers.values()].some((p) => p.channel && p.channel.readyState === "open");
  ui.chatInput.disabled = ui.chatSend.disabled = !open;
  ui.chatInput.placeholder = open ? "Write a message…" : inCall() ? "Waiting for someone to connect…" : "Join a room to chat";
}

function sendChat(ev) {
  ev.preventDefault();
  const c = app.client;
  const text = ui.chatInput.value.trim();
  if (!inCall() || !text) return;
  const n = c.send({ kind: "chat", id: c.id, name: app.name || null, text });
  if (n === 0) {
    addChat("", "Not sent: nobody is connected yet.", "system");
    return;
  }
  addChat("You", text, "mine");
  ui.chatInput.value = "";
}

/** Handles a data channel message from member id. */
function onData(id, data) {
  const t = app.tiles.get(id) || ensureTile(id);
  const c = app.client;
  let msg = null;
  if (typeof data === "string" && data.startsWith("{")) {
    try { msg = JSON.parse(data); } catch { msg = null; }
  }
  if (!msg || typeof msg.kind !== "string") {
    const text = typeof data === "string" ? data : `[${data.byteLength} bytes of binary data]`;
    addChat(displayName(t), text, "theirs");
    return;
  }
  const echo = msg.id === c.id;
  switch (msg.kind) {
    case "hello":
      if (echo) return;
      if (typeof msg.name === "string" && msg.name) {
        t.name = msg.name.slice(0, 32);
        log(`${shortId(id)} is ${t.name}`, "peer");
        renderTile(t);
      }
      return;
    case "media":
      if (echo) return;
      t.remoteVideo = !!msg.video;
      t.micEl.hidden = !!msg.audio;
      renderTile(t);
      return;
    case "chat":
      if (typeof msg.text !== "string") return;
      addChat(echo ? `${displayName(t)} (echo)` : (msg.name || displayName(t)), msg.text, "theirs");
      return;
  }
}

// ---------- joining and leaving ----------

async function join(ev) {
  ev.preventDefault();
  const room = ui.room.value.trim();
  if (!room) { ui.room.focus(); return; }
  app.name = ui.name.value.trim().slice(0, 32);
  try { localStorage.setItem("rendezvous.name", app.name); } catch { /* private mode */ }
  app.dataOnly = ui.optData.checked;
  app.cam = !app.dataOnly && ui.optCam.checked;
  app.mic = !app.dataOnly && ui.optMic.checked;
  app.metrics = { joinAt: performance.now(), mediaAt: 0, joinedAt: 0, peers: {} };
  hideNotice();
  ui.join.disabled = true;
  setStatus("connecting", "Connecting…");
  log(`Joining room “${room}”${app.dataOnly ? " (data only)" : ""}`);

  app.localStream = await getMedia(app.cam, app.mic);
  app.metrics.mediaAt = performance.now();
  renderLocal();

  const client = app.client;
  await client.setLocalStream(app.localStream);
  const opts = {};
  if (joinToken) opts.token = joinToken;
  const cap = parseInt(params.get("capacity") || "", 10);
  if (cap) opts.capacity = cap;
  try {
    await client.join(room, opts);
  } catch (err) {
    await client.setLocalStream(null);
    stopMedia();
    renderLocal();
    ui.join.disabled = false;
    setStatus("error", "Not connected");
    switch (err.code) {
      case "full":
        notice("full", "error", `Room “${room}” is full (${err.capacity} of ${err.capacity} seats taken). Try again later or pick another room.`);
        log(`Room “${room}” is full`, "error");
        break;
      case "refused":
        notice("refused", "error", `The server at ${location.host} is up but refused this page's connection: ` +
          `it does not allow connections from ${location.origin} (if you run it, check its -origins), or it has too many connections. Try again later.`);
        log(err.message, "error");
        break;
      case "unreachable":
      case "timeout":
        notice("unreachable", "error", `Server unreachable: cannot connect to ${location.host}. Check your network and try again.`);
        log(err.message, "error");
        break;
      case "disconnected":
        notice("unreachable", "error", "The server closed the connection before letting us in. Try again.");
        log(err.message, "error");
        break;
      case "unauthorized":
        notice("unauthorized", "error", `Not let in: ${err.message} Ask for a new invitation link.`);
        log(`join refused: ${err.message}`, "error");
        break;
      default:
        notice("error", "error", `Could not join: ${err.message}`);
        log(`join failed: ${err.code}: ${err.message}`, "error");
    }
    return;
  }
}

/** Events kept in app.events, and the detail fields kept with them. */
const recorded = ["joined", "peerjoined", "peerleft", "reconnecting", "resumed", "seatlost",
  "removed", "disconnected", "left", "full", "error"];

function record(client) {
  for (const type of recorded) {
    client.on(type, (d) => {
      const e = { type, at: Math.round(performance.now()) };
      for (const [k, v] of Object.entries(d || {})) {
        if (v === null || ["string", "number", "boolean"].includes(typeof v)) e[k] = v;
        else if (Array.isArray(v) && v.every((x) => typeof x === "string")) e[k] = v.slice();
        else if (k === "error" && v && typeof v.code === "string") e[k] = v.code;
      }
      app.events.push(e);
      if (app.events.length > 500) app.events.shift();
    });
  }
}

/** @param {RendezvousClient} client */
function wire(client) {
  record(client);
  client.on("joined", (j) => {
    app.metrics.joinedAt = performance.now();
    setPhase("call");
    ui.join.disabled = false;
    ui.roomChip.hidden = false;
    ui.roomName.textContent = j.room;
    updateSeats();
    setStatus("joined", j.created ? "In call · waiting for others" : "In call");
    log(`${j.created ? "Created" : "Joined"} room “${j.room}” as ${j.id} (capacity ${j.capacity})${j.rejoined ? " again" : ""}`);
    if (j.rejoined) notice("reconnected", "info", "Reconnected. Your seat was lost meanwhile, so the call is starting again.", 8000);
    const url = new URL(location.href);
    url.searchParams.set("room", j.room);
    history.replaceState(null, "", url);
    for (const id of j.peers) ensureTile(id);
    updateSeats();
    setChatEnabled();
    clearInterval(app.statsTimer);
    app.statsTimer = setInterval(updateStats, 1000);
  });
  client.on("peerjoined", ({ id }) => {
    ensureTile(id);
    updateSeats();
    hideNotice("peer-left");
    log(`${shortId(id)} joined`, "peer");
  });
  client.on("peerleft", ({ id, reason }) => {
    const t = app.tiles.get(id);
    const who = t ? displayName(t) : shortId(id);
    removeTile(id);
    updateSeats();
    setChatEnabled();
    if (reason === "seat-lost") {
      // We lost our seat (the seatlost notice says so), not they theirs.
      log(`Connection to ${who} closed: our seat was lost`, "peer");
      return;
    }
    const why = reason === "left" ? "left the room" : `dropped out (${reason})`;
    notice("peer-left", "info", `${who} ${why}.`, 10000);
    log(`${who} ${why}`, "peer");
    if (!app.tiles.size) setStatus("joined", "In call · waiting for others");
  });
  client.on("connectionstatechange", ({ id, state }) => {
    const t = app.tiles.get(id) || ensureTile(id);
    setTileState(t, state);
    log(`${displayName(t)}: ${state}`, state === "failed" ? "error" : "peer");
    if (state === "connected") {
      const m = metricsFor(id);
      if (!m.connectedAt) m.connectedAt = performance.now();
      setStatus("joined", "In call");
    }
  });
  client.on("track", ({ id, track, stream }) => {
    const t = app.tiles.get(id) || ensureTile(id);
    attachStream(t, stream, track);
    renderTile(t);
  });
  client.on("channelopen", ({ id }) => {
    client.send({ kind: "hello", id: client.id, name: app.name || null }, id);
    announceMedia(id);
    setChatEnabled();
    log(`Data channel to ${displayName(app.tiles.get(id) || { id })} open`, "peer");
  });
  client.on("channelclose", () => setChatEnabled());
  client.on("message", ({ id, data }) => onData(id, data));
  client.on("relay", ({ from, data }) => onData(from, typeof data === "string" ? data : JSON.stringify(data)));
  client.on("log", ({ message }) => log(message, "server"));
  client.on("error", (e) => {
    log(`${e.code}: ${e.message}`, "error");
    // kicked and room-closed have their own notice (removed).
    const quiet = ["webrtc", "media", "kicked", "room-closed"];
    if (!quiet.includes(e.code) && !e.ref) notice("error", "error", e.message);
  });
  client.on("reconnecting", ({ attempt, delay, code, resume }) => {
    if (attempt === 1) {
      log(`Connection to the server lost (${code}); reconnecting`, "error");
      notice("reconnecting", "warn", resume ? "Connection to the server lost. Reconnecting… The call goes on meanwhile."
        : "Connection to the server lost. Reconnecting… The call will start again.");
    } else {
      log(`Reconnecting: attempt ${attempt} in ${delay} ms${resume ? "" : " (to join again)"}`);
    }
    setStatus("reconnecting", "Reconnecting…");
  });
  client.on("resumed", ({ attempts, after, sent }) => {
    log(`Reconnected after ${after} ms (${attempts} attempt${attempts === 1 ? "" : "s"}); ${sent} queued message${sent === 1 ? "" : "s"} sent`);
    notice("reconnected", "info", "Reconnected.", 5000);
    setStatus("joined", app.tiles.size ? "In call" : "In call · waiting for others");
  });
  client.on("seatlost", ({ reason }) => {
    log(`Our seat in the room was lost (${reason}); joining again when the server is back`, "error");
    notice("reconnecting", "warn", "Connection to the server lost, and your seat with it. Reconnecting… The call will start again.");
  });
  client.on("removed", ({ reason, message, room }) => {
    log(`${reason}: ${message}`, "error");
    endCall();
    if (reason === "kicked") {
      notice("kicked", "error", "An operator removed you from the room.");
    } else {
      notice("room-closed", "error", `An operator closed room “${room}”. The call has ended.`);
    }
    setStatus("error", "Not connected");
  });
  client.on("disconnected", ({ code, reason, wasJoined, error }) => {
    log(`Connection to the server closed (${code}${reason ? " " + reason : ""})${error ? `; ${error.code}: ${error.message}` : ""}`, "error");
    if (!wasJoined) return;
    endCall();
    if (error) {
      notice("disconnected", "error", `Connection lost, and the server did not let you back in: ${error.message}`);
    } else if (isResumableClose(code)) {
      // Reconnecting gave up.
      notice("disconnected", "error", "Connection lost: the server could not be reached, so you left the call. Join again when it is back.");
    } else {
      notice("disconnected", "error", `Connection lost: the server closed it (${reason || code}), so you left the call.`);
    }
    setStatus("error", "Disconnected");
  });
}

function updateSeats() {
  const c = app.client;
  if (!c.capacity) { ui.seats.textContent = ""; return; }
  ui.seats.textContent = `${app.tiles.size + 1}/${c.capacity}`;
}

function endCall() {
  // leave() keeps the WebSocket: a join right after goes on the same
  // connection, so the server sees the leave first and keeps our seat free.
  app.client.leave();
  app.client.setLocalStream(null);
  clearInterval(app.statsTimer);
  clearTiles();
  stopMedia();
  renderLocal();
  setPhase("lobby");
  ui.roomChip.hidden = true;
  ui.join.disabled = false;
  setChatEnabled();
}

function leave() {
  endCall();
  hideNotice();
  setStatus("idle", "Not connected");
  log("You left the room");
}

// ---------- start ----------

function init() {
  ui.room.value = params.get("room") || "";
  let saved = "";
  try { saved = localStorage.getItem("rendezvous.name") || ""; } catch { /* ignore */ }
  ui.name.value = params.get("name") || saved;
  const syncData = () => {
    ui.optCam.disabled = ui.optMic.disabled = ui.optData.checked;
  };
  ui.optData.addEventListener("change", syncData);
  syncData();
  ui.form.addEventListener("submit", join);
  ui.leave.addEventListener("click", leave);
  ui.btnMic.addEventListener("click", () => { toggleMic(); });
  ui.btnCam.addEventListener("click", () => { toggleCam(); });
  ui.chatForm.addEventListener("submit", sendChat);
  ui.noticeClose.addEventListener("click", () => hideNotice());
  ui.logToggle.addEventListener("click", () => {
    const open = ui.logToggle.getAttribute("aria-expanded") !== "true";
    ui.logToggle.setAttribute("aria-expanded", String(open));
    ui.eventLog.hidden = !open;
    ui.logPanel.toggleAttribute("data-collapsed", !open);
    if (open) ui.eventLog.scrollTop = ui.eventLog.scrollHeight;
  });
  ui.copyLink.addEventListener("click", async () => {
    const url = new URL(location.href);
    url.search = "";
    url.searchParams.set("room", ui.roomName.textContent);
    try {
      await navigator.clipboard.writeText(url.href);
      notice("copied", "info", "Invite link copied.", 3000);
    } catch {
      notice("copied", "info", `Invite link: ${url.href}`, 8000);
    }
  });
  const debug = params.has("debug");
  app.client = new RendezvousClient(debug ? {
    debug: (line) => {
      app.trace.push(`${(performance.now() - app.metrics.joinAt).toFixed(0)} ms ${line}`);
      log(line, "debug");
    },
  } : {});
  wire(app.client);
  window.addEventListener("pagehide", () => app.client.close());
  // Back from the back/forward cache the client is closed: start afresh.
  window.addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
  setChatEnabled();
  renderLocal();
  (ui.room.value ? ui.join : ui.room).focus();
  log("Ready");
}

init();
