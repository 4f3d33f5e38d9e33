#!/usr/bin/env bash
# Installs the baselines' dependencies into target/bench/ (never into the server's tree):
# a Python venv with FastAPI + uvicorn, and node_modules with Express + Socket.IO.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/bench"
here="$root/bench/baselines"
mkdir -p "$out"
if ! cmp -s "$here/fastapi/requirements.txt" "$out/venv/.requirements" 2>/dev/null; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/fastapi/requirements.txt"
  cp "$here/fastapi/requirements.txt" "$out/venv/.requirements"
fi
if ! cmp -s "$here/socketio/package.json" "$out/node/package.json" 2>/dev/null; then
  mkdir -p "$out/node"
  cp "$here/socketio/package.json" "$out/node/package.json"
  (cd "$out/node" && npm install --silent --no-audit --no-fund)
fi
