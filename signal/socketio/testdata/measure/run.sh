#!/usr/bin/env bash
# Server memory per joined idle connection and join -> joined latency of the
# rendezvous binary: Socket.IO 4.x clients (default options: polling, then
# the upgrade) next to protocol v1 clients, 3 runs of each, alternating, the
# server on core 0 and the clients on core 1 (see main.go).
#
#   bash signal/socketio/testdata/measure/run.sh [N] [more flags for measure, e.g. -chrt]   (N defaults to 2000)
#
# Needs node and the packages of signal/socketio/testdata/node (npm ci there).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
n="${1:-2000}"
shift || true
go build -o /tmp/rv-measure-server ./cmd/rendezvous
go build -o /tmp/rv-measure ./signal/socketio/testdata/measure
ulimit -n 20000 2>/dev/null || true
/tmp/rv-measure -bin /tmp/rv-measure-server -n "$n" "$@"
