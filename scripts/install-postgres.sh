#!/usr/bin/env bash
# Installs PostgreSQL's server binaries (Debian package `postgresql`) for the tests and prints the
# directory holding initdb / pg_ctl / postgres. Each PostgreSQL test creates a throwaway cluster
# (initdb into a temporary directory, as the `postgres` user when run as root, 127.0.0.1 and a free
# port) and removes it at the end. The package's own cluster and service are stopped if the
# install started them: the tests never use them.
set -euo pipefail
find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
  return 1
}
bin=$(find_bin || true)
if [ -z "$bin" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql
    if command -v pg_lsclusters >/dev/null 2>&1; then
      pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
        $SUDO pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
      done
    fi
    if command -v systemctl >/dev/null 2>&1; then
      $SUDO systemctl stop postgresql 2>/dev/null || true
      $SUDO systemctl disable postgresql 2>/dev/null || true
    fi
  } >&2
  bin=$(find_bin)
fi
"$bin/postgres" --version >&2
echo "$bin"
