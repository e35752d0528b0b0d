// @ts-check
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
// each of them; members already in the room only answer, so the first
// offer never collides. After it, either side renegotiates when it needs
// to (addLocalTrack, removeLocalTrack, an ICE restart when the connection
// fails), with perfect negotiation: on glare the polite side (the greater
// id, as in package peer) rolls its offer back and answers, the impolite
// side ignores the other's offer. ICE candidates trickle through the
// server; candidates that arrive before the remote description are
// buffered. Signaling messages are handled one at a time, in order,
// through a promise queue.
//
// Media: every connection negotiates one audio and one video transceiver
// (sendrecv) and the data channel up front, whether or not a local stream is
// set, so setLocalStream() later only swaps tracks (replaceTrack) and never
// needs a new offer. addLocalTrack() sends more tracks, and renegotiates.
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
//
// Cluster mode: a server node that drains closes its WebSockets with 1012
// "service restart"; the seat is held and moves to another node, and the
// client resumes at once (the first attempt without backoff). The client
// numbers the frames it sends on its seat and keeps the latest (at most
// 256 frames and 256 KiB): a resumed `joined` with `read` says how many
// the server handled, and the client sends the others again, in order,
// before anything new. A resumed `joined` with `gap` (the room was hosted
// anew after a node crashed: signals may have been lost both ways)
// recovers each call that is not connected: a pending offer is sent
// again, and the side that made the first offer restarts ICE on a
// connection that is stable. Both sides answer an offer they answered
// already, and ignore an answer or candidate that comes twice.
//
// Server restart: a server shutting down says peer-left "shutdown" for
// every member and closes with 1001. The call does not need the server,
// so the peer connections are kept; the client reconnects with backoff
// and joins the next server's room under the same id. Connections still
// connected are kept as they are, without a new offer, on both sides.

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
   * @param {{ref?: string, room?: string, capacity?: number}} [extra] more
   *   fields copied onto the error (ref, room, capacity)
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
 * `disconnected` with wasJoined: true. A server shutdown gives
 * `serverrestart`, `reconnecting` (one or more), then `reconnected` (or
 * `resumed`, should the seat still be there), the calls going on all along.
 *
 * @typedef {object} ClientEvents
 * @property {JoinResult} joined this client is in a room: join() succeeded,
 *   or the client joined afresh after losing its seat (rejoined: true)
 * @property {{id: string}} peerjoined a member joined the room after us
 * @property {{id: string, reason: string}} peerleft a member left; reason is
 *   the server's (left, disconnected, timeout, slow, kicked, room-closed),
 *   "seat-lost" when this client lost its own seat and closed the
 *   connection to the member itself, or "not-back" when the member did
 *   not come back after a server restart. (The server's "shutdown" gives
 *   no peerleft: the call goes on; see serverrestart.)
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
 * @property {{attempt: number, delay: number, code: number, reason: string, resume: boolean, restart: boolean}} reconnecting
 *   the WebSocket dropped while in a room (code and reason of its close,
 *   1006 when it just failed) and the client will try again in delay ms:
 *   attempt 1 right after the drop, then one per failed attempt. resume:
 *   whether it will ask for its seat back, keeping the call (false once
 *   the seat is lost). restart: the server shut down (see serverrestart):
 *   the call goes on and the client joins the next server under its id.
 *   The state is "reconnecting"; the peer connections and data channels
 *   stay up; relay() and signaling wait for the connection.
 * @property {{room: string, id: string, peers: string[], attempts: number, after: number, sent: number, resent: number, gap: boolean}} resumed
 *   the seat is back (same id, same peer connections) after attempts
 *   attempts and after ms; resent frames the server had not handled (its
 *   `read`) went out again, then sent messages queued meanwhile. The
 *   server then re-sends what the client missed, which is handled as usual.
 *   gap: signals may have been lost both ways (the server said `gap`: the
 *   room was hosted anew after a server node crashed; or frames to send
 *   again were no longer kept); each call that is not connected is then
 *   recovered (a pending offer sent again, or an ICE restart by the side
 *   that made the first offer).
 * @property {{room: string, id: string, peers: string[]}} serverrestart
 *   the signaling server is shutting down (it said peer-left "shutdown",
 *   or closed the WebSocket with 1001 "going away"). The call goes on: the
 *   peer connections with peers (ids) are kept (no peerleft), media and
 *   data channels keep flowing; the client reconnects with backoff
 *   (reconnecting events) and, once a server answers, joins the room
 *   again under the same id (reconnected). Reconnecting gives up after
 *   reconnectTimeout, as after any drop.
 * @property {{room: string, id: string, peers: string[], kept: string[], renegotiated: string[], attempts: number, after: number}} reconnected
 *   back in the room under the same id after a server restart, after
 *   attempts attempts and after ms. peers: the members in the room now;
 *   kept: those whose connection was still connected and is kept as it is
 *   (no new offer); renegotiated: those offered a new connection (theirs
 *   was no longer connected). Members not back yet keep their connection
 *   while they rejoin (peerjoined is not emitted for a kept one); one not
 *   back within resumeWindow, or whose connection fails first, gets
 *   peerleft with reason "not-back".
 * @property {{id: string}} icerestart the connection to a member failed,
 *   or is not connected after a resume with a gap (see resumed), and this
 *   client restarts ICE (a new offer with new ICE credentials);
 *   connectionstatechange tells whether it recovers
 * @property {{id: string}} peerback a member kept over a server restart
 *   joined the room again under its id, its connection still connected:
 *   the connection is kept as it is (no new offer, no peerjoined)
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
 * A message of protocol v1 to or from the server, parsed from or sent as
 * JSON: a string type and the fields of that type (PROTOCOL.md). Internal.
 * @typedef {{type: string, [field: string]: any}} WireMessage
 */

/**
 * A join() waiting for the server's answer. Internal.
 * @typedef {object} PendingJoin
 * @property {string} ref the join's ref, which the answer echoes
 * @property {(result: JoinResult) => void} resolve
 * @property {(err: SignalError) => void} reject
 * @property {number} timer the join's timeout
 */

/**
 * A reconnection under way (RendezvousClient._rc). Internal.
 * @typedef {object} Reconnection
 * @property {number} code close code of the drop
 * @property {string} reason close reason of the drop
 * @property {number} received frames received on the dropped socket
 * @property {string|null} token resume token to ask for the seat with
 * @property {boolean} seatLost the seat is lost: the next join is afresh
 * @property {boolean} restart the server shut down (peer-left "shutdown",
 *   close 1001): the peer connections are kept whatever happens to the
 *   seat, and when the seat cannot be resumed the client joins again under
 *   its id (byId)
 * @property {boolean} byId the next join asks for the old id, not the seat
 * @property {number} attempt attempts made so far
 * @property {number} delay current backoff bound, ms
 * @property {number} since when the connection dropped (performance.now())
 * @property {number} resumeBy end of the resume window (performance.now())
 * @property {number} giveUpAt end of reconnecting (performance.now())
 * @property {boolean} moved the server closed with 1012 "service restart":
 *   its node drains and the seat moves to another one; the first attempt
 *   is made at once
 * @property {"waiting"|"connecting"|"joining"} phase
 * @property {string|null} ref ref of the attempt's join, once sent
 * @property {number} timer the next attempt
 * @property {number} answerTimer the deadline of the answer to the join
 * @property {number} windowTimer the end of the resume window
 */

/**
 * RTCRtpTransceiver with `stopped`, which Chromium still has but the
 * specification (and so TypeScript's DOM types) replaced with direction
 * "stopped". Internal.
 * @typedef {RTCRtpTransceiver & {stopped?: boolean}} NonStandardTransceiver
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
/** Frames sent on the seat kept to send again after a resume, at most (and bytes). */
const SENT_KEPT_FRAMES = 256;
const SENT_KEPT_BYTES = 256 * 1024;
/** Measures the UTF-8 size of the frames kept. */
const utf8 = new TextEncoder();
/** ref of every leave, so that a "not-joined" answer to it can be ignored. */
const LEAVE_REF = "leave";
/** Bounds the /healthz request that tells a refused WebSocket from an unreachable server. */
const PROBE_TIMEOUT = 3000;
/**
 * The errors of WebSockets that closed before they opened: the server may have refused them.
 * @type {WeakSet<SignalError>}
 */
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
    /**
     * @internal
     * @type {RendezvousClient}
     */
    this._client = client;
    /**
     * @internal
     * @type {{at: number, in: number, out: number}|null}
     */
    this._prev = null; // previous stats sample, for bitrates
    /** @internal @type {boolean} the first offer/answer exchange is done: later ones are renegotiations */
    this._negotiated = false;
    /** @internal @type {boolean} an offer of ours is being made (perfect negotiation) */
    this._makingOffer = false;
    /** @internal @type {boolean} the latest remote offer was ignored (glare, impolite side) */
    this._ignoreOffer = false;
    /** @internal @type {Map<MediaStreamTrack, RTCRtpTransceiver>} tracks of addLocalTrack() on this connection */
    this._extra = new Map();
    this._wire();
  }

  /**
   * Whether this side is the polite one of perfect negotiation: on glare
   * it rolls its offer back and answers the other's. The polite side is
   * the one whose id is lexicographically greater (package peer uses the
   * same rule).
   * @returns {boolean}
   */
  get polite() {
    return (this._client.id || "") > this.id;
  }

  /** @returns {RTCPeerConnectionState} */
  get state() {
    return this.pc.connectionState;
  }

  /** @internal */
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
      if ((pc.connectionState === "failed" || pc.connectionState === "closed") && c._notBack.has(this.id)) {
        c._task(() => c._dropNotBack(this.id));
      } else if (pc.connectionState === "failed" && this._negotiated) {
        // ICE restart: a new offer with new ICE credentials (negotiationneeded).
        c._debug(`${this.id}: connection failed; restarting ICE`);
        c._emit("icerestart", { id: this.id });
        pc.restartIce();
      }
    };
    pc.onnegotiationneeded = () => {
      // The first offer is the newcomer's (_offer); after it, any change
      // (tracks added or removed, an ICE restart) renegotiates, on either side.
      if (this._negotiated) this._negotiate();
    };
    pc.ontrack = (ev) => {
      if (!this.stream.getTrackById(ev.track.id)) this.stream.addTrack(ev.track);
      c._emit("track", { id: this.id, track: ev.track, stream: this.stream });
    };
    pc.ondatachannel = (ev) => this._setChannel(ev.channel);
  }

  /**
   * @internal
   * @param {RTCDataChannel} ch
   */
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
   * @internal
   * @param {MediaStream|null} stream
   */
  async _attach(stream) {
    for (const kind of /** @type {const} */ (["audio", "video"])) {
      const t = this.transceivers[kind];
      if (!t || /** @type {NonStandardTransceiver} */ (t).stopped) continue;
      const track = (stream && stream.getTracks().find((x) => x.kind === kind)) || null;
      if (t.sender.track !== track) await t.sender.replaceTrack(track);
    }
  }

  /**
   * Adds remote candidates that arrived before the remote description.
   * @internal
   */
  async _flushCandidates() {
    const list = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const cand of list) await this._addCandidate(cand);
  }

  /**
   * @internal
   * @param {RTCIceCandidateInit|null} cand
   */
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
      // (Each of send()'s overloads takes one of these types.)
      ch.send(/** @type {any} */ (data));
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
    /** @type {any} the selected RTCIceCandidatePairStats */
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

  /**
   * Makes an offer for a change after the first negotiation (perfect
   * negotiation: either side may, at any time).
   * @internal
   */
  async _negotiate() {
    const pc = this.pc;
    const c = this._client;
    // Not stable: the browser fires negotiationneeded again once it is.
    if (pc.signalingState !== "stable") return;
    try {
      this._makingOffer = true;
      await pc.setLocalDescription();
      // (The state changed meanwhile: setLocalDescription awaits.)
      if (/** @type {RTCSignalingState} */ (pc.signalingState) !== "have-local-offer") return;
      c._debug(`${this.id}: renegotiating`);
      c._send({ type: "offer", to: this.id, sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
    } catch (err) {
      c._emit("error", { code: "webrtc", message: `Renegotiation with ${this.id}: ${err}`, id: this.id });
    } finally {
      this._makingOffer = false;
    }
  }

  /**
   * The first offer/answer exchange is done: later changes renegotiate,
   * starting with the tracks of addLocalTrack().
   * @internal
   */
  _initialDone() {
    if (this._negotiated) return;
    this._negotiated = true;
    for (const { track, stream } of this._client._extraTracks) this._addExtra(track, stream);
  }

  /**
   * @internal
   * @param {MediaStreamTrack} track
   * @param {MediaStream|null} stream
   */
  _addExtra(track, stream) {
    if (this._extra.has(track) || this.pc.signalingState === "closed") return;
    const t = this.pc.addTransceiver(track, { direction: "sendonly", streams: stream ? [stream] : [] });
    this._extra.set(track, t);
  }

  /**
   * @internal
   * @param {MediaStreamTrack} track
   */
  _removeExtra(track) {
    const t = this._extra.get(track);
    if (!t) return;
    this._extra.delete(track);
    if (this.pc.signalingState !== "closed") this.pc.removeTrack(t.sender);
  }

  close() {
    const pc = this.pc;
    pc.onicecandidate = pc.onconnectionstatechange = pc.ontrack = pc.ondatachannel = null;
    pc.onnegotiationneeded = null;
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

    // Internal state (the fields that begin with _ are not part of the API).
    /** @internal @type {WebSocket|null} */
    this._ws = null;
    /** @internal @type {Promise<WebSocket>|null} */
    this._opening = null; // Promise<WebSocket> while connecting
    /** @internal @type {Promise<unknown>} */
    this._queue = Promise.resolve(); // server messages and state changes, one at a time
    /** @internal @type {PendingJoin|null} */
    this._pendingJoin = null; // {ref, resolve, reject, timer}
    /** @internal @type {JoinOptions} */
    this._joinOpts = {}; // options of the latest join(), for a join afresh
    /** @internal @type {boolean} */
    this._closing = false;
    /** @internal @type {number} */
    this._generation = 0; // bumped by _reset: queued messages of an old membership are dropped
    /** @internal @type {WireMessage[]} messages to the server waiting for the connection */
    this._outbox = [];
    /** @internal @type {number} frames sent on the seat since the join that took it (resume joins excluded) */
    this._sent = 0;
    /** @internal @type {Array<{text: string, bytes: number}>} the latest frames sent on the seat, oldest first; the last is frame _sent */
    this._kept = [];
    /** @internal @type {number} bytes in _kept */
    this._keptBytes = 0;
    /** @internal @type {Reconnection|null} */
    this._rc = null; // reconnection under way (see _startReconnect)
    /** @internal @type {boolean} */
    this._serverGoing = false; // the server said peer-left "shutdown": it is going away
    /** @internal @type {Set<string>} members kept over a server restart and not back in the room yet */
    this._notBack = new Set();
    /** @internal @type {number} */
    this._notBackTimer = 0;
    /** @internal @type {Array<{track: MediaStreamTrack, stream: MediaStream|null}>} tracks of addLocalTrack() */
    this._extraTracks = [];
  }

  /**
   * Adds a listener that receives the event's detail; returns a function
   * that removes it.
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(detail: ClientEvents[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    const h = (/** @type {Event} */ ev) => fn(/** @type {CustomEvent<ClientEvents[K]>} */ (ev).detail);
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
      // _connect rejects with SignalErrors only.
      throw closedBeforeOpen.has(/** @type {SignalError} */ (err)) ? await this._whyUnreachable(/** @type {SignalError} */ (err)) : err;
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
    /** @type {WireMessage} */
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
   * Sends one more track to every member (a second camera, a screen
   * share), besides the local stream's audio and video: each connection
   * gets a transceiver for it and renegotiates (perfect negotiation:
   * either side may, at any time; on glare the polite side, the one with
   * the greater id, yields). Members that join later get it too. The
   * other side gets a track event (in stream's stream, if given).
   * @param {MediaStreamTrack} track
   * @param {MediaStream} [stream]
   */
  addLocalTrack(track, stream) {
    if (this._extraTracks.some((e) => e.track === track)) return;
    this._extraTracks.push({ track, stream: stream || null });
    for (const p of this.peers.values()) if (p._negotiated) p._addExtra(track, stream || null);
  }

  /**
   * Stops sending a track of addLocalTrack() (removeTrack, and a
   * renegotiation: the other side's track is muted and leaves its stream).
   * The track itself is not stopped.
   * @param {MediaStreamTrack} track
   */
  removeLocalTrack(track) {
    this._extraTracks = this._extraTracks.filter((e) => e.track !== track);
    for (const p of this.peers.values()) p._removeExtra(track);
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

  /**
   * @internal
   * @returns {number}
   */
  _timeout() {
    return this.options.timeout || 10000;
  }

  /**
   * @internal
   * @param {string} line
   */
  _debug(line) {
    if (this.options.debug) this.options.debug(line);
  }

  /**
   * Dispatches event type with detail.
   * @internal
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {ClientEvents[K]} detail
   */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /**
   * @internal
   * @returns {RTCConfiguration}
   */
  _rtcConfig() {
    // max-bundle: one transport for audio, video and data, so one set of
    // candidates to gather and trickle instead of one per media section.
    /** @type {RTCConfiguration} */
    const cfg = { bundlePolicy: "max-bundle", ...(this.options.rtcConfig || {}) };
    if (!cfg.iceServers) cfg.iceServers = this.iceServers;
    return cfg;
  }

  /**
   * A join of room (default: this.room) with the options of the latest join().
   * @internal
   * @param {string} ref
   * @param {string|null} [room]
   * @returns {WireMessage}
   */
  _joinMsg(ref, room = this.room) {
    const o = this._joinOpts;
    /** @type {WireMessage} */
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
   * @internal
   * @param {() => unknown} fn
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
   * @internal
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
   * @internal
   * @param {number} [timeout] for the opening, ms
   * @returns {Promise<WebSocket>}
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
        reject(new SignalError("unreachable", `Bad server URL ${this.url}: ${/** @type {Error} */ (err).message}`));
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
   * @internal
   * @param {WebSocket} ws
   * @param {CloseEvent} ev
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
   * @internal
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

  /**
   * Closes the WebSocket without treating it as an unexpected close.
   * @internal
   */
  _dropSocket() {
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "bye");
  }

  /**
   * Out of the room: closes every peer connection, forgets the room.
   * @internal
   */
  _reset() {
    this._stopReconnect();
    this._serverGoing = false;
    this._notBack.clear();
    clearTimeout(this._notBackTimer);
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    this.room = this.id = this.capacity = null;
    this.resumeToken = null;
    this._outbox = [];
    this._forgetSent(0);
    // Drop signaling messages still queued for the old membership.
    this._generation++;
  }

  /**
   * Rejects the join in flight, if any, with err.
   * @internal
   * @param {SignalError} err
   */
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
   * @internal
   * @returns {boolean}
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
   * @internal
   * @param {string} room
   * @param {string} token resume token
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
   * @internal
   * @param {WebSocket} ws
   * @param {string|null} ref
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
   * @internal
   * @param {WireMessage} msg
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

  /**
   * Sends msg on ws, if it is open.
   * @internal
   * @param {WebSocket} ws
   * @param {WireMessage} msg
   */
  _sendOn(ws, msg) {
    if (ws.readyState !== WebSocket.OPEN) return;
    this._debug(`→ ${msg.type}${msg.to ? " to " + msg.to : ""}${msg.resume ? ` (resume, received ${msg.received})` : ""}`);
    const text = JSON.stringify(msg);
    ws.send(text);
    if (msg.type !== "join") this._countSent(text);
    else if (!msg.resume) this._forgetSent(0); // it may take a new seat, whose frames count from here
  }

  /**
   * Numbers a frame just sent on the seat and keeps it, forgetting the
   * oldest past SENT_KEPT_FRAMES frames or SENT_KEPT_BYTES bytes.
   * @internal
   * @param {string} text
   */
  _countSent(text) {
    this._sent++;
    const bytes = utf8.encode(text).length;
    this._kept.push({ text, bytes });
    this._keptBytes += bytes;
    let drop = 0;
    while (this._kept.length - drop > SENT_KEPT_FRAMES || this._keptBytes > SENT_KEPT_BYTES) {
      this._keptBytes -= this._kept[drop].bytes;
      drop++;
    }
    if (drop) this._kept.splice(0, drop);
  }

  /**
   * Forgets the frames kept: the next frame sent on the seat is read+1.
   * @internal
   * @param {number} read
   */
  _forgetSent(read) {
    this._sent = read;
    this._kept = [];
    this._keptBytes = 0;
  }

  /**
   * The frames to send again after a resume whose joined says the server
   * handled read of the seat's frames: read+1 … _sent, which are numbered
   * again from read+1 as they go out. null when one of them is no longer
   * kept, or read is beyond _sent (a gap): the count then goes on from read.
   * @internal
   * @param {number} read
   * @returns {string[]|null}
   */
  _rewindSent(read) {
    if (!Number.isSafeInteger(read) || read < 0 || read > this._sent || this._sent - read > this._kept.length) {
      this._forgetSent(Number.isSafeInteger(read) && read >= 0 ? read : 0);
      return null;
    }
    const again = this._kept.splice(this._kept.length - (this._sent - read));
    for (const f of again) this._keptBytes -= f.bytes;
    this._sent = read;
    return again.map((f) => f.text);
  }

  /**
   * A frame from the server: queues its message for _handle.
   * @internal
   * @param {string} text
   */
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

  /**
   * Whether msg answers the join of the reconnection under way.
   * @internal
   * @param {WireMessage} msg
   * @returns {boolean}
   */
  _isAttemptAnswer(msg) {
    return !!this._rc && !!msg.ref && msg.ref === this._rc.ref;
  }

  /**
   * Handles one server message; the queue runs these one at a time.
   * @internal
   * @param {WireMessage} msg
   * @returns {Promise<void>}
   */
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
      case "peer-joined": {
        if (this.state !== "joined") return;
        const old = this.peers.get(msg.id);
        if (old && this._notBack.has(msg.id)) {
          // Back after a server restart under the same id.
          this._notBack.delete(msg.id);
          if (old.pc.connectionState === "connected") {
            this._debug(`${msg.id} is back; keeping the connection`);
            this._emit("peerback", { id: msg.id });
            return;
          }
          old.close();
          this.peers.delete(msg.id);
          this._emit("peerleft", { id: msg.id, reason: "not-back" });
        } else if (old) {
          return;
        }
        // The newcomer offers; we wait for its offer.
        this._addPeer(msg.id, "answerer");
        this._emit("peerjoined", { id: msg.id });
        return;
      }
      case "peer-left": {
        if (msg.reason === "shutdown" && this.state === "joined") {
          // The server is going away, the member is not: the call does
          // not need the server, so the connection stays.
          this._serverRestart();
          return;
        }
        this._notBack.delete(msg.id);
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

  /**
   * Whether msg answers the join in flight (it echoes the join's ref).
   * @internal
   * @param {WireMessage} msg
   * @returns {boolean}
   */
  _isJoinAnswer(msg) {
    const pj = this._pendingJoin;
    return !!pj && this.state === "joining" && (!msg.ref || msg.ref === pj.ref);
  }

  /**
   * An operator closed the room or kicked this client (admin API).
   * @internal
   * @param {WireMessage} msg
   */
  _removed(msg) {
    if (this.state !== "joined" && this.state !== "reconnecting") return;
    const room = /** @type {string} joined or reconnecting: in a room */ (this.room);
    this._reset();
    this.state = "idle";
    this._emit("removed", { reason: msg.code, message: msg.message, room });
  }

  /**
   * Takes the seat that created/joined msg gives: a join() answered, or a
   * join afresh after a lost seat (rejoined). The client then offers to
   * each member already there.
   * @internal
   * @param {WireMessage} msg
   * @param {boolean} rejoined
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
   * @internal
   * @param {{code: number, reason: string}} close
   * @param {number} received frames received on the dropped socket
   */
  _startReconnect(close, received) {
    const now = performance.now();
    const o = this.options;
    const resumeWindow = o.resumeWindow ?? 15000;
    /** @type {Reconnection} */
    const r = {
      code: close.code, reason: close.reason, received, token: this.resumeToken,
      seatLost: false, restart: false, byId: false, moved: close.code === 1012, attempt: 0, delay: RECONNECT_MIN_DELAY, since: now,
      resumeBy: now + resumeWindow, giveUpAt: now + (o.reconnectTimeout ?? 60000),
      phase: "waiting", // then "connecting", "joining"
      ref: null, timer: 0, answerTimer: 0, windowTimer: 0,
    };
    if (close.code === 1001) this._serverRestart(); // "going away": a server shutting down
    r.restart = this._serverGoing;
    this._serverGoing = false;
    r.byId = r.restart && !r.token;
    this._rc = r;
    this.state = "reconnecting";
    this._debug(`reconnecting: the connection dropped (${close.code}) after ${received} frames${r.restart ? " (server restart)" : ""}`);
    this._schedule(r);
    if (r.restart) return; // no resume window: the call goes on until a server is back (or reconnectTimeout)
    if (!r.token) this._loseSeat(r, "no-token");
    else r.windowTimer = setTimeout(() => this._task(() => this._windowPassed(r)), resumeWindow);
  }

  /** @internal */
  _stopReconnect() {
    const r = this._rc;
    if (!r) return;
    this._rc = null;
    clearTimeout(r.timer);
    clearTimeout(r.answerTimer);
    clearTimeout(r.windowTimer);
  }

  /**
   * Schedules the next attempt, with backoff, and says so.
   * @internal
   * @param {Reconnection} r
   */
  _schedule(r) {
    const now = performance.now();
    let wait;
    if (r.attempt === 0) {
      // After 1012 the seat waits on another node: at once.
      wait = r.moved ? 0 : Math.random() * RECONNECT_MIN_DELAY;
    } else {
      wait = r.delay / 2 + Math.random() * r.delay / 2;
      r.delay = Math.min(2 * r.delay, RECONNECT_MAX_DELAY);
    }
    wait = Math.min(wait, Math.max(0, r.giveUpAt - now));
    r.phase = "waiting";
    r.ref = null;
    this._emit("reconnecting", {
      attempt: r.attempt + 1, delay: Math.round(wait), code: r.code, reason: r.reason,
      resume: !r.seatLost && (!!r.token || r.restart), restart: r.restart,
    });
    r.timer = setTimeout(() => this._task(() => this._attempt(r)), wait);
  }

  /**
   * One attempt: open a WebSocket, then join (resume, or afresh).
   * @internal
   * @param {Reconnection} r
   */
  _attempt(r) {
    if (this._rc !== r) return;
    const now = performance.now();
    if (now >= r.giveUpAt) {
      this._giveUp(r, null);
      return;
    }
    if (!r.seatLost && !r.restart && now >= r.resumeBy) this._loseSeat(r, "window");
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

  /**
   * @internal
   * @param {Reconnection} r
   * @param {WebSocket} ws
   */
  _sendAttemptJoin(r, ws) {
    // A socket that closed meanwhile has its close queued: it ends the attempt.
    if (this._rc !== r || ws !== this._ws || ws.readyState !== WebSocket.OPEN) return;
    r.ref = `j${nextRef++}`;
    r.phase = "joining";
    const msg = r.seatLost ? this._joinMsg(r.ref)
      : r.byId ? this._joinByIdMsg(r.ref)
      : { type: "join", room: this.room, resume: r.token, received: r.received, ref: r.ref };
    this._sendOn(ws, msg);
    this._armAnswerTimer(r, ws);
  }

  /**
   * @internal
   * @param {Reconnection} r
   * @param {WebSocket} ws
   */
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
   * @internal
   * @param {Reconnection|null} r
   * @param {{code: number, reason: string}|null} close
   * @param {string} why
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

  /**
   * The answer to an attempt's join: the seat is back, or a new one.
   * @internal
   * @param {WireMessage} msg
   */
  async _onAttemptJoined(msg) {
    const r = /** @type {Reconnection} msg answers its join (_isAttemptAnswer) */ (this._rc);
    clearTimeout(r.answerTimer);
    if (msg.type === "joined" && msg.resumed && !r.seatLost) {
      this._stopReconnect();
      this.state = "joined";
      if (msg.resume) this.resumeToken = msg.resume;
      if (Array.isArray(msg.iceServers)) this.iceServers = msg.iceServers;
      if (msg.capacity) this.capacity = msg.capacity;
      // The frames the server did not handle go out again first, then
      // what was queued meanwhile, in order. (Should the new socket have
      // closed already, both wait: its close, next in the queue, starts
      // another reconnection, whose joined says again what was handled.)
      const ws = this._ws;
      const open = !!ws && ws.readyState === WebSocket.OPEN;
      let gap = !!msg.gap;
      /** @type {string[]} */
      let again = [];
      if (gap) {
        this._forgetSent(0); // the room was hosted anew: it counts from here
      } else if (open && msg.read !== undefined && msg.read !== null) {
        const frames = this._rewindSent(msg.read);
        if (frames) again = frames;
        else gap = true;
      }
      for (const text of again) {
        /** @type {WebSocket} open */ (ws).send(text);
        this._countSent(text);
      }
      const queued = open ? this._outbox : [];
      if (queued.length) this._outbox = [];
      for (const m of queued) this._sendOn(/** @type {WebSocket} queued is empty without one */ (ws), m);
      this._debug(`resumed after ${r.attempt} attempts; sent ${again.length} frames again and ${queued.length} queued messages${gap ? "; gap: recovering the calls" : ""}`);
      this._emit("resumed", {
        room: msg.room, id: msg.id, peers: Array.isArray(msg.peers) ? msg.peers : [],
        attempts: r.attempt, after: Math.round(performance.now() - r.since), sent: queued.length,
        resent: again.length, gap,
      });
      if (gap) await this._recoverCalls();
      return;
    }
    if (r.restart && !r.seatLost && msg.id === this.id && msg.room === this.room) {
      await this._rejoined(msg, r);
      return;
    }
    if (!r.seatLost) this._loseSeat(r, "new-seat");
    this._stopReconnect();
    await this._takeSeat(msg, true);
  }

  /**
   * The server refused an attempt's join.
   * @internal
   * @param {WireMessage} msg
   */
  _onAttemptError(msg) {
    const r = /** @type {Reconnection} msg answers its join (_isAttemptAnswer) */ (this._rc);
    clearTimeout(r.answerTimer);
    this._debug(`reconnect: join refused: ${msg.code}: ${msg.message}`);
    const ws = this._ws;
    switch (msg.code) {
      case "resume-failed":
        // After a server restart: a new server, which knows nothing of
        // the seat. Join again under the same id, keeping the call.
        if (r.restart && !r.seatLost) r.byId = true;
        else if (!r.seatLost) this._loseSeat(r, "resume-failed");
        if (ws && ws.readyState === WebSocket.OPEN) {
          // Join afresh on the same connection.
          r.ref = `j${nextRef++}`;
          this._sendOn(ws, r.byId && !r.seatLost ? this._joinByIdMsg(r.ref) : this._joinMsg(r.ref));
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

  /**
   * After a resume with a gap (signals may have been lost both ways):
   * recovers each call that is not connected. An offer of ours that is
   * pending (have-local-offer) is replaced by a new one with an ICE
   * restart: the other side may have answered the first and seen its ICE
   * checks fail meanwhile. The other side answers it, even if it answered
   * before. A stable connection is restarted (restartIce: a new offer) by
   * the side that made the first offer only, so that the two sides do not
   * offer at once (package peer cannot roll an offer back). Connected
   * calls are left alone.
   * @internal
   */
  async _recoverCalls() {
    for (const p of [...this.peers.values()]) {
      const pc = p.pc;
      if (pc.connectionState === "connected" || pc.signalingState === "closed") continue;
      if (pc.signalingState === "have-local-offer") {
        this._debug(`${p.id}: signals may have been lost; offering again with an ICE restart`);
        this._emit("icerestart", { id: p.id });
        try {
          p._makingOffer = true;
          await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
          if (/** @type {RTCSignalingState} */ (pc.signalingState) === "have-local-offer" && pc.localDescription) {
            this._send({ type: "offer", to: p.id, sdp: pc.localDescription.sdp });
          }
        } catch (err) {
          this._emit("error", { code: "webrtc", message: `Offer again to ${p.id}: ${err}`, id: p.id });
        } finally {
          p._makingOffer = false;
        }
      } else if (pc.signalingState === "stable" && p.role === "offerer" && p._negotiated) {
        this._debug(`${p.id}: signals may have been lost; restarting ICE`);
        this._emit("icerestart", { id: p.id });
        pc.restartIce(); // negotiationneeded: a new offer (_negotiate)
      } else {
        this._debug(`${p.id}: signals may have been lost; waiting for its offer (${pc.signalingState})`);
      }
    }
  }

  /**
   * The resume window passed: unless a resume is being answered, the seat is lost.
   * @internal
   * @param {Reconnection} r
   */
  _windowPassed(r) {
    if (this._rc !== r || r.seatLost || r.restart || r.phase === "joining") return;
    this._loseSeat(r, "window");
  }

  /**
   * The server is shutting down (peer-left "shutdown", or a close 1001):
   * says so once; the reconnection that follows keeps the call.
   * @internal
   */
  _serverRestart() {
    if (this._serverGoing || (this._rc && this._rc.restart)) return;
    this._serverGoing = true;
    this._debug("the server is shutting down; the call goes on");
    this._emit("serverrestart", {
      room: /** @type {string} joined: in a room */ (this.room),
      id: /** @type {string} */ (this.id),
      peers: [...this.peers.keys()],
    });
  }

  /**
   * A join of this.room under this client's id (after a server restart).
   * @internal
   * @param {string} ref
   * @returns {WireMessage}
   */
  _joinByIdMsg(ref) {
    return { ...this._joinMsg(ref), id: this.id };
  }

  /**
   * Back in the room under the same id after a server restart: keeps the
   * connections that are still connected, offers anew to the members whose
   * connection is not, and waits for the others to come back.
   * @internal
   * @param {WireMessage} msg created or joined
   * @param {Reconnection} r
   */
  async _rejoined(msg, r) {
    this._stopReconnect();
    this.state = "joined";
    this.resumeToken = msg.resume || null;
    if (Array.isArray(msg.iceServers)) this.iceServers = msg.iceServers;
    if (msg.capacity) this.capacity = msg.capacity;
    /** @type {string[]} */
    const peers = Array.isArray(msg.peers) ? msg.peers : [];
    /** @type {string[]} */
    const kept = [];
    /** @type {string[]} */
    const renegotiate = [];
    for (const id of peers) {
      const p = this.peers.get(id);
      if (p && p.pc.connectionState === "connected") kept.push(id);
      else renegotiate.push(id);
    }
    this._notBack.clear();
    for (const id of this.peers.keys()) if (!peers.includes(id)) this._notBack.add(id);
    clearTimeout(this._notBackTimer);
    if (this._notBack.size) {
      const gen = this._generation;
      this._notBackTimer = setTimeout(() => this._task(() => {
        if (gen === this._generation) for (const id of [...this._notBack]) this._dropNotBack(id);
      }), this.options.resumeWindow ?? 15000);
    }
    // Relayed messages queued meanwhile go out; signals for the old
    // server's negotiations do not (the connections kept need none).
    const queued = this._outbox.filter((m) => m.type === "message");
    this._outbox = [];
    const ws = this._ws;
    if (ws) for (const m of queued) this._sendOn(ws, m);
    this._debug(`rejoined after a server restart: kept ${kept.join(",") || "none"}, offering to ${renegotiate.join(",") || "none"}`);
    this._emit("reconnected", {
      room: msg.room, id: msg.id, peers, kept, renegotiated: renegotiate,
      attempts: r.attempt, after: Math.round(performance.now() - r.since),
    });
    for (const id of renegotiate) {
      // A member that came in while the server was down is new to us.
      if (!this.peers.has(id)) this._emit("peerjoined", { id });
      try {
        await this._offer(id);
      } catch (err) {
        this._emit("error", { code: "webrtc", message: `Offer to ${id}: ${err}`, id });
      }
    }
  }

  /**
   * A member kept over a server restart did not come back (or its
   * connection failed before it did): closes the connection to it.
   * @internal
   * @param {string} id
   */
  _dropNotBack(id) {
    if (!this._notBack.delete(id)) return;
    const p = this.peers.get(id);
    if (!p) return;
    p.close();
    this.peers.delete(id);
    this._emit("peerleft", { id, reason: "not-back" });
  }

  /**
   * The seat is gone: the other members have seen this client leave (or
   * will), so every peer connection is closed, and what waited to be sent
   * to them dropped. Reconnecting goes on, to join afresh.
   * @internal
   * @param {Reconnection} r
   * @param {string} reason
   */
  _loseSeat(r, reason) {
    r.seatLost = true;
    clearTimeout(r.windowTimer);
    this.resumeToken = null;
    this._outbox = [];
    const ids = [...this.peers.keys()];
    for (const id of ids) /** @type {Peer} */ (this.peers.get(id)).close();
    this.peers.clear();
    this._debug(`seat lost (${reason})`);
    for (const id of ids) this._emit("peerleft", { id, reason: "seat-lost" });
    this._emit("seatlost", { reason });
  }

  /**
   * Stops reconnecting: the client is out of the room.
   * @internal
   * @param {Reconnection} r
   * @param {{code?: number, reason?: string, error?: {code: string, message: string}}|null} why
   */
  _giveUp(r, why) {
    this._debug(`reconnecting gave up after ${r.attempt} attempts`);
    this._reset();
    this._dropSocket();
    this.state = "idle";
    /** @type {ClientEvents["disconnected"]} */
    const detail = { code: r.code, reason: r.reason, wasJoined: true };
    if (why && why.code != null) Object.assign(detail, { code: why.code, reason: why.reason });
    if (why && why.error) detail.error = why.error;
    this._emit("disconnected", detail);
  }

  // ---- negotiation ----

  /**
   * @internal
   * @param {string} id
   * @param {"offerer"|"answerer"} role
   * @returns {Peer}
   */
  _addPeer(id, role) {
    const p = new Peer(this, id, role);
    this.peers.set(id, p);
    return p;
  }

  /**
   * The newcomer's side: create the connection and send an offer.
   * @internal
   * @param {string} id
   */
  async _offer(id) {
    if (this.peers.has(id)) /** @type {Peer} */ (this.peers.get(id)).close();
    const p = this._addPeer(id, "offerer");
    const pc = p.pc;
    p.transceivers.audio = pc.addTransceiver("audio", { direction: "sendrecv" });
    p.transceivers.video = pc.addTransceiver("video", { direction: "sendrecv" });
    p._setChannel(pc.createDataChannel(DATA_CHANNEL_LABEL));
    await p._attach(this.localStream);
    await pc.setLocalDescription(await pc.createOffer());
    this._send({ type: "offer", to: id, sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
  }

  /**
   * A member already in the room's side: answer the newcomer's offer.
   * @internal
   * @param {WireMessage} msg
   */
  async _onOffer(msg) {
    let p = this.peers.get(msg.from);
    if (p && p._negotiated && p.pc.signalingState !== "closed") {
      await this._onRenegotiationOffer(p, msg);
      return;
    }
    if (!p || p.role !== "answerer" || p.pc.signalingState === "closed") {
      if (p) p.close();
      p = this._addPeer(msg.from, "answerer");
    }
    const pc = p.pc;
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    // Send on the first audio and video transceivers the offer created.
    for (const t of pc.getTransceivers()) {
      const kind = /** @type {"audio"|"video"} */ (t.receiver.track.kind);
      if (p.transceivers[kind] || /** @type {NonStandardTransceiver} */ (t).stopped) continue;
      p.transceivers[kind] = t;
      t.direction = "sendrecv";
    }
    await p._attach(this.localStream);
    await p._flushCandidates();
    await pc.setLocalDescription(await pc.createAnswer());
    this._send({ type: "answer", to: msg.from, sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
    p._initialDone();
  }

  /**
   * An offer on a connection already negotiated: perfect negotiation. On
   * glare (an offer of ours is out too) the impolite side ignores it and
   * waits for the answer to its own; the polite side rolls its offer back
   * (setRemoteDescription does) and answers, and renegotiates its own
   * change afterwards (negotiationneeded fires again).
   * @internal
   * @param {Peer} p
   * @param {WireMessage} msg
   */
  async _onRenegotiationOffer(p, msg) {
    const pc = p.pc;
    const glare = p._makingOffer || pc.signalingState !== "stable";
    p._ignoreOffer = glare && !p.polite;
    if (p._ignoreOffer) {
      this._debug(`${p.id}: glare; impolite, ignoring its offer`);
      return;
    }
    if (glare) this._debug(`${p.id}: glare; polite, rolling back`);
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    await p._flushCandidates();
    await pc.setLocalDescription();
    this._send({ type: "answer", to: msg.from, sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
  }

  /**
   * @internal
   * @param {WireMessage} msg
   */
  async _onAnswer(msg) {
    const p = this.peers.get(msg.from);
    if (!p || p.pc.signalingState !== "have-local-offer") {
      this._debug(`unexpected answer from ${msg.from}`);
      return;
    }
    await p.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    await p._flushCandidates();
    p._initialDone();
  }

  /**
   * @internal
   * @param {WireMessage} msg
   */
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
