/** The protocol version this client speaks. */
export declare const PROTOCOL_VERSION = 1;
/** Label of the data channel the offering side creates. */
export declare const DATA_CHANNEL_LABEL = "rendezvous";
/**
 * An error of the client: a protocol error sent by the server (its `code`
 * is the server's code, e.g. "invalid-room" or "id-taken"), or one of the
 * client's own codes: "full" (the room is full), "unreachable" (the
 * WebSocket could not be opened and the server does not answer),
 * "refused" (the WebSocket could not be opened but the server answers: it
 * refused the connection), "disconnected" (it closed before the answer),
 * "timeout" (no answer in time) and "closed" (close() was called).
 */
export declare class SignalError extends Error {
    /** @type {string} */
    code: string;
    /**
     * @param {string} code
     * @param {string} message
     * @param {{ref?: string, room?: string, capacity?: number}} [extra] more
     *   fields copied onto the error (ref, room, capacity)
     */
    constructor(code: string, message: string, extra?: {
        ref?: string;
        room?: string;
        capacity?: number;
    });
}
export type ClientOptions = {
    /**
     * WebSocket URL of the server; default: /ws on the
     * origin this module was loaded from (ws: or wss: to match).
     */
    url?: string;
    /**
     * extra RTCPeerConnection settings
     * (default: bundlePolicy "max-bundle"). Its iceServers, when given,
     * replace the ones the server sends.
     */
    rtcConfig?: RTCConfiguration;
    /**
     * milliseconds to wait for the WebSocket
     * to open and for the answer to join.
     */
    timeout?: number;
    /**
     * after an unexpected close, reconnect
     * and resume the seat (or join afresh); false: leave the room and emit
     * disconnected, as a close does.
     */
    reconnect?: boolean;
    /**
     * milliseconds after a drop during
     * which the client tries to take its seat back; keep it at most the
     * server's -resume-window (15 s by default). After it the seat counts as
     * lost: the peer connections are closed and the next attempt joins afresh.
     */
    resumeWindow?: number;
    /**
     * milliseconds after a drop
     * after which the client stops trying, leaves the room and emits
     * disconnected.
     */
    reconnectTimeout?: number;
    /**
     * receives a line per protocol
     * step, for troubleshooting.
     */
    debug?: (line: string) => void;
};
export type JoinOptions = {
    /**
     * peer id to ask for ([A-Za-z0-9_-]{1,64});
     * default: the server picks one.
     */
    id?: string;
    /**
     * room capacity, when this join creates the room.
     */
    capacity?: number;
    /**
     * join token (servers run with -auth-secret),
     * passed to the server as is. It is kept: a join afresh after a lost seat
     * sends it again.
     */
    token?: string;
};
export type JoinResult = {
    /**
     * room name
     */
    room: string;
    /**
     * this client's peer id in the room
     */
    id: string;
    /**
     * room capacity
     */
    capacity: number;
    /**
     * ids of the members already in the room (empty
     * when this join created it)
     */
    peers: string[];
    /**
     * true when this join created the room
     */
    created: boolean;
    /**
     * ICE servers the server handed out
     */
    iceServers: RTCIceServer[];
    /**
     * true when the client joined afresh by itself
     * after losing its seat (see the seatlost event), false for join()
     */
    rejoined: boolean;
};
export type PeerStats = {
    /**
     * round-trip time of the selected candidate pair, ms
     */
    rtt: number | null;
    /**
     * media received, kbit/s, since the previous call
     */
    inKbps: number | null;
    /**
     * media sent, kbit/s, since the previous call
     */
    outKbps: number | null;
    /**
     * local candidate type of the selected pair: host, srflx, prflx or relay
     */
    localType: string | null;
    /**
     * remote candidate type of the selected pair
     */
    remoteType: string | null;
    /**
     * "relay" when either end is relayed, else "srflx" when either is reflexive, else "host"
     */
    pairType: string | null;
    /**
     * video frames decoded (inbound-rtp)
     */
    framesDecoded: number;
    /**
     * decoded video frame rate
     */
    framesPerSecond: number | null;
    frameWidth: number | null;
    frameHeight: number | null;
    /**
     * media bytes received
     */
    bytesReceived: number;
    /**
     * media bytes sent
     */
    bytesSent: number;
};
export type ClientEvents = {
    /**
     * this client is in a room: join() succeeded,
     * or the client joined afresh after losing its seat (rejoined: true)
     */
    joined: JoinResult;
    /**
     * a member joined the room after us
     */
    peerjoined: {
        id: string;
    };
    /**
     * a member left; reason is
     * the server's (left, disconnected, timeout, slow, kicked, room-closed),
     * "seat-lost" when this client lost its own seat and closed the
     * connection to the member itself, or "not-back" when the member did
     * not come back after a server restart. (The server's "shutdown" gives
     * no peerleft: the call goes on; see serverrestart.)
     */
    peerleft: {
        id: string;
        reason: string;
    };
    /**
     *   a peer connection's state changed (new, connecting, connected,
     *   disconnected, failed, closed)
     */
    connectionstatechange: {
        id: string;
        state: RTCPeerConnectionState;
    };
    /**
     *   a remote track arrived; stream holds all of that member's tracks
     */
    track: {
        id: string;
        track: MediaStreamTrack;
        stream: MediaStream;
    };
    /**
     * the data channel to a member opened
     */
    channelopen: {
        id: string;
    };
    /**
     * the data channel to a member closed
     */
    channelclose: {
        id: string;
    };
    /**
     * a data channel message
     */
    message: {
        id: string;
        data: string | ArrayBuffer;
    };
    /**
     * a `message` relayed by the server
     */
    relay: {
        from: string;
        data: any;
    };
    /**
     * the room was full; join() rejects too
     */
    full: {
        room: string;
        capacity: number;
    };
    /**
     *   a protocol error from the server, or a WebRTC failure with a peer (id).
     *   Refusals of the client's own reconnection joins are not reported here
     *   (see seatlost and disconnected).
     */
    error: {
        code: string;
        message: string;
        ref?: string;
        id?: string;
    };
    /**
     * a server log line (server run with -client-log)
     */
    log: {
        message: string;
    };
    /**
     *   the WebSocket dropped while in a room (code and reason of its close,
     *   1006 when it just failed) and the client will try again in delay ms:
     *   attempt 1 right after the drop, then one per failed attempt. resume:
     *   whether it will ask for its seat back, keeping the call (false once
     *   the seat is lost). restart: the server shut down (see serverrestart):
     *   the call goes on and the client joins the next server under its id.
     *   The state is "reconnecting"; the peer connections and data channels
     *   stay up; relay() and signaling wait for the connection.
     */
    reconnecting: {
        attempt: number;
        delay: number;
        code: number;
        reason: string;
        resume: boolean;
        restart: boolean;
    };
    /**
     *   the seat is back (same id, same peer connections) after attempts
     *   attempts and after ms; resent frames the server had not handled (its
     *   `read`) went out again, then sent messages queued meanwhile. The
     *   server then re-sends what the client missed, which is handled as usual.
     *   gap: signals may have been lost both ways (the server said `gap`: the
     *   room was hosted anew after a server node crashed; or frames to send
     *   again were no longer kept); each call that is not connected is then
     *   recovered (a pending offer sent again, or an ICE restart by the side
     *   that made the first offer).
     */
    resumed: {
        room: string;
        id: string;
        peers: string[];
        attempts: number;
        after: number;
        sent: number;
        resent: number;
        gap: boolean;
    };
    /**
     *   the signaling server is shutting down (it said peer-left "shutdown",
     *   or closed the WebSocket with 1001 "going away"). The call goes on: the
     *   peer connections with peers (ids) are kept (no peerleft), media and
     *   data channels keep flowing; the client reconnects with backoff
     *   (reconnecting events) and, once a server answers, joins the room
     *   again under the same id (reconnected). Reconnecting gives up after
     *   reconnectTimeout, as after any drop.
     */
    serverrestart: {
        room: string;
        id: string;
        peers: string[];
    };
    /**
     *   back in the room under the same id after a server restart, after
     *   attempts attempts and after ms. peers: the members in the room now;
     *   kept: those whose connection was still connected and is kept as it is
     *   (no new offer); renegotiated: those offered a new connection (theirs
     *   was no longer connected). Members not back yet keep their connection
     *   while they rejoin (peerjoined is not emitted for a kept one); one not
     *   back within resumeWindow, or whose connection fails first, gets
     *   peerleft with reason "not-back".
     */
    reconnected: {
        room: string;
        id: string;
        peers: string[];
        kept: string[];
        renegotiated: string[];
        attempts: number;
        after: number;
    };
    /**
     * the connection to a member failed,
     * or is not connected after a resume with a gap (see resumed), and this
     * client restarts ICE (a new offer with new ICE credentials);
     * connectionstatechange tells whether it recovers
     */
    icerestart: {
        id: string;
    };
    /**
     * a member kept over a server restart
     * joined the room again under its id, its connection still connected:
     * the connection is kept as it is (no new offer, no peerjoined)
     */
    peerback: {
        id: string;
    };
    /**
     * the seat could not be taken back
     * (reason "resume-failed": the server refused it; "window": the resume
     * window passed; "no-token": the server gave none; "new-seat": the server
     * seated the client anew). Every peer connection was closed (each with a
     * peerleft "seat-lost" before this event); the client keeps reconnecting
     * and joins afresh, as a newcomer, which gives joined (rejoined: true).
     */
    seatlost: {
        reason: string;
    };
    /**
     *   an operator removed this client from the room (admin API): it is in no
     *   room and does not reconnect. After "kicked" the server closes the
     *   WebSocket; after "room-closed" it stays open for another join.
     */
    removed: {
        reason: "kicked" | "room-closed";
        message: string;
        room: string;
    };
    /**
     *   the client is out of the room and not reconnecting: the WebSocket
     *   closed in a way that cannot be resumed (a close frame from the server:
     *   kicked or rate-limited 1008, replaced 4001, too large 1009, ...), or
     *   reconnecting gave up (reconnectTimeout passed, or the server refused
     *   the join afresh: error). Not after close().
     */
    disconnected: {
        code: number;
        reason: string;
        wasJoined: boolean;
        error?: {
            code: string;
            message: string;
        };
    };
    /**
     * this client left the room (leave() or close())
     */
    left: {};
};
export type WireMessage = {
    type: string;
    [field: string]: any;
};
export type PendingJoin = {
    /**
     * the join's ref, which the answer echoes
     */
    ref: string;
    resolve: (result: JoinResult) => void;
    reject: (err: SignalError) => void;
    /**
     * the join's timeout
     */
    timer: number;
};
export type Reconnection = {
    /**
     * close code of the drop
     */
    code: number;
    /**
     * close reason of the drop
     */
    reason: string;
    /**
     * frames received on the dropped socket
     */
    received: number;
    /**
     * resume token to ask for the seat with
     */
    token: string | null;
    /**
     * the seat is lost: the next join is afresh
     */
    seatLost: boolean;
    /**
     * the server shut down (peer-left "shutdown",
     * close 1001): the peer connections are kept whatever happens to the
     * seat, and when the seat cannot be resumed the client joins again under
     * its id (byId)
     */
    restart: boolean;
    /**
     * the next join asks for the old id, not the seat
     */
    byId: boolean;
    /**
     * attempts made so far
     */
    attempt: number;
    /**
     * current backoff bound, ms
     */
    delay: number;
    /**
     * when the connection dropped (performance.now())
     */
    since: number;
    /**
     * end of the resume window (performance.now())
     */
    resumeBy: number;
    /**
     * end of reconnecting (performance.now())
     */
    giveUpAt: number;
    /**
     * the server closed with 1012 "service restart":
     * its node drains and the seat moves to another one; the first attempt
     * is made at once
     */
    moved: boolean;
    phase: "waiting" | "connecting" | "joining";
    /**
     * ref of the attempt's join, once sent
     */
    ref: string | null;
    /**
     * the next attempt
     */
    timer: number;
    /**
     * the deadline of the answer to the join
     */
    answerTimer: number;
    /**
     * the end of the resume window
     */
    windowTimer: number;
};
export type NonStandardTransceiver = RTCRtpTransceiver & {
    stopped?: boolean;
};
/**
 * Whether a WebSocket that closed with code may be resumed: a drop (1006,
 * no close frame), or a server going away or restarting (1001, 1011-1014).
 * @param {number} code
 * @returns {boolean}
 */
export declare function isResumableClose(code: number): boolean;
/**
 * One other member of the room and the RTCPeerConnection to it. Read-only
 * for applications; RendezvousClient manages it.
 */
export declare class Peer {
    /** @type {string} the member's peer id */
    id: string;
    /** @type {"offerer"|"answerer"} whether this side sent the offer */
    role: "offerer" | "answerer";
    /** @type {MediaStream} the member's remote tracks */
    stream: MediaStream;
    /** @type {RTCDataChannel|null} */
    channel: RTCDataChannel | null;
    /** @type {RTCPeerConnection} */
    pc: RTCPeerConnection;
    /** @type {{audio?: RTCRtpTransceiver, video?: RTCRtpTransceiver}} */
    transceivers: {
        audio?: RTCRtpTransceiver;
        video?: RTCRtpTransceiver;
    };
    /** @type {Array<RTCIceCandidateInit|null>} remote candidates waiting for the remote description */
    pendingCandidates: Array<RTCIceCandidateInit | null>;
    /**
     * @internal
     * @type {RendezvousClient}
     */
    _client: RendezvousClient;
    /**
     * @internal
     * @type {{at: number, in: number, out: number}|null}
     */
    _prev: {
        at: number;
        in: number;
        out: number;
    } | null;
    /** @internal @type {boolean} the first offer/answer exchange is done: later ones are renegotiations */
    _negotiated: boolean;
    /** @internal @type {boolean} an offer of ours is being made (perfect negotiation) */
    _makingOffer: boolean;
    /** @internal @type {boolean} the latest remote offer was ignored (glare, impolite side) */
    _ignoreOffer: boolean;
    /** @internal @type {Map<MediaStreamTrack, RTCRtpTransceiver>} tracks of addLocalTrack() on this connection */
    _extra: Map<MediaStreamTrack, RTCRtpTransceiver>;
    /**
     * @param {RendezvousClient} client
     * @param {string} id
     * @param {"offerer"|"answerer"} role
     */
    constructor(client: RendezvousClient, id: string, role: "offerer" | "answerer");
    /**
     * Whether this side is the polite one of perfect negotiation: on glare
     * it rolls its offer back and answers the other's. The polite side is
     * the one whose id is lexicographically greater (package peer uses the
     * same rule).
     * @returns {boolean}
     */
    get polite(): boolean;
    /** @returns {RTCPeerConnectionState} */
    get state(): RTCPeerConnectionState;
    /**
     * Sends data over the data channel, if it is open. Strings, Blobs,
     * ArrayBuffers and views are sent as they are; other values as JSON.
     * @param {any} data
     * @returns {boolean} whether it was sent
     */
    send(data: any): boolean;
    /**
     * Summarizes getStats() for this connection. Bitrates are computed from
     * the previous call, so call it periodically (e.g. every second).
     * @returns {Promise<PeerStats>}
     */
    stats(): Promise<PeerStats>;
    close(): void;
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
export declare class RendezvousClient extends EventTarget {
    /** @type {string} WebSocket URL */
    url: string;
    options: ClientOptions;
    /** @type {"idle"|"connecting"|"joining"|"joined"|"reconnecting"|"closed"} */
    state: "idle" | "connecting" | "joining" | "joined" | "reconnecting" | "closed";
    /** @type {string|null} current room */
    room: string | null;
    /** @type {string|null} this client's peer id */
    id: string | null;
    /** @type {number|null} */
    capacity: number | null;
    /** @type {RTCIceServer[]} ICE servers from the server's created/joined */
    iceServers: RTCIceServer[];
    /**
     * The server's `resume` token from the latest created/joined: it takes
     * the seat back after a dropped connection. null when not in a room.
     * @type {string|null}
     */
    resumeToken: string | null;
    /**
     * Frames received on the current WebSocket, every one since it opened:
     * the server numbers the frames it writes on a connection from its
     * start, and a resume tells it how many arrived.
     * @type {number}
     */
    framesReceived: number;
    /** @type {Map<string, Peer>} the other members, by id */
    peers: Map<string, Peer>;
    /** @type {MediaStream|null} */
    localStream: MediaStream | null;
    /** @internal @type {WebSocket|null} */
    _ws: WebSocket | null;
    /** @internal @type {Promise<WebSocket>|null} */
    _opening: Promise<WebSocket> | null;
    /** @internal @type {Promise<unknown>} */
    _queue: Promise<unknown>;
    /** @internal @type {PendingJoin|null} */
    _pendingJoin: PendingJoin | null;
    /** @internal @type {JoinOptions} */
    _joinOpts: JoinOptions;
    /** @internal @type {boolean} */
    _closing: boolean;
    /** @internal @type {number} */
    _generation: number;
    /** @internal @type {WireMessage[]} messages to the server waiting for the connection */
    _outbox: WireMessage[];
    /** @internal @type {number} frames sent on the seat since the join that took it (resume joins excluded) */
    _sent: number;
    /** @internal @type {Array<{text: string, bytes: number}>} the latest frames sent on the seat, oldest first; the last is frame _sent */
    _kept: Array<{
        text: string;
        bytes: number;
    }>;
    /** @internal @type {number} bytes in _kept */
    _keptBytes: number;
    /** @internal @type {Reconnection|null} */
    _rc: Reconnection | null;
    /** @internal @type {boolean} */
    _serverGoing: boolean;
    /** @internal @type {Set<string>} members kept over a server restart and not back in the room yet */
    _notBack: Set<string>;
    /** @internal @type {number} */
    _notBackTimer: number;
    /** @internal @type {Array<{track: MediaStreamTrack, stream: MediaStream|null}>} tracks of addLocalTrack() */
    _extraTracks: Array<{
        track: MediaStreamTrack;
        stream: MediaStream | null;
    }>;
    /** @param {ClientOptions} [options] */
    constructor(options?: ClientOptions);
    /**
     * Adds a listener that receives the event's detail; returns a function
     * that removes it.
     * @template {keyof ClientEvents} K
     * @param {K} type
     * @param {(detail: ClientEvents[K]) => void} fn
     * @returns {() => void}
     */
    on<K extends keyof ClientEvents>(type: K, fn: (detail: ClientEvents[K]) => void): () => void;
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
    join(room: string, opts?: JoinOptions): Promise<JoinResult>;
    /**
     * Leaves the room: sends leave, so that the server frees the seat at
     * once and the members see peer-left "left", and closes every peer
     * connection. The WebSocket stays open for another join. The local
     * stream is kept. While reconnecting, the seat is released on a separate
     * connection (best effort; else the server frees it when its resume
     * window ends).
     */
    leave(): void;
    /**
     * Leaves the room and closes the WebSocket. The client cannot be used
     * again. The local stream is not stopped (it is the caller's).
     */
    close(): void;
    /**
     * Sends data over the data channel to one member (to) or to every member
     * whose channel is open. Strings and binary are sent as they are; other
     * values as JSON text. Data channels do not need the server, so this
     * works while reconnecting too.
     * @param {any} data
     * @param {string} [to] a member's id; omitted: everyone
     * @returns {number} how many members it was sent to
     */
    send(data: any, to?: string): number;
    /**
     * Sends data through the server (a protocol `message`), to one member or
     * to all. Useful before the data channel is open. Members get a `relay`
     * event. While reconnecting it waits, in order, for the connection.
     * @param {any} data any JSON value
     * @param {string} [to]
     */
    relay(data: any, to?: string): void;
    /**
     * Sets the stream to send (its first audio and first video track), or
     * null to send nothing. Can be called at any time: before joining, or
     * during a call to turn the camera or microphone on and off (tracks are
     * replaced without renegotiation).
     * @param {MediaStream|null} stream
     * @returns {Promise<void>}
     */
    setLocalStream(stream: MediaStream | null): Promise<void>;
    /**
     * Alias of setLocalStream, for callers that think in terms of adding one.
     * @param {MediaStream} stream
     * @returns {Promise<void>}
     */
    addLocalStream(stream: MediaStream): Promise<void>;
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
    addLocalTrack(track: MediaStreamTrack, stream?: MediaStream): void;
    /**
     * Stops sending a track of addLocalTrack() (removeTrack, and a
     * renegotiation: the other side's track is muted and leaves its stream).
     * The track itself is not stopped.
     * @param {MediaStreamTrack} track
     */
    removeLocalTrack(track: MediaStreamTrack): void;
    /**
     * Summarized stats of the connection to one member.
     * @param {string} id
     * @returns {Promise<PeerStats|null>}
     */
    stats(id: string): Promise<PeerStats | null>;
}
