// @ts-check
// A data-only chat on signal.js: no camera, no microphone, no getUserMedia.
// Open /examples/data.html?room=NAME in two tabs: each member gets a data
// channel to every other member (RendezvousClient keeps one
// RTCPeerConnection per member), and what you type goes over them.
//
// Data only needs nothing special: without setLocalStream() the client
// sends no media. (Each connection still negotiates an audio and a video
// transceiver, so that a page may turn a camera on later without a new
// offer; here they carry nothing.)

import { RendezvousClient, SignalError } from "../signal.js";

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`#${id} is missing`);
  return el;
}

const ui = {
  joinForm: $("join-form", HTMLFormElement),
  room: $("room", HTMLInputElement),
  join: $("join", HTMLButtonElement),
  leave: $("leave", HTMLButtonElement),
  status: $("status", HTMLElement),
  peers: $("peers", HTMLUListElement),
  log: $("log", HTMLOListElement),
  chatForm: $("chat-form", HTMLFormElement),
  text: $("text", HTMLInputElement),
  send: $("send", HTMLButtonElement),
};

const params = new URLSearchParams(location.search);
const client = new RendezvousClient({
  // ?debug logs every protocol step to the console.
  debug: params.has("debug") ? (line) => console.debug(line) : undefined,
});
// window.client, for the console (and tests).
Object.assign(globalThis, { client });

/** Members whose data channel is open. */
const open = new Set();

/**
 * Adds a line to the chat log.
 * @param {string} text
 * @param {"mine"|"theirs"|"event"|"error"} kind
 */
function show(text, kind) {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = text; // never innerHTML: the text comes from other members
  ui.log.append(li);
  li.scrollIntoView({ block: "nearest" });
}

/** @param {string} id */
const short = (id) => id.slice(0, 6);

/** Brings the controls, the status line and the member list up to date. */
function render() {
  const st = client.state;
  document.body.dataset.state = st;
  ui.room.disabled = ui.join.disabled = st !== "idle";
  ui.leave.disabled = st !== "joined" && st !== "reconnecting";
  ui.text.disabled = ui.send.disabled = open.size === 0;
  ui.status.textContent =
    st === "joined" ? `In room “${client.room}” as ${short(client.id || "")}: ${open.size} of ${client.peers.size} channel(s) open.`
    : st === "reconnecting" ? "Reconnecting to the server… (chat still works)"
    : st === "idle" ? "Not in a room."
    : `${st}…`;
  ui.peers.replaceChildren(...[...client.peers.values()].map((p) => {
    const li = document.createElement("li");
    li.dataset.peer = p.id;
    li.textContent = `${short(p.id)}: ${p.state}${open.has(p.id) ? ", channel open" : ""}`;
    return li;
  }));
}

client.on("joined", ({ room, id, peers, rejoined }) => {
  show(`${rejoined ? "Joined again" : "Joined"} “${room}” as ${short(id)}; ${peers.length ? `${peers.length} member(s) here` : "waiting for someone"}.`, "event");
  render();
});
client.on("peerjoined", ({ id }) => { show(`${short(id)} joined.`, "event"); render(); });
client.on("peerleft", ({ id, reason }) => {
  open.delete(id);
  show(`${short(id)} left (${reason}).`, "event");
  render();
});
client.on("connectionstatechange", render);
client.on("channelopen", ({ id }) => { open.add(id); render(); });
client.on("channelclose", ({ id }) => { open.delete(id); render(); });
client.on("message", ({ id, data }) => {
  if (typeof data !== "string") {
    show(`${short(id)}: [${data.byteLength} bytes of binary data]`, "theirs");
    return;
  }
  // The main page (app.js) sends JSON objects with a kind: {kind: "chat",
  // text, ...} is a chat message; its other kinds are for itself.
  let text = data;
  if (data.startsWith("{")) {
    let m = null;
    try { m = JSON.parse(data); } catch { /* plain text that begins with { */ }
    if (m && typeof m.kind === "string") {
      if (m.kind !== "chat" || typeof m.text !== "string") return;
      text = m.text;
    }
  }
  show(`${short(id)}: ${text}`, "theirs");
});
client.on("reconnecting", ({ attempt }) => { if (attempt === 1) show("Connection to the server lost; reconnecting.", "error"); render(); });
client.on("resumed", () => { show("Reconnected.", "event"); render(); });
client.on("seatlost", () => { open.clear(); render(); });
client.on("removed", ({ reason }) => { open.clear(); show(`Removed from the room (${reason}).`, "error"); render(); });
client.on("disconnected", ({ code }) => { open.clear(); show(`Disconnected from the server (${code}).`, "error"); render(); });
client.on("left", () => { open.clear(); render(); });
client.on("error", ({ code, message }) => show(`${code}: ${message}`, "error"));

ui.joinForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const room = ui.room.value.trim();
  if (!room) return;
  const url = new URL(location.href);
  url.searchParams.set("room", room);
  history.replaceState(null, "", url);
  const joining = client.join(room);
  render();
  try {
    await joining;
  } catch (err) {
    // A SignalError: full, refused, unreachable, timeout, or the server's code.
    if (err instanceof SignalError && err.code === "full") show(`Room “${room}” is full.`, "error");
    else if (err instanceof SignalError) show(`Could not join: ${err.code}: ${err.message}`, "error");
    else throw err;
  }
  render();
});

ui.leave.addEventListener("click", () => {
  client.leave();
  show("Left the room.", "event");
  render();
});

ui.chatForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = ui.text.value;
  if (!text) return;
  const n = client.send(text); // strings go as they are, over every open channel
  show(n ? `me: ${text}` : `me: ${text} (not sent: no channel open)`, "mine");
  ui.text.value = "";
  ui.text.focus();
});

// Closing or reloading the tab leaves the room at once (the others see
// peer-left "left" instead of waiting for the server to notice).
addEventListener("pagehide", () => client.close());
// A page restored from the back/forward cache has a closed client: start over.
addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });

ui.room.value = params.get("room") || ui.room.value;
render();
