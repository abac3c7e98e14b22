#!/bin/sh
# `mdc bench --sink postgres` against a throwaway PostgreSQL cluster on 127.0.0.1:15432 (initdb
# into a temporary directory, as the `postgres` user when run as root; fsync stays on, as a user's
# server would run), removed afterwards. Prints the server's own CPU over the run: it shares the
# machine's cores with the collector.
#
#   scripts/bench-postgres.sh [mdc bench options...]
set -eu
PG_BIN=$(./scripts/install-postgres.sh)
cargo build --release --quiet
dir=$(mktemp -d)
as_pg=""
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; as_pg="runuser -u postgres --"; fi
$as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
$as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p 15432 -k $dir -c shared_buffers=512MB -c max_wal_size=4GB" start >/dev/null
trap '$as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1; rm -rf "$dir"' EXIT INT TERM
# CPU of every server process in ticks: the postmaster's own and that of its children that have
# exited (cutime + cstime: the collector's backend ends with the run), plus the children alive.
ticks() {
  pm=$(head -1 "$dir/data/postmaster.pid")
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
    for p in $(pgrep -P "$pm"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done
  } | awk '{s += $1} END {print s + 0}'
}
t0=$(ticks); s0=$(date +%s.%N)
# --max-allocations: the PostgreSQL sink's own queue creates its record slots as it first needs
# them (pre-creating 65,536 would cost ~100 MB); a deep queue in the window grows it (README).
./target/release/mdc bench --rate 0 --sink postgres --format json --pg-dsn "postgresql://postgres@127.0.0.1:15432/postgres" --max-allocations 5000 "$@"
t1=$(ticks); s1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
awk -v t="$((t1 - t0))" -v hz="$hz" -v a="$s0" -v b="$s1" \
  'BEGIN { printf "PostgreSQL server CPU over the whole run (warm-up included; backends included): %.1f s of %.1f s wall = %.0f %% of one core\n", t/hz, b-a, 100*t/hz/(b-a) }'
