#!/usr/bin/env bash
# Installs nats-server (Debian package) for the tests and prints its path. Each NATS test starts
# its own server on 127.0.0.1 and a free port with JetStream in a temporary directory, and kills
# it at the end. The package's own system service is stopped if the install started it: the
# tests never use it, and nothing should listen on other interfaces because of them.
set -euo pipefail
bin=$(command -v nats-server 2>/dev/null || true)
[ -z "$bin" ] && [ -x /usr/sbin/nats-server ] && bin=/usr/sbin/nats-server
if [ -z "$bin" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server
  } >&2
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nats-server 2>/dev/null; then
    $SUDO systemctl stop nats-server >&2 || true
    $SUDO systemctl disable nats-server >&2 || true
  fi
  bin=$(command -v nats-server 2>/dev/null || echo /usr/sbin/nats-server)
fi
"$bin" --version >&2
echo "$bin"
