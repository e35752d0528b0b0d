// Drives Socket.IO clients for signal/socketio's Go tests.
//
// Usage: node client.js TIMEOUT_MS
//
// Reads one JSON command per line on stdin:
//   {"op":"connect","id":"a","lib":"sio1"|"sio2"|"sio4","url":"http://127.0.0.1:PORT",
//    "transports":["polling"]|["websocket"]|null,"query":{...},"auth":{...}}
//   {"op":"emit","id":"a","event":"create or join","args":["room"]}
//   {"op":"close","id":"a"}
// and writes one JSON line per thing that happens:
//   {"id":"a","ev":"<event from the server>","args":[...]}
//   {"id":"a","ev":"@connect","transport":"polling"}, "@upgrade" (transport),
//   "@disconnect" (args: [reason]), "@connect_error", "@error" (args: [error])
//   {"ev":"@ready"} once listening, {"ev":"@fatal","error":"..."} on a failure of the script.
// It exits when stdin ends or after TIMEOUT_MS, whichever comes first.
'use strict';

const readline = require('readline');

const timeoutMs = Number(process.argv[2] || 60000);
const sockets = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorValue(e) {
  if (e instanceof Error) {
    return { message: String(e.message !== undefined ? e.message : e), data: e.data !== undefined ? e.data : null, description: e.description !== undefined ? String(e.description) : null };
  }
  return e === undefined ? null : e;
}

function connect(cmd) {
  const id = cmd.id;
  const opts = { forceNew: true }; // one Engine.IO connection per client
  if (cmd.transports) opts.transports = cmd.transports;
  if (cmd.query) opts.query = cmd.query;
  if (cmd.reconnection !== undefined) opts.reconnection = cmd.reconnection;
  let socket;
  if (cmd.lib === 'sio4') {
    if (cmd.auth) opts.auth = cmd.auth;
    socket = require('sio4').io(cmd.url, opts);
    socket.onAny((ev, ...args) => out({ id, ev, args }));
  } else if (cmd.lib === 'sio1' || cmd.lib === 'sio2') {
    socket = require(cmd.lib)(cmd.url, opts);
    // 1.x and 2.x have no onAny: see every event packet as it arrives.
    const onevent = socket.onevent;
    socket.onevent = function (packet) {
      const args = packet.data || [];
      out({ id, ev: args[0], args: args.slice(1) });
      return onevent.call(this, packet);
    };
    socket.on('error', (e) => out({ id, ev: '@error', args: [errorValue(e)] }));
  } else {
    throw new Error('unknown lib ' + cmd.lib);
  }
  const manager = socket.io;
  manager.on('open', () => {
    const engine = manager.engine;
    engine.on('upgrade', (t) => out({ id, ev: '@upgrade', transport: t && t.name }));
  });
  socket.on('connect', () => out({ id, ev: '@connect', transport: manager.engine && manager.engine.transport && manager.engine.transport.name }));
  socket.on('disconnect', (reason) => out({ id, ev: '@disconnect', args: [reason === undefined ? null : String(reason)] }));
  socket.on('connect_error', (e) => out({ id, ev: '@connect_error', args: [errorValue(e)] }));
  sockets.set(id, socket);
}

function handle(cmd) {
  switch (cmd.op) {
    case 'connect':
      connect(cmd);
      break;
    case 'emit': {
      const s = sockets.get(cmd.id);
      if (!s) throw new Error('no client ' + cmd.id);
      s.emit(cmd.event, ...(cmd.args || []));
      break;
    }
    case 'close': {
      const s = sockets.get(cmd.id);
      if (s) s.close();
      sockets.delete(cmd.id);
      out({ id: cmd.id, ev: '@closed' });
      break;
    }
    default:
      throw new Error('unknown op ' + cmd.op);
  }
}

function finish(code) {
  for (const s of sockets.values()) {
    try { s.close(); } catch (e) { /* exiting anyway */ }
  }
  process.exit(code);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  try {
    handle(JSON.parse(line));
  } catch (e) {
    out({ ev: '@fatal', error: String(e && e.stack || e) });
  }
});
rl.on('close', () => finish(0));
setTimeout(() => {
  out({ ev: '@fatal', error: 'timeout after ' + timeoutMs + ' ms' });
  finish(1);
}, timeoutMs).unref();
// Keep running while stdin is open, even with no socket.
const keepAlive = setInterval(() => {}, 1 << 30);
rl.on('close', () => clearInterval(keepAlive));
out({ ev: '@ready' });
