// Opens N socket.io-client 4.x clients with the default options (polling,
// then the upgrade to WebSocket), joins them in pairs one pair at a time,
// and prints the join -> joined latency of each pair's second member as
// JSON; then holds the connections until stdin ends.
//
// Usage: node measure.js URL N   (URL on 127.0.0.0/8)
'use strict';

const { io } = require('sio4');

const url = process.argv[2];
const n = Number(process.argv[3] || 500);
if (!/^http:\/\/127\./.test(url || '')) {
  console.error('URL must be on 127.0.0.0/8');
  process.exit(2);
}
setTimeout(() => { console.error('timeout'); process.exit(1); }, 5 * 60 * 1000).unref();

function once(socket, ev) {
  return new Promise((resolve) => socket.once(ev, (...args) => resolve(args)));
}

function connect() {
  const s = io(url, { forceNew: true, reconnection: false });
  return new Promise((resolve, reject) => {
    s.once('connect_error', reject);
    s.once('connect', () => {
      if (s.io.engine.transport.name === 'websocket') return resolve(s);
      s.io.engine.once('upgrade', () => resolve(s));
    });
  });
}

(async () => {
  const sockets = [];
  const lat = [];
  for (let i = 0; i + 1 < n; i += 2) {
    const a = await connect();
    const b = await connect();
    sockets.push(a, b);
    const room = 'm' + i;
    a.emit('create or join', room);
    await once(a, 'created');
    const ready = once(a, 'ready');
    const t0 = process.hrtime.bigint();
    b.emit('create or join', room);
    await once(b, 'joined');
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await ready;
  }
  lat.sort((x, y) => x - y);
  console.log(JSON.stringify({ clients: sockets.length, join_p50_ms: lat[Math.floor(lat.length / 2)], join_p90_ms: lat[Math.floor(lat.length * 9 / 10)] }));
  process.stdin.on('end', () => { for (const s of sockets) s.close(); process.exit(0); });
  process.stdin.resume();
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
