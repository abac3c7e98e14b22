#!/bin/sh
# `mdc bench --sink kafka` against a fresh tansu broker (in memory, 127.0.0.1:19092), stopped
# afterwards. tansu's memory storage keeps every record (about 90 MB/s at these rates), so a broker
# reused across runs pages in gigabytes and measures slower; every run gets its own.
#
#   scripts/bench-kafka.sh [mdc bench options...]   e.g. --duration 30s --warmup 10s --compression none
set -eu
TANSU_BIN=$(./scripts/install-tansu.sh)
cargo build --release --quiet
"$TANSU_BIN" broker --listener-url tcp://127.0.0.1:19092 --advertised-listener-url tcp://127.0.0.1:19092 \
  --storage-engine memory://tansu/ >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null || true' EXIT INT TERM
sleep 1
./target/release/mdc bench --rate 0 --sink kafka --brokers 127.0.0.1:19092 "$@"
