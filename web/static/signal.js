// signal.js: the Rendezvous browser client (protocol v1).
//
// A small ES module with no dependencies. It connects to a Rendezvous
// server's WebSocket endpoint (/ws), joins a room and keeps one
// RTCPeerConnection per other member of the room (a mesh), with a data
// channel to each. Import it from your own page:
//
//   import { RendezvousClient } from "https://your-server/signal.js";
//   const client = new RendezvousClient();
//   client.on("track", ({ id, stream }) => { videoFor(id).srcObject = stream; });
//   client.on("message", ({ id, data }) => console.log(id, "says", data));
//   await client.setLocalStream(await navigator.mediaDevices.getUserMedia({ video: true, audio: true }));
//   await client.join("demo");
//   client.send("hello everyone");
//
// Protocol v1 in short: the member that joins an existing room (it gets
// `joined`, with the ids of the members already there) sends an offer to
// each of them; members already in the room only answer. There is no glare
// by design. ICE candidates trickle through the server; candidates that
// arrive before the remote description are buffered. Signaling messages are
// handled one at a time, in order, through a promise queue.
//
// Media: every connection negotiates one audio and one video transceiver
// (sendrecv) and the data channel up front, whether or not a local stream is
// set, so setLocalStream() later only swaps tracks (replaceTrack) and never
// needs a new offer.

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** Label of the data channel the offering side creates. */
export const DATA_CHANNEL_LABEL = "rendezvous";

/**
 * An error of the client: a protocol error sent by the server (its `code`
 * is the server's code, e.g. "invalid-room" or "id-taken"), or one of the
 * client's own codes: "full" (the room is full), "unreachable" (the
 * WebSocket could not be opened), "disconnected" (it closed before the
 * answer), "timeout" (no answer in time) and "closed" (close() was called).
 */
export class SignalError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {object} [extra] more fields copied onto the error (ref, room, capacity)
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "SignalError";
    /** @type {string} */
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * @typedef {object} ClientOptions
 * @property {string} [url] WebSocket URL of the server; default: /ws on the
 *   origin this module was loaded from (ws: or wss: to match).
 * @property {RTCConfiguration} [rtcConfig] extra RTCPeerConnection settings
 *   (default: bundlePolicy "max-bundle"). Its iceServers, when given,
 *   replace the ones the server sends.
 * @property {number} [timeout=10000] milliseconds to wait for the WebSocket
 *   to open and for the answer to join.
 * @property {(line: string) => void} [debug] receives a line per protocol
 *   step, for troubleshooting.
 */

/**
 * @typedef {object} JoinOptions
 * @property {string} [id] peer id to ask for ([A-Za-z0-9_-]{1,64});
 *   default: the server picks one.
 * @property {number} [capacity] room capacity, when this join creates the room.
 * @property {string} [token] access token, passed to the server as is.
 */

/**
 * @typedef {object} JoinResult
 * @property {string} room room name
 * @property {string} id this client's peer id in the room
 * @property {number} capacity room capacity
 * @property {string[]} peers ids of the members already in the room (empty
 *   when this join created it)
 * @property {boolean} created true when this join created the room
 * @property {RTCIceServer[]} iceServers ICE servers the server handed out
 */

/**
 * @typedef {object} PeerStats
 * A summary of RTCPeerConnection.getStats(), as Peer.stats() returns it.
 * @property {number|null} rtt round-trip time of the selected candidate pair, ms
 * @property {number|null} inKbps media received, kbit/s, since the previous call
 * @property {number|null} outKbps media sent, kbit/s, since the previous call
 * @property {string|null} localType local candidate type of the selected pair: host, srflx, prflx or relay
 * @property {string|null} remoteType remote candidate type of the selected pair
 * @property {string|null} pairType "relay" when either end is relayed, else "srflx" when either is reflexive, else "host"
 * @property {number} framesDecoded video frames decoded (inbound-rtp)
 * @property {number|null} framesPerSecond decoded video frame rate
 * @property {number|null} frameWidth
 * @property {number|null} frameHeight
 * @property {number} bytesReceived media bytes received
 * @property {number} bytesSent media bytes sent
 */

/**
 * Events of RendezvousClient, by type, with the detail each carries. Listen
 * with client.on(type, fn) (fn gets the detail) or
 * client.addEventListener(type, ev => ev.detail).
 *
 * @typedef {object} ClientEvents
 * @property {JoinResult} joined this client is in a room (created or joined)
 * @property {{id: string}} peerjoined a member joined the room after us
 * @property {{id: string, reason: string}} peerleft a member left; reason is
 *   the server's (left, disconnected, timeout, slow, shutdown)
 * @property {{id: string, state: RTCPeerConnectionState}} connectionstatechange
 *   a peer connection's state changed (new, connecting, connected,
 *   disconnected, failed, closed)
 * @property {{id: string, track: MediaStreamTrack, stream: MediaStream}} track
 *   a remote track arrived; stream holds all of that member's tracks
 * @property {{id: string}} channelopen the data channel to a member opened
 * @property {{id: string}} channelclose the data channel to a member closed
 * @property {{id: string, data: string|ArrayBuffer}} message a data channel message
 * @property {{from: string, data: any}} relay a `message` relayed by the server
 * @property {{room: string, capacity: number}} full the room was full; join() rejects too
 * @property {{code: string, message: string, ref?: string, id?: string}} error
 *   a protocol error from the server, or a WebRTC failure with a peer (id)
 * @property {{message: string}} log a server log line (server run with -client-log)
 * @property {{code: number, reason: string}} disconnected the WebSocket
 *   closed without close() being called; the client left the room
 * @property {{}} left this client left the room (leave() or close())
 */

let nextRef = 1;

function defaultURL() {
  const base = new URL("./ws", import.meta.url);
  base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  return base.href;
}

/**
 * One other member of the room and the RTCPeerConnection to it. Read-only
 * for applications; RendezvousClient manages it.
 */
export class Peer {
  /**
   * @param {RendezvousClient} client
   * @param {string} id
   * @param {"offerer"|"answerer"} role
   */
  constructor(client, id, role) {
    /** @type {string} the member's peer id */
    this.id = id;
    /** @type {"offerer"|"answerer"} whether this side sent the offer */
    this.role = role;
    /** @type {MediaStream} the member's remote tracks */
    this.stream = new MediaStream();
    /** @type {RTCDataChannel|null} */
    this.channel = null;
    /** @type {RTCPeerConnection} */
    this.pc = new RTCPeerConnection(client._rtcConfig());
    /** @type {{audio?: RTCRtpTransceiver, video?: RTCRtpTransceiver}} */
    this.transceivers = {};
    /** @type {Array<RTCIceCandidateInit|null>} remote candidates waiting for the remote description */
    this.pendingCandidates = [];
    this._client = client;
    this._prev = null; // previous stats sample, for bitrates
    this._wire();
  }

  /** @returns {RTCPeerConnectionState} */
  get state() {
    return this.pc.connectionState;
  }

  _wire() {
    const c = this._client;
    const pc = this.pc;
    pc.onicecandidate = (ev) => {
      c._debug(`${this.id}: local candidate ${ev.candidate ? ev.candidate.candidate : "(end)"}`);
      c._send({ type: "candidate", to: this.id, candidate: ev.candidate ? ev.candidate.toJSON() : null });
    };
    pc.oniceconnectionstatechange = () => c._debug(`${this.id}: ice ${pc.iceConnectionState}`);
    pc.onsignalingstatechange = () => c._debug(`${this.id}: signaling ${pc.signalingState}`);
    pc.onconnectionstatechange = () => {
      c._debug(`${this.id}: connection ${pc.connectionState}`);
      c._emit("connectionstatechange", { id: this.id, state: pc.connectionState });
    };
    pc.ontrack = (ev) => {
      if (!this.stream.getTrackById(ev.track.id)) this.stream.addTrack(ev.track);
      c._emit("track", { id: this.id, track: ev.track, stream: this.stream });
    };
    pc.ondatachannel = (ev) => this._setChannel(ev.channel);
  }

  /** @param {RTCDataChannel} ch */
  _setChannel(ch) {
    const c = this._client;
    this.channel = ch;
    ch.binaryType = "arraybuffer";
    ch.onopen = () => c._emit("channelopen", { id: this.id });
    ch.onclose = () => c._emit("channelclose", { id: this.id });
    ch.onmessage = (ev) => c._emit("message", { id: this.id, data: ev.data });
  }

  /**
   * Puts the local stream's first audio and video tracks (or none) on this
   * connection's transceivers.
   * @param {MediaStream|null} stream
   */
  async _attach(stream) {
    for (const kind of ["audio", "video"]) {
      const t = this.transceivers[kind];
      if (!t || t.stopped) continue;
      const track = (stream && stream.getTracks().find((x) => x.kind === kind)) || null;
      if (t.sender.track !== track) await t.sender.replaceTrack(track);
    }
  }

  /** Adds remote candidates that arrived before the remote description. */
  async _flushCandidates() {
    const list = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const cand of list) await this._addCandidate(cand);
  }

  /** @param {RTCIceCandidateInit|null} cand */
  async _addCandidate(cand) {
    try {
      // null is end of candidates: addIceCandidate() with no argument.
      await (cand ? this.pc.addIceCandidate(cand) : this.pc.addIceCandidate());
    } catch (err) {
      // A candidate that does not fit (e.g. an unknown mid) is not fatal.
      this._client._debug(`${this.id}: addIceCandidate: ${err}`);
    }
  }

  /**
   * Sends data over the data channel, if it is open. Strings, Blobs,
   * ArrayBuffers and views are sent as they are; other values as JSON.
   * @param {any} data
   * @returns {boolean} whether it was sent
   */
  send(data) {
    const ch = this.channel;
    if (!ch || ch.readyState !== "open") return false;
    if (typeof data === "string" || data instanceof Blob || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      ch.send(data);
    } else {
      ch.send(JSON.stringify(data));
    }
    return true;
  }

  /**
   * Summarizes getStats() for this connection. Bitrates are computed from
   * the previous call, so call it periodically (e.g. every second).
   * @returns {Promise<PeerStats>}
   */
  async stats() {
    const report = await this.pc.getStats();
    /** @type {PeerStats} */
    const s = {
      rtt: null, inKbps: null, outKbps: null, localType: null, remoteType: null, pairType: null,
      framesDecoded: 0, framesPerSecond: null, frameWidth: null, frameHeight: null,
      bytesReceived: 0, bytesSent: 0,
    };
    let pair = null;
    report.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) pair = report.get(r.selectedCandidatePairId) || pair;
    });
    report.forEach((r) => {
      if (!pair && r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r;
      if (r.type === "inbound-rtp") {
        s.bytesReceived += r.bytesReceived || 0;
        if (r.kind === "video") {
          s.framesDecoded += r.framesDecoded || 0;
          if (r.framesPerSecond != null) s.framesPerSecond = r.framesPerSecond;
          if (r.frameWidth) { s.frameWidth = r.frameWidth; s.frameHeight = r.frameHeight; }
        }
      } else if (r.type === "outbound-rtp") {
        s.bytesSent += r.bytesSent || 0;
      }
    });
    if (pair) {
      if (pair.currentRoundTripTime != null) s.rtt = pair.currentRoundTripTime * 1000;
      const local = report.get(pair.localCandidateId);
      const remote = report.get(pair.remoteCandidateId);
      s.localType = (local && local.candidateType) || null;
      s.remoteType = (remote && remote.candidateType) || null;
      const types = [s.localType, s.remoteType];
      s.pairType = types.includes("relay") ? "relay"
        : types.includes("srflx") || types.includes("prflx") ? "srflx"
        : s.localType ? "host" : null;
    }
    const now = performance.now();
    if (this._prev) {
      const secs = (now - this._prev.at) / 1000;
      if (secs > 0) {
        s.inKbps = Math.max(0, (s.bytesReceived - this._prev.in) * 8 / 1000 / secs);
        s.outKbps = Math.max(0, (s.bytesSent - this._prev.out) * 8 / 1000 / secs);
      }
    }
    this._prev = { at: now, in: s.bytesReceived, out: s.bytesSent };
    return s;
  }

  close() {
    const pc = this.pc;
    pc.onicecandidate = pc.onconnectionstatechange = pc.ontrack = pc.ondatachannel = null;
    pc.oniceconnectionstatechange = pc.onsignalingstatechange = null;
    if (this.channel) this.channel.onclose = this.channel.onmessage = this.channel.onopen = null;
    pc.close();
    for (const t of this.stream.getTracks()) t.stop();
  }
}

/**
 * A connection to a Rendezvous server and membership in one room at a time.
 *
 * States (client.state): "idle" (not in a room), "connecting" (opening the
 * WebSocket), "joining" (join sent), "joined", "closed" (after close()).
 *
 * @fires ClientEvents
 */
export class RendezvousClient extends EventTarget {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    super();
    /** @type {string} WebSocket URL */
    this.url = options.url || defaultURL();
    this.options = options;
    /** @type {"idle"|"connecting"|"joining"|"joined"|"closed"} */
    this.state = "idle";
    /** @type {string|null} current room */
    this.room = null;
    /** @type {string|null} this client's peer id */
    this.id = null;
    /** @type {number|null} */
    this.capacity = null;
    /** @type {RTCIceServer[]} ICE servers from the server's created/joined */
    this.iceServers = [];
    /**
     * Token to resume this membership after a dropped connection, when the
     * server hands one out in created/joined (`resume`, planned for a later
     * protocol revision); null otherwise.
     * @type {string|null}
     */
    this.resumeToken = null;
    /**
     * Frames received on the current WebSocket, for a later resume (the
     * server asks how many arrived before the connection dropped).
     * @type {number}
     */
    this.framesReceived = 0;
    /** @type {Map<string, Peer>} the other members, by id */
    this.peers = new Map();
    /** @type {MediaStream|null} */
    this.localStream = null;

    /** @type {WebSocket|null} */
    this._ws = null;
    this._opening = null; // Promise<WebSocket> while connecting
    this._queue = Promise.resolve(); // signaling messages, one at a time
    this._pendingJoin = null; // {ref, resolve, reject, timer}
    this._closing = false;
    this._generation = 0; // bumped by _reset: queued messages of an old membership are dropped
  }

  /**
   * Adds a listener that receives the event's detail; returns a function
   * that removes it.
   * @param {keyof ClientEvents} type
   * @param {(detail: any) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    const h = (ev) => fn(ev.detail);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  /**
   * Connects (if need be) and joins room. Resolves when the server answers
   * created or joined; the client then offers to each member already there.
   * Rejects with a SignalError: code "full" when the room is full, the
   * server's code on a protocol error, or "unreachable", "disconnected",
   * "timeout".
   * @param {string} room
   * @param {JoinOptions} [opts]
   * @returns {Promise<JoinResult>}
   */
  async join(room, opts = {}) {
    if (this.state === "closed") throw new SignalError("closed", "This client is closed; make a new one.");
    if (this.state === "joined" || this.state === "joining") {
      throw new SignalError("already-joined", `Already in room "${this.room}"; leave first.`);
    }
    this.state = "connecting";
    let ws;
    try {
      ws = await this._connect();
    } catch (err) {
      if (this.state === "connecting") this.state = "idle";
      throw err;
    }
    if (this.state !== "connecting") {
      throw new SignalError("closed", "The join was cancelled by leave() or close().");
    }
    this.state = "joining";
    const ref = `j${nextRef++}`;
    const msg = { type: "join", room, ref };
    if (opts.id) msg.id = opts.id;
    if (opts.capacity) msg.capacity = opts.capacity;
    if (opts.token) msg.token = opts.token;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Give up on this connection: closing it also undoes a join the
        // server may yet answer.
        this._failJoin(new SignalError("timeout", "The server did not answer the join in time."));
        this._dropSocket();
        this._reset();
        this.state = "idle";
      }, this._timeout());
      this._pendingJoin = { ref, resolve, reject, timer };
      this._sendOn(ws, msg);
    });
  }

  /**
   * Leaves the room: sends leave and closes every peer connection. The
   * WebSocket stays open for another join. The local stream is kept.
   */
  leave() {
    const wasIn = this.state === "joined" || this.state === "joining";
    if (wasIn) this._send({ type: "leave" });
    this._failJoin(new SignalError("closed", "Left before the join was answered."));
    this._reset();
    if (this.state !== "closed") this.state = "idle";
    if (wasIn) this._emit("left", {});
  }

  /**
   * Leaves the room and closes the WebSocket. The client cannot be used
   * again. The local stream is not stopped (it is the caller's).
   */
  close() {
    if (this.state === "closed") return;
    const wasIn = this.state === "joined" || this.state === "joining";
    if (wasIn) this._send({ type: "leave" });
    this._failJoin(new SignalError("closed", "The client was closed."));
    this._reset();
    this.state = "closed";
    this._closing = true;
    this._dropSocket();
    if (wasIn) this._emit("left", {});
  }

  /**
   * Sends data over the data channel to one member (to) or to every member
   * whose channel is open. Strings and binary are sent as they are; other
   * values as JSON text.
   * @param {any} data
   * @param {string} [to] a member's id; omitted: everyone
   * @returns {number} how many members it was sent to
   */
  send(data, to) {
    if (to !== undefined) {
      const p = this.peers.get(to);
      return p && p.send(data) ? 1 : 0;
    }
    let n = 0;
    for (const p of this.peers.values()) if (p.send(data)) n++;
    return n;
  }

  /**
   * Sends data through the server (a protocol `message`), to one member or
   * to all. Useful before the data channel is open. Members get a `relay`
   * event.
   * @param {any} data any JSON value
   * @param {string} [to]
   */
  relay(data, to) {
    const msg = { type: "message", data };
    if (to) msg.to = to;
    this._send(msg);
  }

  /**
   * Sets the stream to send (its first audio and first video track), or
   * null to send nothing. Can be called at any time: before joining, or
   * during a call to turn the camera or microphone on and off (tracks are
   * replaced without renegotiation).
   * @param {MediaStream|null} stream
   * @returns {Promise<void>}
   */
  async setLocalStream(stream) {
    this.localStream = stream;
    await Promise.all([...this.peers.values()].map((p) => p._attach(stream).catch((err) => {
      this._emit("error", { code: "media", message: String(err), id: p.id });
    })));
  }

  /**
   * Alias of setLocalStream, for callers that think in terms of adding one.
   * @param {MediaStream} stream
   * @returns {Promise<void>}
   */
  addLocalStream(stream) {
    return this.setLocalStream(stream);
  }

  /**
   * Summarized stats of the connection to one member.
   * @param {string} id
   * @returns {Promise<PeerStats|null>}
   */
  async stats(id) {
    const p = this.peers.get(id);
    return p ? p.stats() : null;
  }

  // ---- internals ----

  _timeout() {
    return this.options.timeout || 10000;
  }

  _debug(line) {
    if (this.options.debug) this.options.debug(line);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _rtcConfig() {
    // max-bundle: one transport for audio, video and data, so one set of
    // candidates to gather and trickle instead of one per media section.
    const cfg = { bundlePolicy: "max-bundle", ...(this.options.rtcConfig || {}) };
    if (!cfg.iceServers) cfg.iceServers = this.iceServers;
    return cfg;
  }

  /** Opens the WebSocket, or returns the open one. */
  _connect() {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) return Promise.resolve(this._ws);
    if (this._opening) return this._opening;
    this._closing = false;
    this._opening = new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        reject(new SignalError("unreachable", `Bad server URL ${this.url}: ${err.message}`));
        return;
      }
      let opened = false;
      const timer = setTimeout(() => {
        if (!opened) {
          ws.close();
          reject(new SignalError("unreachable", `The server at ${this.url} did not answer in time.`));
        }
      }, this._timeout());
      ws.onopen = () => {
        opened = true;
        clearTimeout(timer);
        this.framesReceived = 0;
        if (this._closing) {
          ws.close(1000, "bye");
          reject(new SignalError("closed", "The client was closed."));
          return;
        }
        this._ws = ws;
        this._debug(`websocket open ${this.url}`);
        resolve(ws);
      };
      ws.onmessage = (ev) => this._onFrame(ev.data);
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (!opened) {
          reject(new SignalError("unreachable", `Cannot reach the server at ${this.url}.`));
          return;
        }
        this._onSocketClose(ws, ev);
      };
    });
    const clear = () => { this._opening = null; };
    this._opening.then(clear, clear);
    return this._opening;
  }

  /**
   * The WebSocket closed. If close() was not called, the membership is
   * lost: the server has told the others we left.
   *
   * This is where automatic resume belongs: instead of resetting, reconnect
   * with backoff and send join with {resume: this.resumeToken}, keeping
   * this.peers (their RTCPeerConnections need no signaling while media
   * flows).
   */
  _onSocketClose(ws, ev) {
    if (ws !== this._ws) return;
    this._ws = null;
    this._debug(`websocket closed ${ev.code} ${ev.reason}`);
    if (this._closing || this.state === "closed") return;
    const wasIn = this.state === "joined" || this.state === "joining";
    this._failJoin(new SignalError("disconnected", `The connection to the server closed (${ev.code}${ev.reason ? " " + ev.reason : ""}).`));
    this._reset();
    this.state = "idle";
    this._emit("disconnected", { code: ev.code, reason: ev.reason, wasJoined: wasIn });
  }

  /** Closes the WebSocket without treating it as an unexpected close. */
  _dropSocket() {
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "bye");
  }

  _reset() {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    this.room = this.id = this.capacity = null;
    this.resumeToken = null;
    // Drop signaling messages still queued for the old membership.
    this._generation++;
  }

  _failJoin(err) {
    const pj = this._pendingJoin;
    if (!pj) return;
    this._pendingJoin = null;
    clearTimeout(pj.timer);
    pj.reject(err);
  }

  _send(msg) {
    if (this._ws) this._sendOn(this._ws, msg);
  }

  _sendOn(ws, msg) {
    if (ws.readyState !== WebSocket.OPEN) return;
    this._debug(`→ ${msg.type}${msg.to ? " to " + msg.to : ""}`);
    ws.send(JSON.stringify(msg));
  }

  _onFrame(text) {
    this.framesReceived++;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this._emit("error", { code: "bad-frame", message: "The server sent a frame that is not JSON." });
      return;
    }
    if (!msg || typeof msg.type !== "string") return;
    this._debug(`← ${msg.type}${msg.from ? " from " + msg.from : ""}`);
    const gen = this._generation;
    this._queue = this._queue
      .then(() => (gen === this._generation ? this._handle(msg) : undefined))
      .catch((err) => {
        this._emit("error", { code: "webrtc", message: `Handling ${msg.type}${msg.from ? " from " + msg.from : ""}: ${err}`, id: msg.from });
      });
  }

  /** Handles one server message; the queue runs these one at a time. */
  async _handle(msg) {
    switch (msg.type) {
      case "created":
      case "joined":
        return this._onJoined(msg);
      case "full": {
        if (!this._isJoinAnswer(msg)) return;
        const err = new SignalError("full", `Room "${msg.room}" is full (capacity ${msg.capacity}).`, { room: msg.room, capacity: msg.capacity });
        if (this.state === "joining") this.state = "idle";
        this._failJoin(err);
        this._emit("full", { room: msg.room, capacity: msg.capacity });
        return;
      }
      case "error": {
        const pj = this._pendingJoin;
        if (pj && msg.ref === pj.ref) {
          this.state = "idle";
          this._failJoin(new SignalError(msg.code, msg.message, { ref: msg.ref }));
        }
        this._emit("error", { code: msg.code, message: msg.message, ref: msg.ref });
        return;
      }
      case "log":
        this._emit("log", { message: msg.message });
        return;
      case "peer-joined":
        if (this.state !== "joined" || this.peers.has(msg.id)) return;
        // The newcomer offers; we wait for its offer.
        this._addPeer(msg.id, "answerer");
        this._emit("peerjoined", { id: msg.id });
        return;
      case "peer-left": {
        const p = this.peers.get(msg.id);
        if (p) {
          p.close();
          this.peers.delete(msg.id);
        }
        this._emit("peerleft", { id: msg.id, reason: msg.reason });
        return;
      }
      case "offer":
        return this._onOffer(msg);
      case "answer":
        return this._onAnswer(msg);
      case "candidate":
        return this._onCandidate(msg);
      case "message":
        this._emit("relay", { from: msg.from, data: msg.data });
        return;
    }
  }

  /** Whether msg answers the join in flight (it echoes the join's ref). */
  _isJoinAnswer(msg) {
    const pj = this._pendingJoin;
    return !!pj && this.state === "joining" && (!msg.ref || msg.ref === pj.ref);
  }

  async _onJoined(msg) {
    // An answer to a join that leave() or close() abandoned: the leave that
    // followed it takes us out of the room again.
    if (!this._isJoinAnswer(msg)) return;
    this.room = msg.room;
    this.id = msg.id;
    this.capacity = msg.capacity;
    this.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
    this.resumeToken = msg.resume || null;
    this.state = "joined";
    const peers = Array.isArray(msg.peers) ? msg.peers : [];
    /** @type {JoinResult} */
    const result = {
      room: msg.room, id: msg.id, capacity: msg.capacity, peers,
      created: msg.type === "created", iceServers: this.iceServers,
    };
    const pj = this._pendingJoin;
    this._pendingJoin = null;
    if (pj) clearTimeout(pj.timer);
    this._emit("joined", result);
    if (pj) pj.resolve(result);
    for (const id of peers) {
      try {
        await this._offer(id);
      } catch (err) {
        this._emit("error", { code: "webrtc", message: `Offer to ${id}: ${err}`, id });
      }
    }
  }

  /** @returns {Peer} */
  _addPeer(id, role) {
    const p = new Peer(this, id, role);
    this.peers.set(id, p);
    return p;
  }

  /** The newcomer's side: create the connection and send an offer. */
  async _offer(id) {
    if (this.peers.has(id)) this.peers.get(id).close();
    const p = this._addPeer(id, "offerer");
    const pc = p.pc;
    p.transceivers.audio = pc.addTransceiver("audio", { direction: "sendrecv" });
    p.transceivers.video = pc.addTransceiver("video", { direction: "sendrecv" });
    p._setChannel(pc.createDataChannel(DATA_CHANNEL_LABEL));
    await p._attach(this.localStream);
    await pc.setLocalDescription(await pc.createOffer());
    this._send({ type: "offer", to: id, sdp: pc.localDescription.sdp });
  }

  /** A member already in the room's side: answer the newcomer's offer. */
  async _onOffer(msg) {
    let p = this.peers.get(msg.from);
    if (!p || p.role !== "answerer" || p.pc.signalingState === "closed") {
      if (p) p.close();
      p = this._addPeer(msg.from, "answerer");
    }
    const pc = p.pc;
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    // Send on the first audio and video transceivers the offer created.
    for (const t of pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      if (p.transceivers[kind] || t.stopped) continue;
      p.transceivers[kind] = t;
      t.direction = "sendrecv";
    }
    await p._attach(this.localStream);
    await p._flushCandidates();
    await pc.setLocalDescription(await pc.createAnswer());
    this._send({ type: "answer", to: msg.from, sdp: pc.localDescription.sdp });
  }

  async _onAnswer(msg) {
    const p = this.peers.get(msg.from);
    if (!p || p.pc.signalingState !== "have-local-offer") {
      this._debug(`unexpected answer from ${msg.from}`);
      return;
    }
    await p.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    await p._flushCandidates();
  }

  async _onCandidate(msg) {
    let p = this.peers.get(msg.from);
    if (!p) {
      // A candidate before the offer (not expected, since the server keeps
      // each sender's order): keep it for the offer to come.
      if (this.state !== "joined") return;
      p = this._addPeer(msg.from, "answerer");
    }
    const cand = msg.candidate === undefined ? null : msg.candidate;
    if (!p.pc.remoteDescription) {
      p.pendingCandidates.push(cand);
      return;
    }
    await p._addCandidate(cand);
  }
}
