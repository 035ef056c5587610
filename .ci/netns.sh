#!/usr/bin/env bash
# Runs a command in a private network namespace that holds only loopback (plus 127.0.0.2, so
# WebRTC's ICE, which never offers 127.0.0.1, has a host candidate): every packet the test suite
# sends (WebRTC media, HTTP, browser) stays on loopback by construction.
# Needs root (or unprivileged user namespaces); otherwise it runs the command as it is and says so.
set -euo pipefail
if [ "${STABLESYNC_NETNS:-}" = 1 ]; then exec "$@"; fi
if unshare -n true 2>/dev/null; then
  exec unshare -n env STABLESYNC_NETNS=1 bash -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$@"' _ "$@"
fi
echo "note: cannot make a private network namespace here; running without one" >&2
exec "$@"
