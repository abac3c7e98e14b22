#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, checks formatting and
# lints, builds once, runs unit, integration and end-to-end tests. No benchmarks (see perf/).
# Every server a test needs is started by the test itself on 127.0.0.1 and stopped by it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Debian packages: a C toolchain for crates with C parts (ring; librdkafka, zlib and zstd are
# built from source by their -sys crates), OpenSSL's headers (librdkafka's TLS), Python's pip to
# fetch the test broker.
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v perl >/dev/null 2>&1 || need+=(perl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)   # certificates for the PostgreSQL TLS test
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# librdkafka's TLS and SASL SCRAM link the system's OpenSSL.
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is required (https://rustup.rs)"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true

log "test broker (tansu, Kafka protocol; each test starts its own on 127.0.0.1 and stops it)"
TANSU_BIN=$(./scripts/install-tansu.sh)
export TANSU_BIN
"$TANSU_BIN" --version

log "nats-server (JetStream; each NATS test starts its own on 127.0.0.1 and stops it)"
NATS_SERVER_BIN=$(./scripts/install-nats.sh)
export NATS_SERVER_BIN

log "PostgreSQL server binaries (each PostgreSQL test makes its own cluster on 127.0.0.1 and removes it)"
PG_BIN=$(./scripts/install-postgres.sh)
export PG_BIN

if command -v kubectl >/dev/null 2>&1; then
  log "kubernetes manifests render (deploy/k8s, deploy/k8s/sharded, deploy/k8s/job)"
  kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/k8s >/dev/null
  kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/k8s/sharded >/dev/null
  kubectl kustomize deploy/k8s/job >/dev/null
fi

# One build on a fresh machine: incremental state would only add ~800 MB to target/.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

log "format"
cargo fmt --all -- --check

log "lint"
cargo clippy --locked --all-targets -- -D warnings

log "test (the fuzz targets run MDC_FUZZ_SECS each, 10 s by default)"
cargo test --locked --no-fail-fast -- --test-threads 2

log "loom models of the ring and the idle bell (feature loom: only the mdc crate is rebuilt)"
cargo test --locked --features loom --test loom

# Miri (a nightly toolchain's interpreter) over the unsafe code: the ring's slot access and the
# Binance fast scanner's unchecked reads. Installed here when the toolchain server answers; where
# it cannot be, the step says so and the loom models above still cover the ring.
log "miri: the ring and the fast scanner's unchecked reads"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    timeout 600 rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1 || true
  else
    timeout 900 rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null 2>&1 || true
  fi
fi
if cargo +nightly miri --version >/dev/null 2>&1; then
  cargo +nightly miri test --lib -- pipeline::ring exchange::scan exchange::binance::decode::fast
else
  log "miri: skipped (no nightly toolchain with miri could be installed on this machine)"
fi

log "all tests passed"
