#!/bin/sh
# `mdc bench --sink nats` (JetStream, file storage) or `--sink nats-core` against a fresh
# nats-server on 127.0.0.1:14222 with its store in a temporary directory, stopped afterwards.
# Prints the server's own CPU over the run (it shares the machine's cores with the collector).
#
#   scripts/bench-nats.sh [--sink nats|nats-core] [mdc bench options...]
set -eu
NATS_SERVER_BIN=$(./scripts/install-nats.sh)
cargo build --release --quiet
store=$(mktemp -d)
"$NATS_SERVER_BIN" -a 127.0.0.1 -p 14222 -js -sd "$store" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$store"' EXIT INT TERM
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
./target/release/mdc bench --rate 0 --nats-url nats://127.0.0.1:14222 "$@"
t1=$(ticks); s1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
awk -v t="$((t1 - t0))" -v hz="$hz" -v a="$s0" -v b="$s1" \
  'BEGIN { printf "nats-server CPU over the whole run (warm-up included): %.1f s of %.1f s wall = %.0f %% of one core\n", t/hz, b-a, 100*t/hz/(b-a) }'
