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
  btnScreen: $("btn-screen"),
  screenTemplate: $("screen-template"),
  leave: $("leave"),
  chatLog: $("chat-log"),
  chatEmpty: $("chat-empty"),
  chatPanel: $("chat-panel"),
  chatTitle: $("chat-title"),
  announcer: $("announcer"),
  callHeading: $("call-heading"),
  leftRoom: $("left-room"),
  rejoin: $("rejoin"),
  newRoom: $("new-room"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  chatSend: $("chat-send"),
  eventLog: $("event-log"),
  logPanel: $("log-panel"),
  logToggle: $("log-toggle"),
  logCount: $("log-count"),
  tileTemplate: $("tile-template"),
  invite: $("invite"),
  inviteRoom: $("invite-room"),
  inviteLink: $("invite-link"),
  inviteCopy: $("invite-copy"),
  inviteCopyLabel: $("invite-copy-label"),
  inviteShare: $("invite-share"),
  inviteRandom: $("invite-random"),
  btnChat: $("btn-chat"),
  chatUnread: $("chat-unread"),
  chatClose: $("chat-close"),
  preview: $("preview"),
  previewBox: $("preview-box"),
  previewVideo: $("preview-video"),
  previewBtn: $("preview-btn"),
  camSelect: $("cam-select"),
  micSelect: $("mic-select"),
};

/** Everything the page knows; exposed as window.rendezvous for tests and debugging. */
const app = {
  /** @type {RendezvousClient} one client, hence one WebSocket, for the page's life */
  client: null,
  /** @type {MediaStream|null} */
  localStream: null,
  /** @type {MediaStream|null} the camera and microphone opened in the lobby with "Preview" */
  preview: null,
  name: "",
  /** The room of the current or latest call ("" before the first). */
  room: "",
  /** Counts joins, so that media that arrives after a newer join or a leave is dropped. */
  joinSeq: 0,
  /** The camera and microphone are being opened (after joining). */
  mediaPending: false,
  mic: true,
  cam: true,
  dataOnly: false,
  /** @type {Map<string, Tile>} remote members by id */
  tiles: new Map(),
  /** @type {{stream: MediaStream, track: MediaStreamTrack, tile: ScreenTile}|null} this page's screen share */
  screen: null,
  /** The browser's screen picker is open (getDisplayMedia). */
  screenPending: false,
  /** @type {Map<MediaStreamTrack, ScreenTile>} the members' shared screens on show, by their track */
  screens: new Map(),
  statsTimer: 0,
  /** Chat messages from others that arrived while the chat was out of sight. */
  unread: 0,
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
 * @property {boolean} hello  the member's hello arrived
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} nameEl
 * @property {HTMLElement} initialsEl
 * @property {HTMLElement} stateEl
 * @property {HTMLElement} statsEl
 * @property {HTMLElement} qualityEl  the connection-quality bars
 * @property {{lost: number, got: number}|null} prevLoss  packet counters at the previous sample
 * @property {HTMLElement} micEl
 * @property {boolean|undefined} remoteVideo  camera state the member announced
 * @property {number} announceTimer  pending "joined" announcement (0: none)
 */

/**
 * A shared screen's tile: this page's own (id "") or member id's.
 * @typedef {object} ScreenTile
 * @property {string} id
 * @property {MediaStreamTrack} track
 * @property {HTMLElement} el
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} nameEl
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

/** The invite link of room: this page's address with only ?room=. */
function inviteURL(room) {
  const url = new URL(location.href);
  url.search = "";
  url.hash = "";
  url.searchParams.set("room", room);
  return url.href;
}

const roomWords = ["amber", "birch", "cedar", "coral", "delta", "ember", "fjord", "harbor", "indigo", "juniper",
  "lagoon", "maple", "meadow", "nova", "opal", "orbit", "pine", "quartz", "river", "saffron", "summit", "tidal", "willow", "zephyr"];

/** A fresh room name hard to guess: two words and a number, e.g. "cedar-orbit-4821". */
function randomRoom() {
  const r = new Uint32Array(3);
  crypto.getRandomValues(r);
  const w = (x) => roomWords[x % roomWords.length];
  return `${w(r[0])}-${w(r[1])}-${1000 + (r[2] % 9000)}`;
}

function initials(name) {
  const words = name.replace(/[^\p{L}\p{N} ]/gu, " ").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  return (words.length > 1 ? words[0][0] + words[1][0] : words[0][0]).toUpperCase();
}

/**
 * What to call member t: its name; a member that said hello without one is
 * "Guest" and the start of its id; a short id only until its hello arrives.
 */
function displayName(t) {
  return t.name || (t.hello ? `Guest ${t.id.slice(0, 4)}` : shortId(t.id));
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
  clearTimeout(noticeTimer);
  const hadFocus = ui.notice.contains(document.activeElement);
  ui.notice.hidden = true;
  ui.notice.dataset.kind = "";
  if (hadFocus) focusMain();
}

/** Moves focus to where the current phase starts. */
function focusMain() {
  const phase = ui.body.dataset.phase;
  if (phase === "call") ui.callHeading.focus();
  else if (phase === "left") ui.rejoin.focus();
  else (ui.room.value ? ui.join : ui.room).focus();
}

/**
 * Announces text to screen readers (the live region #announcer): joins and
 * leaves. The region keeps the latest few lines.
 */
function announce(text) {
  const p = el("p", "", text);
  ui.announcer.append(p);
  while (ui.announcer.children.length > 5) ui.announcer.firstElementChild.remove();
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

/** localStorage keys of the chosen camera and microphone (deviceIds). */
const CAM_KEY = "rendezvous.camera";
const MIC_KEY = "rendezvous.mic";

function savedDevice(key) {
  try { return localStorage.getItem(key) || ""; } catch { return ""; }
}

/** getUserMedia constraints for the chosen (remembered) devices. */
function mediaConstraints(video, audio) {
  const cam = savedDevice(CAM_KEY), mic = savedDevice(MIC_KEY);
  return {
    video: video ? { width: { ideal: 1280 }, height: { ideal: 720 }, ...(cam ? { deviceId: { ideal: cam } } : {}) } : false,
    audio: audio ? (mic ? { deviceId: { ideal: mic } } : true) : false,
  };
}

/**
 * Gets the camera and/or microphone as chosen. Returns null, after telling
 * the user why, when they are blocked or missing; the call goes on without.
 * With preview (in the lobby), the notices do not speak of a call.
 */
async function getMedia(video, audio, preview = false) {
  if (!video && !audio) return null;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    notice("camera-blocked", "warn", "This page cannot use the camera or microphone here (it needs https or localhost). You can still chat.");
    log("getUserMedia is not available (insecure context?)", "error");
    return null;
  }
  try {
    return await navigator.mediaDevices.getUserMedia(mediaConstraints(video, audio));
  } catch (err) {
    const what = video && audio ? "Camera and microphone" : video ? "Camera" : "Microphone";
    if (preview) {
      const why = err.name === "NotAllowedError" || err.name === "SecurityError" ? "blocked: allow access in your browser's site settings"
        : err.name === "NotFoundError" || err.name === "OverconstrainedError" ? "not found"
        : err.name === "NotReadableError" ? "in use by another application" : `unavailable: ${err.message || err.name}`;
      notice("camera-blocked", "warn", `${what} ${why}. You can still join${video || audio ? " without" : ""}.`);
    } else if (err.name === "NotAllowedError" || err.name === "SecurityError") {
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
  // While the devices open (just after joining) the buttons show what was
  // chosen, and wait.
  const pending = app.mediaPending && !app.dataOnly;
  const state = pending ? "starting camera and microphone…" : app.dataOnly ? "data only"
    : `${videoOn ? "camera on" : "camera off"} · ${micOn ? "mic on" : "mic off"}`;
  ui.localMedia.textContent = state;
  ui.btnMic.setAttribute("aria-pressed", String(pending ? app.mic : micOn));
  ui.btnCam.setAttribute("aria-pressed", String(pending ? app.cam : videoOn));
  ui.btnMic.disabled = ui.btnCam.disabled = app.dataOnly || pending;
  ui.localTile.setAttribute("aria-label", `${label}, ${pending || app.dataOnly ? state : `camera ${videoOn ? "on" : "off"}, microphone ${micOn ? "on" : "off"}`}`);
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

// ---------- pre-join preview ----------

let previewSeq = 0;

/** What the join form asks for: [video, audio]. */
function chosenMedia() {
  const data = ui.optData.checked;
  return [!data && ui.optCam.checked, !data && ui.optMic.checked];
}

/** Opens the chosen camera and microphone in the lobby (only on the user's click). */
async function startPreview() {
  const seq = ++previewSeq;
  stopPreview(false);
  const [video, audio] = chosenMedia();
  ui.previewBtn.setAttribute("aria-pressed", "true");
  ui.previewBtn.textContent = "Stop preview";
  ui.preview.hidden = false;
  if (!video && !audio) { renderPreview(); return; }
  const s = await getMedia(video, audio, true);
  if (seq !== previewSeq) { if (s) for (const t of s.getTracks()) t.stop(); return; }
  app.preview = s;
  renderPreview();
  if (s) await fillDevices();
}

/** Closes the preview's devices; with hide, hides it too. */
function stopPreview(hide = true) {
  if (app.preview) for (const t of app.preview.getTracks()) t.stop();
  app.preview = null;
  ui.previewVideo.srcObject = null;
  if (hide) {
    previewSeq++;
    ui.preview.hidden = true;
    ui.previewBtn.setAttribute("aria-pressed", "false");
    ui.previewBtn.textContent = "Preview camera and mic";
  }
  renderPreview();
}

function renderPreview() {
  const s = app.preview;
  const on = !!s && s.getVideoTracks().some((t) => t.readyState === "live");
  if (ui.previewVideo.srcObject !== s) ui.previewVideo.srcObject = s;
  ui.previewBox.dataset.video = on ? "on" : "off";
  const [video] = chosenMedia();
  ui.previewBox.querySelector(".preview-off").textContent = video ? (s ? "No camera" : "Opening…") : "Camera off";
}

/** Fills the device pickers (labels are known once a device was allowed). */
async function fillDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  let devices = [];
  try { devices = await navigator.mediaDevices.enumerateDevices(); } catch { return; }
  const inUse = (kind) => {
    const t = app.preview && app.preview.getTracks().find((x) => x.kind === kind);
    return t ? t.getSettings().deviceId || "" : "";
  };
  const fill = (select, kind, key, label) => {
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    const current = inUse(kind === "videoinput" ? "video" : "audio") || savedDevice(key);
    select.replaceChildren(...list.map((d, i) => {
      const o = el("option", "", d.label || `${label} ${i + 1}`);
      o.value = d.deviceId;
      o.selected = d.deviceId === current;
      return o;
    }));
    select.disabled = list.length === 0;
  };
  fill(ui.camSelect, "videoinput", CAM_KEY, "Camera");
  fill(ui.micSelect, "audioinput", MIC_KEY, "Microphone");
}

/** A device picked: remembered, and the preview reopened with it. */
function pickDevice(key, select) {
  try { localStorage.setItem(key, select.value); } catch { /* private mode */ }
  log(`${key === CAM_KEY ? "Camera" : "Microphone"}: ${select.selectedOptions[0] ? select.selectedOptions[0].textContent : select.value}`);
  if (!ui.preview.hidden) startPreview();
}

// ---------- screen sharing ----------

/**
 * Most screens one member may show at once: a track past it (a member
 * adding tracks without end) is not shown.
 */
const MAX_SCREENS_PER_MEMBER = 2;

/** Whether this browser can share a screen (most phones cannot). */
function canShareScreen() {
  return !!navigator.mediaDevices && typeof navigator.mediaDevices.getDisplayMedia === "function";
}

function renderShareButton() {
  ui.btnScreen.hidden = !canShareScreen();
  const on = !!app.screen;
  ui.btnScreen.setAttribute("aria-pressed", String(on));
  ui.btnScreen.disabled = app.screenPending;
  ui.btnScreen.title = on ? "Stop sharing your screen" : "Share your screen";
}

/**
 * Shares a screen, window or tab the user picks: its video goes to every
 * member as one more track (addLocalTrack, which renegotiates; members
 * who join later get it too), and shows in a tile of its own here.
 */
async function startShare() {
  if (app.screen || app.screenPending || !inCall()) return;
  const seq = app.joinSeq;
  app.screenPending = true;
  renderShareButton();
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    if (err.name === "NotAllowedError") {
      log("Screen sharing cancelled"); // the picker closed, or the browser said no
    } else {
      notice("screen-failed", "warn", `Could not share the screen: ${err.message || err.name}.`);
      log(`getDisplayMedia failed: ${err.name}: ${err.message}`, "error");
    }
  }
  app.screenPending = false;
  const track = stream ? stream.getVideoTracks()[0] : null;
  if (!track || seq !== app.joinSeq || !inCall()) {
    // Nothing picked, or the call ended while the picker was open.
    if (stream) for (const t of stream.getTracks()) t.stop();
    renderShareButton();
    return;
  }
  track.contentHint = "detail"; // text stays sharp rather than motion smooth
  const tile = makeScreenTile("", track);
  tile.el.id = "tile-screen-local";
  tile.el.classList.add("mine");
  const stop = /** @type {HTMLButtonElement} */ (tile.el.querySelector(".stop-share"));
  stop.hidden = false;
  stop.addEventListener("click", stopShare);
  app.screen = { stream, track, tile };
  // The browser's own "Stop sharing", or the shared window closing.
  track.addEventListener("ended", () => { if (app.screen && app.screen.track === track) stopShare(); });
  app.client.addLocalTrack(track, stream);
  renderTileCount();
  renderShareButton();
  log(`Sharing your screen${track.label ? ` (${track.label})` : ""}`);
  announce("You are sharing your screen");
}

/** Stops sharing: the track leaves every connection (removeLocalTrack) and the tile goes. */
function stopShare() {
  const s = app.screen;
  if (!s) return;
  app.screen = null;
  const hadFocus = s.tile.el.contains(document.activeElement);
  app.client.removeLocalTrack(s.track);
  for (const t of s.stream.getTracks()) t.stop();
  removeScreenTile(s.tile);
  renderTileCount();
  renderShareButton();
  if (hadFocus && !ui.btnScreen.hidden) ui.btnScreen.focus();
  log("Stopped sharing your screen");
  announce("You stopped sharing your screen");
}

/**
 * A new screen tile for track, this page's (id "") or member id's, after
 * the others in the grid (the layout puts screens first).
 * @returns {ScreenTile}
 */
function makeScreenTile(id, track) {
  const frag = /** @type {DocumentFragment} */ (ui.screenTemplate.content.cloneNode(true));
  const figure = /** @type {HTMLElement} */ (frag.querySelector(".tile"));
  const s = { id, track, el: figure, video: figure.querySelector("video"), nameEl: figure.querySelector(".name") };
  if (id) figure.dataset.screenOf = id;
  s.video.srcObject = new MediaStream([track]);
  const render = () => renderScreenTile(s);
  s.video.addEventListener("loadeddata", render);
  s.video.addEventListener("resize", render);
  s.video.play().catch(() => {});
  renderScreenTile(s);
  ui.tiles.append(figure);
  return s;
}

/** @param {ScreenTile} s */
function renderScreenTile(s) {
  const on = s.track.readyState === "live" && !s.track.muted && s.video.videoWidth > 0;
  s.el.dataset.video = on ? "on" : "off";
  const t = s.id ? app.tiles.get(s.id) : null;
  const label = !s.id ? "Your screen" : `${t ? displayName(t) : shortId(s.id)}’s screen`;
  s.nameEl.textContent = label;
  s.el.setAttribute("aria-label", on || !s.id ? label : `${label}, starting`);
}

/** @param {ScreenTile} s */
function removeScreenTile(s) {
  s.video.srcObject = null;
  s.el.remove();
}

/** Tracks whose mute and unmute are followed (showScreen). */
const followedScreens = new WeakSet();

/**
 * A video track from member t that is not its camera: a screen it shares.
 * Its tile shows while the member sends it; when the member stops (its
 * removeLocalTrack makes the track muted here) or leaves, the tile goes.
 * @param {Tile} t
 * @param {MediaStreamTrack} track
 */
function showScreen(t, track) {
  if (!followedScreens.has(track)) {
    followedScreens.add(track);
    track.addEventListener("unmute", () => showScreen(t, track));
    track.addEventListener("mute", () => hideScreen(track));
    track.addEventListener("ended", () => hideScreen(track));
  }
  const shown = app.screens.get(track);
  if (shown) { renderScreenTile(shown); return; }
  if (track.readyState === "ended" || app.tiles.get(t.id) !== t) return;
  const n = [...app.screens.values()].filter((s) => s.id === t.id).length;
  if (n >= MAX_SCREENS_PER_MEMBER) {
    log(`${displayName(t)} sends more than ${MAX_SCREENS_PER_MEMBER} screens; not showing another`, "error");
    return;
  }
  app.screens.set(track, makeScreenTile(t.id, track));
  renderTileCount();
  log(`${displayName(t)} is sharing a screen`, "peer");
  announce(`${displayName(t)} is sharing a screen`);
}

/** Removes the tile of a member's screen track, if it shows. */
function hideScreen(track) {
  const s = app.screens.get(track);
  if (!s) return;
  app.screens.delete(track);
  removeScreenTile(s);
  renderTileCount();
  const t = app.tiles.get(s.id);
  if (t) {
    log(`${displayName(t)} stopped sharing a screen`, "peer");
    announce(`${displayName(t)} stopped sharing a screen`);
  }
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
    id, name: null, hello: false, el: figure,
    video: figure.querySelector("video"),
    nameEl: figure.querySelector(".name"),
    initialsEl: figure.querySelector(".initials"),
    stateEl: figure.querySelector(".state"),
    statsEl: figure.querySelector(".stats"),
    qualityEl: figure.querySelector(".quality"),
    prevLoss: null,
    micEl: figure.querySelector(".muted-mic"),
    remoteVideo: undefined,
    announceTimer: 0,
  };
  app.tiles.set(id, t);
  renderTile(t);
  setTileState(t, "new");
  ui.tiles.append(figure);
  renderTileCount();
  renderInvite();
  return t;
}

function removeTile(id) {
  const t = app.tiles.get(id);
  if (!t) return;
  clearTimeout(t.announceTimer);
  t.video.srcObject = null;
  t.el.remove();
  app.tiles.delete(id);
  for (const [track, s] of app.screens) {
    if (s.id === id) hideScreen(track);
  }
  renderTileCount();
  renderInvite();
}

/**
 * Sets the tile grid's data-count (the people: the members and this page),
 * data-screens (the shared screens, absent when none) and --screens (their
 * number of rows), which the layout follows.
 */
function renderTileCount() {
  ui.tiles.dataset.count = String(app.tiles.size + 1);
  const screens = app.screens.size + (app.screen ? 1 : 0);
  if (screens) ui.tiles.dataset.screens = String(screens);
  else delete ui.tiles.dataset.screens;
  ui.tiles.style.setProperty("--screens", String(Math.max(screens, 1))); // CSSOM: allowed by the CSP
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
  // The tile's accessible name: "Bob, connected, microphone off".
  const parts = [displayName(t), (stateLabels[t.el.dataset.state] || t.el.dataset.state || "waiting").toLowerCase()];
  if (!t.micEl.hidden) parts.push("microphone off");
  if (t.remoteVideo === false) parts.push("camera off");
  t.el.setAttribute("aria-label", parts.join(", "));
  for (const s of app.screens.values()) {
    if (s.id === t.id) renderScreenTile(s);
  }
}

const stateLabels = {
  new: "Waiting", connecting: "Connecting", connected: "Connected",
  disconnected: "Reconnecting", failed: "Failed", closed: "Closed",
};

function setTileState(t, state) {
  t.el.dataset.state = state;
  t.stateEl.textContent = stateLabels[state] || state;
  if (state !== "connected") renderQuality(t, state === "failed" || state === "disconnected" ? 1 : 0);
  renderTile(t);
}

// ---------- invite card (alone in a room) ----------

/** Shows the invite card while nobody else is in the room. */
function renderInvite() {
  const alone = ui.body.dataset.phase === "call" && app.tiles.size === 0;
  ui.body.toggleAttribute("data-alone", alone);
  if (!alone) { ui.invite.hidden = true; return; }
  const href = inviteURL(app.room);
  ui.inviteRoom.textContent = `“${app.room}”`;
  ui.inviteLink.textContent = href;
  ui.inviteLink.href = href;
  ui.inviteShare.hidden = typeof navigator.share !== "function";
  if (ui.invite.hidden) setCopied(false);
  ui.invite.hidden = false;
}

let copiedTimer = 0;

/** Shows on the Copy button whether the link was just copied. */
function setCopied(copied) {
  clearTimeout(copiedTimer);
  ui.inviteCopy.dataset.copied = copied ? "true" : "false";
  ui.inviteCopyLabel.textContent = copied ? "Copied ✓" : "Copy link";
  if (copied) copiedTimer = setTimeout(() => setCopied(false), 4000);
}

/** Copies the room's invite link to the clipboard; true when it did. */
async function copyInvite() {
  const href = inviteURL(app.room);
  try {
    await navigator.clipboard.writeText(href);
    return true;
  } catch (err) {
    log(`Copy failed: ${err.name}: ${err.message}`, "error");
    return false;
  }
}

async function onInviteCopy() {
  if (await copyInvite()) {
    setCopied(true);
    announce("Invite link copied");
  } else {
    // Select the link so that it can be copied by hand.
    const range = document.createRange();
    range.selectNodeContents(ui.inviteLink);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    notice("copy-failed", "warn", "Could not copy the link: it is selected, copy it by hand.", 8000);
  }
}

async function onInviteShare() {
  try {
    await navigator.share({ title: `Rendezvous: ${app.room}`, text: `Join me in “${app.room}”`, url: inviteURL(app.room) });
  } catch (err) {
    if (err.name !== "AbortError") log(`Share failed: ${err.name}: ${err.message}`, "error");
  }
}

/** Leaves the (empty) room for a new one with a random name, same choices. */
function newRandomRoom() {
  const room = randomRoom();
  log(`Moving to a new random room “${room}”`);
  endCall();
  ui.room.value = room;
  ui.name.value = app.name;
  ui.form.requestSubmit();
}

// ---------- the chat sheet (phones) ----------

/** Whether the chat panel can be seen now (on a phone, only as the open sheet). */
function chatVisible() {
  return ui.chatPanel.checkVisibility ? ui.chatPanel.checkVisibility() : ui.chatPanel.offsetParent !== null;
}

function setChatOpen(open) {
  ui.body.toggleAttribute("data-chat-open", open);
  ui.btnChat.setAttribute("aria-expanded", String(open));
  if (open) {
    app.unread = 0;
    ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
    if (!ui.chatInput.disabled) ui.chatInput.focus();
  }
  renderUnread();
}

function renderUnread() {
  ui.chatUnread.hidden = app.unread === 0;
  ui.chatUnread.textContent = app.unread > 99 ? "99+" : String(app.unread);
  ui.btnChat.setAttribute("aria-label", app.unread ? `Chat, ${app.unread} unread` : "Chat");
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

/**
 * Packet loss from member id since the previous sample, 0..1 (null:
 * unknown), from the inbound-rtp counters of its connection.
 * @param {Tile} t
 */
async function lossFor(t) {
  const peer = app.client.peers.get(t.id);
  if (!peer || !peer.pc) return null;
  let lost = 0, got = 0;
  (await peer.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp") { lost += r.packetsLost || 0; got += r.packetsReceived || 0; }
  });
  const prev = t.prevLoss;
  t.prevLoss = { lost, got };
  if (!prev) return null;
  const dl = lost - prev.lost, dg = got - prev.got;
  return dl + dg > 0 ? Math.max(0, dl) / (dl + dg) : null;
}

const qualityNames = ["measuring", "poor", "fair", "good"];

/**
 * The connection quality, 0 (unknown) to 3 (good), from the round-trip
 * time, the packet loss and the bitrate received.
 * @param {Tile} t
 * @param {import("./signal.js").PeerStats} s
 * @param {number|null} loss
 */
function quality(t, s, loss) {
  const state = t.el.dataset.state;
  if (state === "failed" || state === "disconnected") return 1;
  if (state !== "connected" || s.rtt == null) return 0;
  let q = 3;
  if (s.rtt > 400 || (loss != null && loss > 0.08)) q = 1;
  else if (s.rtt > 150 || (loss != null && loss > 0.02)) q = 2;
  // Video announced on, yet (almost) nothing arrives.
  if (t.remoteVideo && s.inKbps != null && s.inKbps < 30) q = Math.min(q, 2);
  return q;
}

/** Shows quality level q (0–3) on tile t's bars. */
function renderQuality(t, q) {
  t.qualityEl.dataset.level = String(q);
  const label = `Connection ${qualityNames[q]}`;
  if (t.qualityEl.getAttribute("aria-label") !== label) {
    t.qualityEl.setAttribute("aria-label", label);
    t.qualityEl.title = `${label}. Details: click`;
  }
}

async function updateStats() {
  const c = app.client;
  if (!c) return;
  for (const t of app.tiles.values()) {
    let s, loss = null;
    try {
      s = await c.stats(t.id);
      loss = await lossFor(t);
    } catch {
      continue;
    }
    if (!s || !app.tiles.has(t.id)) continue;
    t.el.dataset.rtt = s.rtt == null ? "" : s.rtt.toFixed(1);
    t.el.dataset.pair = s.pairType || "";
    t.el.dataset.frames = String(s.framesDecoded);
    const q = quality(t, s, loss);
    t.el.dataset.quality = qualityNames[q];
    renderQuality(t, q);
    if (t.el.dataset.state !== "connected" && !s.pairType) {
      t.statsEl.textContent = "";
      continue;
    }
    const parts = [
      ["RTT", s.rtt == null ? "–" : `${s.rtt < 10 ? s.rtt.toFixed(1) : Math.round(s.rtt)} ms`],
      ["Loss", loss == null ? "–" : `${(loss * 100).toFixed(loss < 0.1 ? 1 : 0)} %`],
      ["Received", fmtRate(s.inKbps)],
      ["Sent", fmtRate(s.outKbps)],
    ];
    if (s.frameWidth) parts.push(["Video", `${s.frameWidth}×${s.frameHeight}${s.framesPerSecond != null ? ` ${Math.round(s.framesPerSecond)} fps` : ""}`]);
    if (s.pairType) {
      const types = s.localType === s.remoteType ? s.localType : `${s.localType}/${s.remoteType}`;
      const how = s.pairType === "relay" ? "relayed" : s.pairType === "srflx" ? "through NAT" : "direct";
      parts.push(["Path", `${how} (${types})`]);
    }
    const dl = el("dl");
    for (const [k, v] of parts) dl.append(el("dt", "", k), el("dd", k === "Path" ? "pair" : "", v));
    if (s.pairType) dl.lastElementChild.title = `Candidate pair: local ${s.localType}, remote ${s.remoteType}`;
    t.statsEl.replaceChildren(dl);
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
  if (who === "theirs" && !chatVisible()) {
    app.unread++;
    renderUnread();
  }
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
      t.hello = true;
      renderTile(t);
      if (typeof msg.name === "string" && msg.name) {
        t.name = msg.name.slice(0, 32);
        log(`${shortId(id)} is ${t.name}`, "peer");
        renderTile(t);
      }
      announceJoin(t);
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
  const seq = ++app.joinSeq;
  app.mediaPending = app.cam || app.mic;
  hideNotice();
  ui.join.disabled = ui.rejoin.disabled = true;
  setStatus("connecting", "Connecting…");
  log(`Joining room “${room}”${app.dataOnly ? " (data only)" : ""}`);

  // Join first, then open the camera and microphone: a room that turns out
  // to be full (or a refused join) never opens a device. The connections
  // negotiate their audio and video up front, so the tracks are added
  // without a new offer.
  const client = app.client;
  const opts = {};
  if (joinToken) opts.token = joinToken;
  const cap = parseInt(params.get("capacity") || "", 10);
  if (cap) opts.capacity = cap;
  try {
    await client.join(room, opts);
  } catch (err) {
    if (seq !== app.joinSeq) return;
    app.mediaPending = false;
    ui.join.disabled = ui.rejoin.disabled = false;
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
    if (ui.body.dataset.phase === "left") ui.rejoin.focus();
    return;
  }
  let stream;
  if (app.preview) {
    // The preview's devices, already open: no second prompt.
    stream = app.preview;
    app.preview = null;
    stopPreview();
  } else {
    stopPreview(); // one still opening is dropped
    stream = await getMedia(app.cam, app.mic);
  }
  if (seq !== app.joinSeq || !inCall()) {
    // Left (or joined again) while the camera was opening.
    if (stream) for (const t of stream.getTracks()) t.stop();
    return;
  }
  app.mediaPending = false;
  app.localStream = stream;
  app.metrics.mediaAt = performance.now();
  renderLocal();
  await client.setLocalStream(app.localStream);
  announceMedia();
}

/** Rejoin (after Leave): the same room, with the same name and choices. */
function rejoin() {
  ui.room.value = app.room;
  ui.name.value = app.name;
  ui.form.requestSubmit();
}

/** Clears the chat log (at each join). */
function clearChat() {
  ui.chatLog.replaceChildren(ui.chatEmpty);
  ui.chatEmpty.hidden = false;
  ui.chatPanel.removeAttribute("data-archived");
  ui.chatTitle.textContent = "Chat";
}

/** Marks the chat as that of a call that ended: kept to read until the next join. */
function archiveChat(room) {
  if (ui.chatPanel.hasAttribute("data-archived")) return;
  if (!ui.chatLog.querySelector(".msg")) {
    clearChat();
    return;
  }
  ui.chatPanel.setAttribute("data-archived", "");
  ui.chatTitle.textContent = "Chat · ended call";
  const now = new Date().toTimeString().slice(0, 5);
  const li = el("li", "ended", `Call in “${room}” ended at ${now}. This chat is cleared when you join again.`);
  ui.chatLog.append(li);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

/** Announces member t's arrival once (when its name is known, or after 3 s without). */
function announceJoin(t) {
  if (!t.announceTimer) return;
  clearTimeout(t.announceTimer);
  t.announceTimer = 0;
  announce(`${displayName(t)} joined`);
}

/** Events kept in app.events, and the detail fields kept with them. */
const recorded = ["joined", "peerjoined", "peerleft", "reconnecting", "resumed", "seatlost",
  "removed", "disconnected", "left", "full", "error", "serverrestart", "reconnected", "peerback",
  "icerestart"];

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
    app.room = j.room;
    if (!j.rejoined) clearChat();
    const wasInCall = ui.body.dataset.phase === "call";
    setPhase("call");
    renderLocal();
    ui.join.disabled = ui.rejoin.disabled = false;
    ui.roomChip.hidden = false;
    ui.roomName.textContent = j.room;
    ui.roomName.title = j.room;
    renderInvite();
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
    const others = j.peers.length;
    ui.callHeading.textContent = `Call in room “${j.room}”`;
    announce(`You joined room “${j.room}”. ${others ? `${others} other${others === 1 ? " is" : "s are"} here.` : "Nobody else is here yet."}`);
    // Focus into the call (not when rejoining on our own: the user may be typing).
    if (!wasInCall) ui.callHeading.focus();
  });
  client.on("peerjoined", ({ id }) => {
    const t = ensureTile(id);
    // Announced with the name from its hello; without one, after 3 s.
    clearTimeout(t.announceTimer);
    t.announceTimer = setTimeout(() => announceJoin(t), 3000);
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
    const why = reason === "left" ? "left the room"
      : reason === "not-back" ? "did not come back after the server restart"
      : `dropped out (${reason})`;
    notice("peer-left", "info", `${who} ${why}.`, 10000);
    announce(`${who} ${why}`);
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
    // signal.js negotiates the camera's transceiver up front, so the
    // member's first video track is its camera; a later one comes from its
    // addLocalTrack: a shared screen.
    if (track.kind === "video" && stream.getVideoTracks()[0] !== track) {
      showScreen(t, track);
      return;
    }
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
  client.on("serverrestart", () => {
    log("The server is restarting; the call goes on peer to peer", "error");
    notice("reconnecting", "warn", "The server restarted; your call continues. Reconnecting…");
    setStatus("reconnecting", "Reconnecting…");
  });
  client.on("reconnected", ({ peers, kept, renegotiated, attempts, after }) => {
    const n = (ids) => `${ids.length} call${ids.length === 1 ? "" : "s"}`;
    log(`Back in the room after the server restart, after ${after} ms (${attempts} attempt${attempts === 1 ? "" : "s"}); ${n(kept)} kept, ${n(renegotiated)} set up again`);
    for (const id of peers) ensureTile(id);
    updateSeats();
    notice("reconnected", "info", "Reconnected.", 5000);
    setStatus("joined", app.tiles.size ? "In call" : "In call · waiting for others");
  });
  client.on("peerback", ({ id }) => {
    const t = app.tiles.get(id);
    log(`${t ? displayName(t) : shortId(id)} is back`, "peer");
  });
  client.on("icerestart", ({ id }) => {
    const t = app.tiles.get(id);
    log(`Connection to ${t ? displayName(t) : shortId(id)} failed; restarting it…`, "error");
  });
  client.on("reconnecting", ({ attempt, delay, code, resume, restart }) => {
    if (restart) {
      if (attempt > 1) log(`Reconnecting: attempt ${attempt} in ${delay} ms`);
      setStatus("reconnecting", "Reconnecting…");
      return; // serverrestart said what is true
    }
    if (attempt === 1 && code === 1012) {
      // A cluster node is restarting: the seat moved to another node.
      log("The server is restarting (1012); moving to another server", "error");
      notice("reconnecting", "warn", "The server is restarting; your call continues. Reconnecting…");
    } else if (attempt === 1) {
      log(`Connection to the server lost (${code}); reconnecting`, "error");
      notice("reconnecting", "warn", resume ? "Connection to the server lost. Reconnecting… The call goes on meanwhile."
        : "Connection to the server lost. Reconnecting… The call will start again.");
    } else {
      log(`Reconnecting: attempt ${attempt} in ${delay} ms${resume ? "" : " (to join again)"}`);
    }
    setStatus("reconnecting", "Reconnecting…");
  });
  client.on("resumed", ({ attempts, after, sent, gap }) => {
    log(`Reconnected after ${after} ms (${attempts} attempt${attempts === 1 ? "" : "s"}); ${sent} queued message${sent === 1 ? "" : "s"} sent`);
    if (gap) log("The room was rebuilt after a server crashed: calls still connecting are set up again", "error");
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
  app.joinSeq++; // media still opening is dropped
  app.mediaPending = false;
  archiveChat(app.room);
  // leave() keeps the WebSocket: a join right after goes on the same
  // connection, so the server sees the leave first and keeps our seat free.
  app.client.leave();
  app.client.setLocalStream(null);
  stopShare();
  clearInterval(app.statsTimer);
  clearTiles();
  stopMedia();
  renderLocal();
  setPhase("lobby");
  renderInvite();
  setChatOpen(false);
  app.unread = 0;
  renderUnread();
  ui.roomChip.hidden = true;
  ui.join.disabled = false;
  setChatEnabled();
}

function leave() {
  endCall();
  hideNotice();
  setPhase("left");
  ui.leftRoom.textContent = `“${app.room}”`;
  setStatus("idle", "Not connected");
  log("You left the room");
  announce(`You left room “${app.room}”`);
  ui.rejoin.focus();
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
  // The preview follows the choices (a chip off closes that device).
  for (const opt of [ui.optCam, ui.optMic, ui.optData]) {
    opt.addEventListener("change", () => { if (!ui.preview.hidden) startPreview(); });
  }
  ui.previewBtn.addEventListener("click", () => {
    if (ui.previewBtn.getAttribute("aria-pressed") === "true") stopPreview();
    else startPreview();
  });
  ui.camSelect.addEventListener("change", () => pickDevice(CAM_KEY, ui.camSelect));
  ui.micSelect.addEventListener("change", () => pickDevice(MIC_KEY, ui.micSelect));
  ui.form.addEventListener("submit", join);
  ui.leave.addEventListener("click", leave);
  ui.btnMic.addEventListener("click", () => { toggleMic(); });
  ui.btnCam.addEventListener("click", () => { toggleCam(); });
  ui.btnScreen.addEventListener("click", () => {
    if (app.screen) stopShare();
    else startShare();
  });
  ui.chatForm.addEventListener("submit", sendChat);
  ui.noticeClose.addEventListener("click", () => hideNotice());
  ui.rejoin.addEventListener("click", rejoin);
  ui.newRoom.addEventListener("click", () => {
    setPhase("lobby");
    ui.room.focus();
    ui.room.select();
  });
  // Esc dismisses the notice, else closes the chat sheet.
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || ev.defaultPrevented) return;
    if (!ui.notice.hidden) hideNotice();
    else if (ui.body.hasAttribute("data-chat-open")) { setChatOpen(false); ui.btnChat.focus(); }
  });
  ui.logToggle.addEventListener("click", () => {
    const open = ui.logToggle.getAttribute("aria-expanded") !== "true";
    ui.logToggle.setAttribute("aria-expanded", String(open));
    ui.eventLog.hidden = !open;
    ui.logPanel.toggleAttribute("data-collapsed", !open);
    if (open) ui.eventLog.scrollTop = ui.eventLog.scrollHeight;
  });
  ui.copyLink.addEventListener("click", async () => {
    if (await copyInvite()) notice("copied", "info", "Invite link copied.", 3000);
    else notice("copied", "info", `Invite link: ${inviteURL(app.room)}`, 8000);
  });
  ui.inviteCopy.addEventListener("click", () => { onInviteCopy(); });
  ui.inviteShare.addEventListener("click", () => { onInviteShare(); });
  ui.inviteRandom.addEventListener("click", newRandomRoom);
  ui.btnChat.addEventListener("click", () => setChatOpen(ui.btnChat.getAttribute("aria-expanded") !== "true"));
  ui.chatClose.addEventListener("click", () => { setChatOpen(false); ui.btnChat.focus(); });
  // Messages become seen when the chat comes into sight (a wider window, say).
  window.addEventListener("resize", () => { if (app.unread && chatVisible()) { app.unread = 0; renderUnread(); } });
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
  renderUnread();
  renderShareButton();
  (ui.room.value ? ui.join : ui.room).focus();
  log("Ready");
}

init();
