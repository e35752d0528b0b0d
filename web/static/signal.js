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
//
// Resume: when the WebSocket drops (no close frame: a network blip, a
// proxy restart), the client reconnects with backoff and takes its seat
// back with the `resume` token from created/joined and the number of frames
// it received on the old socket; the server re-sends what it missed. The
// peer connections, and any negotiation under way, are kept; what the
// client sends meanwhile (answers, candidates, relays) waits in an outbox
// and goes out in order after the resume. When the seat cannot be taken
// back (resume-failed, or the resume window passed), every peer connection
// is closed and the client joins the room afresh, as a newcomer. Closes
// and timers go through the same queue as server messages, so every state
// change happens in order with them.

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** Label of the data channel the offering side creates. */
export const DATA_CHANNEL_LABEL = "rendezvous";

/**
 * An error of the client: a protocol error sent by the server (its `code`
 * is the server's code, e.g. "invalid-room" or "id-taken"), or one of the
 * client's own codes: "full" (the room is full), "unreachable" (the
 * WebSocket could not be opened and the server does not answer),
 * "refused" (the WebSocket could not be opened but the server answers: it
 * refused the connection), "disconnected" (it closed before the answer),
 * "timeout" (no answer in time) and "closed" (close() was called).
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
 * @property {boolean} [reconnect=true] after an unexpected close, reconnect
 *   and resume the seat (or join afresh); false: leave the room and emit
 *   disconnected, as a close does.
 * @property {number} [resumeWindow=15000] milliseconds after a drop during
 *   which the client tries to take its seat back; keep it at most the
 *   server's -resume-window (15 s by default). After it the seat counts as
 *   lost: the peer connections are closed and the next attempt joins afresh.
 * @property {number} [reconnectTimeout=60000] milliseconds after a drop
 *   after which the client stops trying, leaves the room and emits
 *   disconnected.
 * @property {(line: string) => void} [debug] receives a line per protocol
 *   step, for troubleshooting.
 */

/**
 * @typedef {object} JoinOptions
 * @property {string} [id] peer id to ask for ([A-Za-z0-9_-]{1,64});
 *   default: the server picks one.
 * @property {number} [capacity] room capacity, when this join creates the room.
 * @property {string} [token] join token (servers run with -auth-secret),
 *   passed to the server as is. It is kept: a join afresh after a lost seat
 *   sends it again.
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
 * @property {boolean} rejoined true when the client joined afresh by itself
 *   after losing its seat (see the seatlost event), false for join()
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
 * A blip that the client rides out gives `reconnecting` (one or more)
 * then `resumed`. A blip that costs the seat gives `reconnecting`,
 * `peerleft` (reason "seat-lost") for every member, `seatlost`, more
 * `reconnecting` maybe, then `joined` with rejoined: true. Giving up gives
 * `disconnected` with wasJoined: true.
 *
 * @typedef {object} ClientEvents
 * @property {JoinResult} joined this client is in a room: join() succeeded,
 *   or the client joined afresh after losing its seat (rejoined: true)
 * @property {{id: string}} peerjoined a member joined the room after us
 * @property {{id: string, reason: string}} peerleft a member left; reason is
 *   the server's (left, disconnected, timeout, slow, shutdown, kicked,
 *   room-closed), or "seat-lost" when this client lost its own seat and
 *   closed the connection to the member itself
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
 *   a protocol error from the server, or a WebRTC failure with a peer (id).
 *   Refusals of the client's own reconnection joins are not reported here
 *   (see seatlost and disconnected).
 * @property {{message: string}} log a server log line (server run with -client-log)
 * @property {{attempt: number, delay: number, code: number, reason: string, resume: boolean}} reconnecting
 *   the WebSocket dropped while in a room (code and reason of its close,
 *   1006 when it just failed) and the client will try again in delay ms:
 *   attempt 1 right after the drop, then one per failed attempt. resume:
 *   whether it will ask for its seat back (false once the seat is lost).
 *   The state is "reconnecting"; the peer connections and data channels
 *   stay up; relay() and signaling wait for the connection.
 * @property {{room: string, id: string, peers: string[], attempts: number, after: number, sent: number}} resumed
 *   the seat is back (same id, same peer connections) after attempts
 *   attempts and after ms; sent messages queued meanwhile went out. The
 *   server then re-sends what the client missed, which is handled as usual.
 * @property {{reason: string}} seatlost the seat could not be taken back
 *   (reason "resume-failed": the server refused it; "window": the resume
 *   window passed; "no-token": the server gave none; "new-seat": the server
 *   seated the client anew). Every peer connection was closed (each with a
 *   peerleft "seat-lost" before this event); the client keeps reconnecting
 *   and joins afresh, as a newcomer, which gives joined (rejoined: true).
 * @property {{reason: "kicked"|"room-closed", message: string, room: string}} removed
 *   an operator removed this client from the room (admin API): it is in no
 *   room and does not reconnect. After "kicked" the server closes the
 *   WebSocket; after "room-closed" it stays open for another join.
 * @property {{code: number, reason: string, wasJoined: boolean, error?: {code: string, message: string}}} disconnected
 *   the client is out of the room and not reconnecting: the WebSocket
 *   closed in a way that cannot be resumed (a close frame from the server:
 *   kicked or rate-limited 1008, replaced 4001, too large 1009, ...), or
 *   reconnecting gave up (reconnectTimeout passed, or the server refused
 *   the join afresh: error). Not after close().
 * @property {{}} left this client left the room (leave() or close())
 */

/**
 * Close codes after which the client does not reconnect: the server ended
 * the session on purpose (1008 kicked, unauthorized, rate or slow; 1009
 * too large; 4001 replaced by another connection), or a client-side error.
 */
const FINAL_CLOSE_CODES = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);

/**
 * Whether a WebSocket that closed with code may be resumed: a drop (1006,
 * no close frame), or a server going away or restarting (1001, 1011-1014).
 * @param {number} code
 * @returns {boolean}
 */
export function isResumableClose(code) {
  return !FINAL_CLOSE_CODES.has(code) && !(code >= 4000 && code <= 4999);
}

/** Reconnection backoff: the first attempt waits up to RECONNECT_MIN_DELAY,
 * then the delay doubles up to RECONNECT_MAX_DELAY; each wait is drawn from
 * [delay/2, delay]. */
const RECONNECT_MIN_DELAY = 100;
const RECONNECT_MAX_DELAY = 2000;
/** Bounds one reconnection attempt: opening the WebSocket, and the answer to its join. */
const ATTEMPT_TIMEOUT = 5000;
/** Messages kept while reconnecting, at most. */
const OUTBOX_LIMIT = 1000;
/** ref of every leave, so that a "not-joined" answer to it can be ignored. */
const LEAVE_REF = "leave";
/** Bounds the /healthz request that tells a refused WebSocket from an unreachable server. */
const PROBE_TIMEOUT = 3000;
/** The errors of WebSockets that closed before they opened: the server may have refused them. */
const closedBeforeOpen = new WeakSet();

let nextRef = 1;

function defaultURL() {
  const base = new URL("./ws", import.meta.url);
  base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  return base.href;
}

/**
 * Whether the server of the WebSocket URL wsURL answers plain HTTP: a GET
 * of healthz next to the endpoint (ws://host/ws: http://host/healthz)
 * that gets any response within timeout ms. The request is "no-cors": from
 * another origin the response is opaque, and that it came is enough.
 * @param {string} wsURL
 * @param {number} timeout ms
 * @returns {Promise<boolean>}
 */
async function serverAnswers(wsURL, timeout) {
  let url;
  try {
    url = new URL("healthz", wsURL);
    url.protocol = url.protocol === "wss:" || url.protocol === "https:" ? "https:" : "http:";
  } catch {
    return false;
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeout);
  try {
    await fetch(url, { mode: "no-cors", cache: "no-store", credentials: "omit", signal: abort.signal });
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
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
 * WebSocket), "joining" (join sent), "joined", "reconnecting" (in a room,
 * the WebSocket dropped, getting it back), "closed" (after close()).
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
    /** @type {"idle"|"connecting"|"joining"|"joined"|"reconnecting"|"closed"} */
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
     * The server's `resume` token from the latest created/joined: it takes
     * the seat back after a dropped connection. null when not in a room.
     * @type {string|null}
     */
    this.resumeToken = null;
    /**
     * Frames received on the current WebSocket, every one since it opened:
     * the server numbers the frames it writes on a connection from its
     * start, and a resume tells it how many arrived.
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
    this._queue = Promise.resolve(); // server messages and state changes, one at a time
    this._pendingJoin = null; // {ref, resolve, reject, timer}
    this._joinOpts = {}; // options of the latest join(), for a join afresh
    this._closing = false;
    this._generation = 0; // bumped by _reset: queued messages of an old membership are dropped
    /** @type {object[]} messages to the server waiting for the connection */
    this._outbox = [];
    this._rc = null; // reconnection under way (see _startReconnect)
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
   * server's code on a protocol error (e.g. "unauthorized": the join token
   * is missing or not valid), "refused" when the server answers but
   * refused the WebSocket (this page's origin is not allowed, or the
   * server is at a connection limit), or "unreachable", "disconnected",
   * "timeout".
   * @param {string} room
   * @param {JoinOptions} [opts]
   * @returns {Promise<JoinResult>}
   */
  async join(room, opts = {}) {
    if (this.state === "closed") throw new SignalError("closed", "This client is closed; make a new one.");
    if (this.state === "joined" || this.state === "joining" || this.state === "reconnecting") {
      throw new SignalError("already-joined", `Already in room "${this.room}"; leave first.`);
    }
    this.state = "connecting";
    let ws;
    try {
      ws = await this._connect();
    } catch (err) {
      if (this.state === "connecting") this.state = "idle";
      throw closedBeforeOpen.has(err) ? await this._whyUnreachable(err) : err;
    }
    if (this.state !== "connecting") {
      throw new SignalError("closed", "The join was cancelled by leave() or close().");
    }
    this.state = "joining";
    this._joinOpts = { id: opts.id, capacity: opts.capacity, token: opts.token };
    const ref = `j${nextRef++}`;
    const msg = this._joinMsg(ref, room);
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
   * Leaves the room: sends leave, so that the server frees the seat at
   * once and the members see peer-left "left", and closes every peer
   * connection. The WebSocket stays open for another join. The local
   * stream is kept. While reconnecting, the seat is released on a separate
   * connection (best effort; else the server frees it when its resume
   * window ends).
   */
  leave() {
    const wasIn = this._leaveSeat();
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
    const wasIn = this._leaveSeat();
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
   * values as JSON text. Data channels do not need the server, so this
   * works while reconnecting too.
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
   * event. While reconnecting it waits, in order, for the connection.
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

  /** A join of room (default: this.room) with the options of the latest join(). */
  _joinMsg(ref, room = this.room) {
    const o = this._joinOpts;
    const msg = { type: "join", room, ref };
    if (o.id) msg.id = o.id;
    if (o.capacity) msg.capacity = o.capacity;
    if (o.token) msg.token = o.token;
    return msg;
  }

  /**
   * Runs fn in the queue, after the server messages received so far.
   * Closes and timers use it, so that state changes happen in order with
   * the messages.
   */
  _task(fn) {
    this._queue = this._queue.then(fn).catch((err) => {
      this._emit("error", { code: "internal", message: String(err && err.stack || err) });
    });
  }

  /**
   * The WebSocket closed before it opened (err), and the browser does not
   * say why: a refusal (HTTP 403 for an origin the server does not allow,
   * 503 or 429 at a connection limit) looks the same as a server out of
   * reach. When the server answers /healthz it is up, and the error says
   * it refused the connection (code "refused"); else err stands.
   * @param {SignalError} err
   * @returns {Promise<SignalError>}
   */
  async _whyUnreachable(err) {
    if (!(await serverAnswers(this.url, PROBE_TIMEOUT))) return err;
    const origin = globalThis.location ? globalThis.location.origin : "this page's origin";
    return new SignalError("refused", `The server at ${this.url} is up but refused the connection: ` +
      `it does not allow connections from ${origin} (its -origins setting), or it has too many connections.`);
  }

  /**
   * Opens the WebSocket, or returns the open one.
   * @param {number} [timeout] for the opening, ms
   */
  _connect(timeout = this._timeout()) {
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
      }, timeout);
      ws.onopen = () => {
        opened = true;
        clearTimeout(timer);
        if (this._closing) {
          ws.close(1000, "bye");
          reject(new SignalError("closed", "The client was closed."));
          return;
        }
        this.framesReceived = 0;
        this._ws = ws;
        this._debug(`websocket open ${this.url}`);
        resolve(ws);
      };
      ws.onmessage = (ev) => {
        if (ws === this._ws) this._onFrame(ev.data);
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (!opened) {
          const err = new SignalError("unreachable", `Cannot reach the server at ${this.url}.`);
          closedBeforeOpen.add(err);
          reject(err);
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
   * The WebSocket closed, and not because this client closed it. What that
   * means is decided in the queue, after the frames that came before it.
   */
  _onSocketClose(ws, ev) {
    if (ws !== this._ws) return;
    this._ws = null;
    const received = this.framesReceived;
    const close = { code: ev.code, reason: ev.reason };
    this._debug(`websocket closed ${ev.code} ${ev.reason} after ${received} frames`);
    if (this._closing || this.state === "closed") return;
    this._task(() => this._closed(close, received));
  }

  /**
   * Handles the close of the WebSocket (in the queue). In a room, a drop
   * starts a reconnection; a close that cannot be resumed takes the client
   * out of the room.
   * @param {{code: number, reason: string}} close
   * @param {number} received frames received on the socket
   */
  _closed(close, received) {
    if (this._closing || this.state === "closed") return;
    if (this.state === "reconnecting") {
      this._attemptEnded(this._rc, close, `closed (${close.code})`);
      return;
    }
    if (this.state === "joined" && this.options.reconnect !== false && isResumableClose(close.code)) {
      this._startReconnect(close, received);
      return;
    }
    const wasIn = this.state === "joined" || this.state === "joining";
    this._failJoin(new SignalError("disconnected", `The connection to the server closed (${close.code}${close.reason ? " " + close.reason : ""}).`));
    this._reset();
    this.state = "idle";
    this._emit("disconnected", { code: close.code, reason: close.reason, wasJoined: wasIn });
  }

  /** Closes the WebSocket without treating it as an unexpected close. */
  _dropSocket() {
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "bye");
  }

  _reset() {
    this._stopReconnect();
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    this.room = this.id = this.capacity = null;
    this.resumeToken = null;
    this._outbox = [];
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

  /**
   * Tells the server this client leaves its seat, if it has one: a leave
   * on the open WebSocket, or, when the WebSocket is gone, a resume then
   * leave on a separate one. Returns whether the client was in a room.
   */
  _leaveSeat() {
    const st = this.state;
    if (st !== "joined" && st !== "joining" && st !== "reconnecting") return false;
    const ws = this._ws;
    const r = this._rc;
    if (r && ws && ws.readyState === WebSocket.OPEN && r.phase === "joining") {
      // The attempt's join is out: wait for its answer on that socket,
      // then leave; the socket is no longer this client's.
      this._ws = null;
      this._releaseOn(ws, r.ref);
    } else if (st !== "reconnecting" && ws && ws.readyState === WebSocket.OPEN) {
      this._sendOn(ws, { type: "leave", ref: LEAVE_REF });
    } else if (this.resumeToken && this.room && !(r && r.seatLost)) {
      this._releaseSeat(this.room, this.resumeToken);
    }
    return true;
  }

  /**
   * Frees a seat this client no longer has a WebSocket for: resumes it on
   * a new WebSocket, leaves, and closes. Best effort: one try.
   */
  _releaseSeat(room, token) {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      return;
    }
    const ref = `r${nextRef++}`;
    this._debug(`releasing the seat in ${room}`);
    ws.onopen = () => ws.send(JSON.stringify({ type: "join", room, resume: token, ref }));
    this._releaseOn(ws, ref);
  }

  /**
   * Makes ws, whose join with ref is (or will be) out, leave the seat that
   * join takes, then close.
   */
  _releaseOn(ws, ref) {
    const finish = () => {
      clearTimeout(timer);
      ws.onmessage = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000, "bye");
    };
    const timer = setTimeout(finish, ATTEMPT_TIMEOUT);
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (!m || m.ref !== ref) return;
      if (m.type === "joined" || m.type === "created") ws.send(JSON.stringify({ type: "leave", ref: LEAVE_REF }));
      finish();
    };
    ws.onclose = () => clearTimeout(timer);
    ws.onerror = () => {};
  }

  /**
   * Sends msg to the server now, or, while the connection is down in a
   * room, queues it for after the resume.
   */
  _send(msg) {
    const ws = this._ws;
    if (this.state !== "reconnecting" && ws && ws.readyState === WebSocket.OPEN) {
      this._sendOn(ws, msg);
      return;
    }
    if (this.state !== "reconnecting" && this.state !== "joined") return;
    if (this._outbox.length >= OUTBOX_LIMIT) {
      this._emit("error", { code: "outbox-full", message: `Too many messages (${OUTBOX_LIMIT}) wait for the connection; this ${msg.type} was dropped.` });
      return;
    }
    this._debug(`queued ${msg.type}${msg.to ? " to " + msg.to : ""} until the connection is back`);
    this._outbox.push(msg);
  }

  _sendOn(ws, msg) {
    if (ws.readyState !== WebSocket.OPEN) return;
    this._debug(`→ ${msg.type}${msg.to ? " to " + msg.to : ""}${msg.resume ? ` (resume, received ${msg.received})` : ""}`);
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
    this._debug(`← ${msg.type}${msg.from ? " from " + msg.from : ""}${msg.resumed ? " (resumed)" : ""}`);
    const gen = this._generation;
    this._queue = this._queue
      .then(() => (gen === this._generation ? this._handle(msg) : undefined))
      .catch((err) => {
        this._emit("error", { code: "webrtc", message: `Handling ${msg.type}${msg.from ? " from " + msg.from : ""}: ${err}`, id: msg.from });
      });
  }

  /** Whether msg answers the join of the reconnection under way. */
  _isAttemptAnswer(msg) {
    return !!this._rc && !!msg.ref && msg.ref === this._rc.ref;
  }

  /** Handles one server message; the queue runs these one at a time. */
  async _handle(msg) {
    switch (msg.type) {
      case "created":
      case "joined":
        if (this._isAttemptAnswer(msg)) return this._onAttemptJoined(msg);
        // An answer to a join that leave() or close() abandoned: the leave
        // that followed it takes us out of the room again.
        if (!this._isJoinAnswer(msg)) return;
        return this._takeSeat(msg, false);
      case "full": {
        if (this._isAttemptAnswer(msg)) {
          // Most likely our own old seat, still held: try again later.
          this._dropSocket();
          return this._attemptEnded(this._rc, null, `room full (${msg.capacity})`);
        }
        if (!this._isJoinAnswer(msg)) return;
        const err = new SignalError("full", `Room "${msg.room}" is full (capacity ${msg.capacity}).`, { room: msg.room, capacity: msg.capacity });
        if (this.state === "joining") this.state = "idle";
        this._failJoin(err);
        this._emit("full", { room: msg.room, capacity: msg.capacity });
        return;
      }
      case "error": {
        if (this._isAttemptAnswer(msg)) return this._onAttemptError(msg);
        if (msg.ref === LEAVE_REF && msg.code === "not-joined") return;
        const pj = this._pendingJoin;
        if (pj && msg.ref === pj.ref) {
          this.state = "idle";
          this._failJoin(new SignalError(msg.code, msg.message, { ref: msg.ref }));
        }
        this._emit("error", { code: msg.code, message: msg.message, ref: msg.ref });
        if ((msg.code === "kicked" || msg.code === "room-closed") && !msg.ref) this._removed(msg);
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

  /** An operator closed the room or kicked this client (admin API). */
  _removed(msg) {
    if (this.state !== "joined" && this.state !== "reconnecting") return;
    const room = this.room;
    this._reset();
    this.state = "idle";
    this._emit("removed", { reason: msg.code, message: msg.message, room });
  }

  /**
   * Takes the seat that created/joined msg gives: a join() answered, or a
   * join afresh after a lost seat (rejoined). The client then offers to
   * each member already there.
   */
  async _takeSeat(msg, rejoined) {
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
      created: msg.type === "created", iceServers: this.iceServers, rejoined,
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

  // ---- reconnection ----
  //
  // Everything below runs in the queue (timers go through _task), so a
  // reconnection's steps never interleave with the handling of a message.
  // this._rc is the reconnection under way; a step whose reconnection is no
  // longer this._rc (leave(), close(), done) does nothing.

  /**
   * The WebSocket dropped while in a room: keep the room, the peers and
   * their negotiations, and get a connection back.
   * @param {{code: number, reason: string}} close
   * @param {number} received frames received on the dropped socket
   */
  _startReconnect(close, received) {
    const now = performance.now();
    const o = this.options;
    const resumeWindow = o.resumeWindow ?? 15000;
    const r = {
      code: close.code, reason: close.reason, received, token: this.resumeToken,
      seatLost: false, attempt: 0, delay: RECONNECT_MIN_DELAY, since: now,
      resumeBy: now + resumeWindow, giveUpAt: now + (o.reconnectTimeout ?? 60000),
      phase: "waiting", // then "connecting", "joining"
      ref: null, timer: 0, answerTimer: 0, windowTimer: 0,
    };
    this._rc = r;
    this.state = "reconnecting";
    this._debug(`reconnecting: the connection dropped (${close.code}) after ${received} frames`);
    this._schedule(r);
    if (!r.token) this._loseSeat(r, "no-token");
    else r.windowTimer = setTimeout(() => this._task(() => this._windowPassed(r)), resumeWindow);
  }

  _stopReconnect() {
    const r = this._rc;
    if (!r) return;
    this._rc = null;
    clearTimeout(r.timer);
    clearTimeout(r.answerTimer);
    clearTimeout(r.windowTimer);
  }

  /** Schedules the next attempt, with backoff, and says so. */
  _schedule(r) {
    const now = performance.now();
    let wait;
    if (r.attempt === 0) {
      wait = Math.random() * RECONNECT_MIN_DELAY;
    } else {
      wait = r.delay / 2 + Math.random() * r.delay / 2;
      r.delay = Math.min(2 * r.delay, RECONNECT_MAX_DELAY);
    }
    wait = Math.min(wait, Math.max(0, r.giveUpAt - now));
    r.phase = "waiting";
    r.ref = null;
    this._emit("reconnecting", { attempt: r.attempt + 1, delay: Math.round(wait), code: r.code, reason: r.reason, resume: !r.seatLost && !!r.token });
    r.timer = setTimeout(() => this._task(() => this._attempt(r)), wait);
  }

  /** One attempt: open a WebSocket, then join (resume, or afresh). */
  _attempt(r) {
    if (this._rc !== r) return;
    const now = performance.now();
    if (now >= r.giveUpAt) {
      this._giveUp(r, null);
      return;
    }
    if (!r.seatLost && now >= r.resumeBy) this._loseSeat(r, "window");
    r.attempt++;
    r.phase = "connecting";
    this._debug(`reconnect attempt ${r.attempt}`);
    this._connect(Math.min(this._timeout(), ATTEMPT_TIMEOUT)).then(
      (ws) => this._task(() => this._sendAttemptJoin(r, ws)),
      (err) => this._task(() => {
        if (this._rc === r && r.phase === "connecting") this._attemptEnded(r, null, err.message);
      }),
    );
  }

  _sendAttemptJoin(r, ws) {
    // A socket that closed meanwhile has its close queued: it ends the attempt.
    if (this._rc !== r || ws !== this._ws || ws.readyState !== WebSocket.OPEN) return;
    r.ref = `j${nextRef++}`;
    r.phase = "joining";
    const msg = r.seatLost ? this._joinMsg(r.ref)
      : { type: "join", room: this.room, resume: r.token, received: r.received, ref: r.ref };
    this._sendOn(ws, msg);
    this._armAnswerTimer(r, ws);
  }

  _armAnswerTimer(r, ws) {
    clearTimeout(r.answerTimer);
    const ref = r.ref;
    r.answerTimer = setTimeout(() => this._task(() => {
      if (this._rc !== r || r.ref !== ref) return;
      if (this._ws === ws) this._dropSocket();
      this._attemptEnded(r, null, "no answer to the join");
    }), ATTEMPT_TIMEOUT);
  }

  /**
   * An attempt failed (its socket closed, could not open, or the join was
   * refused for now): try again, unless the close says not to.
   */
  _attemptEnded(r, close, why) {
    if (!r || this._rc !== r) return;
    clearTimeout(r.answerTimer);
    this._debug(`reconnect attempt ${r.attempt} failed: ${why}`);
    if (close && !isResumableClose(close.code)) {
      this._giveUp(r, { code: close.code, reason: close.reason });
      return;
    }
    this._schedule(r);
  }

  /** The answer to an attempt's join: the seat is back, or a new one. */
  async _onAttemptJoined(msg) {
    const r = this._rc;
    clearTimeout(r.answerTimer);
    if (msg.type === "joined" && msg.resumed && !r.seatLost) {
      this._stopReconnect();
      this.state = "joined";
      if (msg.resume) this.resumeToken = msg.resume;
      if (Array.isArray(msg.iceServers)) this.iceServers = msg.iceServers;
      if (msg.capacity) this.capacity = msg.capacity;
      // What was queued meanwhile goes out first, in order. (Should the new
      // socket have closed already, it stays queued: its close, next in
      // the queue, starts another reconnection.)
      const ws = this._ws;
      const queued = ws && ws.readyState === WebSocket.OPEN ? this._outbox : [];
      if (queued.length) this._outbox = [];
      for (const m of queued) this._sendOn(ws, m);
      this._debug(`resumed after ${r.attempt} attempts; sent ${queued.length} queued messages`);
      this._emit("resumed", {
        room: msg.room, id: msg.id, peers: Array.isArray(msg.peers) ? msg.peers : [],
        attempts: r.attempt, after: Math.round(performance.now() - r.since), sent: queued.length,
      });
      return;
    }
    if (!r.seatLost) this._loseSeat(r, "new-seat");
    this._stopReconnect();
    await this._takeSeat(msg, true);
  }

  /** The server refused an attempt's join. */
  _onAttemptError(msg) {
    const r = this._rc;
    clearTimeout(r.answerTimer);
    this._debug(`reconnect: join refused: ${msg.code}: ${msg.message}`);
    const ws = this._ws;
    switch (msg.code) {
      case "resume-failed":
        if (!r.seatLost) this._loseSeat(r, "resume-failed");
        if (ws && ws.readyState === WebSocket.OPEN) {
          // Join afresh on the same connection.
          r.ref = `j${nextRef++}`;
          this._sendOn(ws, this._joinMsg(r.ref));
          this._armAnswerTimer(r, ws);
          return;
        }
        this._attemptEnded(r, null, msg.code);
        return;
      case "rate-limited":
      case "id-taken": // our old seat's id, still held
        this._dropSocket();
        this._attemptEnded(r, null, msg.code);
        return;
      default: // unauthorized (an expired token), ...: trying again will not help
        this._giveUp(r, { error: { code: msg.code, message: msg.message } });
    }
  }

  /** The resume window passed: unless a resume is being answered, the seat is lost. */
  _windowPassed(r) {
    if (this._rc !== r || r.seatLost || r.phase === "joining") return;
    this._loseSeat(r, "window");
  }

  /**
   * The seat is gone: the other members have seen this client leave (or
   * will), so every peer connection is closed, and what waited to be sent
   * to them dropped. Reconnecting goes on, to join afresh.
   */
  _loseSeat(r, reason) {
    r.seatLost = true;
    clearTimeout(r.windowTimer);
    this.resumeToken = null;
    this._outbox = [];
    const ids = [...this.peers.keys()];
    for (const id of ids) this.peers.get(id).close();
    this.peers.clear();
    this._debug(`seat lost (${reason})`);
    for (const id of ids) this._emit("peerleft", { id, reason: "seat-lost" });
    this._emit("seatlost", { reason });
  }

  /** Stops reconnecting: the client is out of the room. */
  _giveUp(r, why) {
    this._debug(`reconnecting gave up after ${r.attempt} attempts`);
    this._reset();
    this._dropSocket();
    this.state = "idle";
    const detail = { code: r.code, reason: r.reason, wasJoined: true };
    if (why && why.code != null) Object.assign(detail, { code: why.code, reason: why.reason });
    if (why && why.error) detail.error = why.error;
    this._emit("disconnected", detail);
  }

  // ---- negotiation ----

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
