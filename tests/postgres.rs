//! PostgreSQL end to end: the simulator -> the real `mdc` binary -> a throwaway PostgreSQL cluster
//! (tests/common/postgres.rs). SQL reads back what the file sink wrote: every row once, NUMERIC
//! values with exactly the exchange's digits, both timestamps; the database stopped for 20 s
//! mid-run loses nothing and duplicates nothing.

mod common;

use common::postgres::Postgres;
use common::*;
use mdc::simulator::{SimConfig, Simulator};
use serde_json::Value;
use std::time::Duration;

fn config(sim: &Simulator, pg: &Postgres, http: u16) -> String {
    format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "bookTicker", "depth@100ms"]
sinks:
  file: {{ enabled: true, path: "./data" }}
  postgres: {{ enabled: true, dsn: "{}", batch_interval: "100ms" }}
http:
  listen: "127.0.0.1:{http}"
book:
  enabled: false
"#,
        sim.ws_url(),
        pg.dsn()
    )
}

/// (table, JSON type) pairs compared row for row.
const TABLES: &[(&str, &str)] = &[
    ("trades", "trade"),
    ("agg_trades", "agg_trade"),
    ("book_tickers", "book_ticker"),
    ("depth_diffs", "depth_diff"),
];

/// Every table's rows as the file sink's JSON objects would print them, for comparison: the
/// columns the file line has, NUMERIC as text (exactly the exchange's digits).
fn rows_as_json(pg: &Postgres, table: &str) -> Vec<Value> {
    let mut c = pg.client();
    // NUMERIC read back as text: exactly the digits stored (JSON numbers would go through f64).
    let cols: Vec<String> = c
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = 'marketdata' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let (name, ty): (String, String) = (r.get(0), r.get(1));
            if ty == "numeric" {
                format!("\"{name}\"::text AS \"{name}\"")
            } else {
                format!("\"{name}\"")
            }
        })
        .collect();
    let rows = c
        .query(
            &format!(
                "SELECT row_to_json(t)::text FROM (SELECT {} FROM marketdata.{table}) t",
                cols.join(", ")
            ),
            &[],
        )
        .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .collect()
}

/// The file line's fields, each equal in the row (NUMERIC compared as the exchange's string).
fn same(file: &Value, row: &Value) -> bool {
    file.as_object().unwrap().iter().all(|(k, v)| {
        k == "type"
            || match (v, row.get(k)) {
                (Value::String(s), _) if s.is_empty() => row.get(k).is_none_or(Value::is_null),
                (v, Some(r)) => v == r,
                (_, None) => false,
            }
    })
}

fn check_tables(pg: &Postgres, files: &[Value]) {
    for (table, kind) in TABLES {
        let want: Vec<&Value> = files.iter().filter(|v| v["type"] == *kind).collect();
        let have = rows_as_json(pg, table);
        assert!(!want.is_empty(), "{kind} in the file sink");
        assert_eq!(have.len(), want.len(), "{table}: rows vs file lines");
        let key = |v: &Value| {
            format!(
                "{}|{}|{}|{}",
                v["symbol"], v["receive_ts_ns"], v["exchange_ts_ns"], v["trade_id"]
            )
        };
        let mut by_key: std::collections::HashMap<String, &Value> =
            have.iter().map(|r| (key(r), r)).collect();
        for w in want {
            let r = by_key
                .remove(&key(w))
                .unwrap_or_else(|| panic!("{table}: no row for {w}"));
            assert!(same(w, r), "{table}: file {w} vs row {r}");
        }
    }
}

#[test]
fn every_event_once_with_the_exchanges_digits() {
    let pg = Postgres::start();
    let total = 6_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 3_000,
        total: Some(total),
        record: true,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("pg-e2e");
    let http = free_port();
    let mut mdc = Collector::start(&dir, &config(&sim, &pg, http), &[]);
    let data = dir.join("data");
    await_lines(&mdc, &data, total, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let files = read_jsonl(&data);
    check_tables(&pg, &files);
    // Both timestamps: the exact nanoseconds and the TIMESTAMPTZ beside them.
    let mut c = pg.client();
    let bad: i64 = c
        .query_one(
            "SELECT count(*) FROM marketdata.trades WHERE receive_ts <> to_timestamp(receive_ts_ns / 1e9) AND abs(extract(epoch FROM receive_ts) * 1e6 - floor(receive_ts_ns / 1e3)) >= 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
    let version: i32 = c
        .query_one("SELECT max(version) FROM marketdata.schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    // `raw`: the exchange's message each row came from, equal to what the simulator sent.
    let sent: std::collections::HashSet<String> = sim
        .sent_messages()
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap().to_string())
        .collect();
    let raws = c
        .query("SELECT raw::text, trade_id FROM marketdata.trades", &[])
        .unwrap();
    assert!(!raws.is_empty());
    for r in &raws {
        let raw: Value = serde_json::from_str(&r.get::<_, String>(0)).unwrap();
        let id: i64 = r.get(1);
        assert_eq!(raw["data"]["t"].as_i64(), Some(id), "{raw}");
        assert!(
            sent.contains(&raw.to_string()),
            "raw is a sent message: {raw}"
        );
    }
    // Plain PostgreSQL: day partitions from yesterday to two days ahead plus a default one; the
    // trades (exchange time now) are in today's partition.
    let parts: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'marketdata.trades'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(parts >= 5, "{parts} partitions");
    let (y, m, d, _) = mdc::clock::utc_ymdh(mdc::clock::realtime_ns().div_euclid(1_000_000_000));
    let today: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM marketdata.trades_p{y:04}{m:02}{d:02}"),
            &[],
        )
        .unwrap()
        .get(0);
    let all: i64 = c
        .query_one("SELECT count(*) FROM marketdata.trades", &[])
        .unwrap()
        .get(0);
    assert!(
        today > 0 && today <= all,
        "{today} of {all} in today's partition"
    );
}

#[test]
fn a_database_stopped_for_20s_loses_and_duplicates_nothing() {
    let mut pg = Postgres::start();
    let total = 40_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 1_000,
        total: Some(total),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("pg-outage");
    let http = free_port();
    let mut mdc = Collector::start(&dir, &config(&sim, &pg, http), &[]);
    let data = dir.join("data");
    assert!(wait_until(Duration::from_secs(30), || count_lines(&data) >= 3_000));
    assert_eq!(http_get(http, "/readyz").0, 200, "{}", mdc.log_text());
    pg.stop();
    assert!(
        wait_until(Duration::from_secs(10), || http_get(http, "/readyz").0
            == 503),
        "/readyz while the database is down; log:\n{}",
        mdc.log_text()
    );
    let why = http_get(http, "/readyz").1;
    assert!(why.contains("sink postgres unreachable: "), "{why}");
    let before = count_lines(&data);
    std::thread::sleep(Duration::from_secs(20));
    assert!(
        count_lines(&data) > before + 10_000,
        "the file sink kept writing"
    );
    pg.up();
    await_lines(&mdc, &data, total, Duration::from_secs(60));
    await_readyz(&mdc, http, 200, Duration::from_secs(30));
    let (status, _) = mdc.terminate(Duration::from_secs(60));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let files = read_jsonl(&data);
    check_tables(&pg, &files);
}

#[test]
fn a_bad_dsn_is_a_config_error() {
    let dir = temp_dir("pg-bad-dsn");
    let cfg = r#"
exchanges:
  binance_spot:
    symbols: ["BTCUSDT"]
    channels: ["trade"]
sinks:
  postgres: { enabled: true, dsn: "postgresql://md:secret@127.0.0.1:notaport/db" }
"#;
    std::fs::write(dir.join("config.yaml"), cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdc"))
        .args(["check-config", "--config"])
        .arg(dir.join("config.yaml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("sinks.postgres.dsn"), "{err}");
    assert!(!err.contains("secret"), "the password never shows: {err}");
}

/// A table altered by hand (a column's type changed) stops the start with one line naming it,
/// exit 2; a database that does not answer at start is not an error (the sink waits for it).
#[test]
fn an_altered_table_is_a_config_error_and_a_missing_database_is_waited_for() {
    let pg = Postgres::start();
    let sim = Simulator::start(SimConfig {
        rate: 500,
        ..SimConfig::default()
    })
    .unwrap();
    // First run: the schema is created.
    let dir = temp_dir("pg-altered");
    let http = free_port();
    let mut mdc = Collector::start(&dir, &config(&sim, &pg, http), &[]);
    assert!(wait_until(Duration::from_secs(30), || http_get(
        http, "/readyz"
    )
    .0 == 200));
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", mdc.log_text());
    pg.client()
        .batch_execute("ALTER TABLE marketdata.trades ALTER COLUMN price TYPE double precision")
        .unwrap();
    let dir2 = temp_dir("pg-altered-2");
    let mut mdc = Collector::start(&dir2, &config(&sim, &pg, free_port()), &[]);
    assert!(
        wait_until(Duration::from_secs(30), || mdc
            .child
            .try_wait()
            .unwrap()
            .is_some()),
        "{}",
        mdc.log_text()
    );
    let status = mdc.child.wait().unwrap();
    let log = mdc.log_text();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("column marketdata.trades.price is double precision, expected numeric"),
        "{log}"
    );
    // Nothing listens on this port: the collector starts, not ready, and keeps trying.
    let gone = Postgres::start();
    let port = gone.port;
    drop(gone);
    let dir3 = temp_dir("pg-absent");
    let http3 = free_port();
    let cfg = config(&sim, &pg, http3).replace(&pg.port.to_string(), &port.to_string());
    let mut mdc = Collector::start(&dir3, &cfg, &[]);
    assert!(wait_until(Duration::from_secs(20), || http_get(
        http3, "/healthz"
    )
    .0 == 200));
    assert_eq!(http_get(http3, "/readyz").0, 503);
    assert!(mdc.child.try_wait().unwrap().is_none(), "still running");
    let _ = mdc.terminate(Duration::from_secs(40));
    assert!(
        mdc.log_text().contains("event=postgres_unreachable"),
        "{}",
        mdc.log_text()
    );
}

/// SIGKILL while batches are being written, then a second run into the same database: a batch is
/// one transaction, so what the first run left is whole (per symbol, the trades form one run of
/// consecutive ids: no batch half in), and nothing is there twice after the second run.
#[test]
fn sigkill_mid_batch_leaves_no_half_batch_and_no_duplicate() {
    let pg = Postgres::start();
    let sim = Simulator::start(SimConfig {
        rate: 4_000,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("pg-kill");
    let http = free_port();
    let cfg = config(&sim, &pg, http).replace(
        "batch_interval: \"100ms\"",
        "batch_interval: \"50ms\", batch_rows: 200",
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let count = |pg: &Postgres| -> i64 {
        pg.client()
            .query_one("SELECT count(*) FROM marketdata.trades", &[])
            .map(|r| r.get(0))
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || count(&pg) >= 2_000),
        "{}",
        mdc.log_text()
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(mdc.child.id() as i32, libc::SIGKILL) };
    let _ = mdc.child.wait();
    let runs = |pg: &Postgres| -> Vec<(String, i64, i64, i64)> {
        pg.client()
            .query(
                "SELECT symbol, min(trade_id), max(trade_id), count(*) FROM marketdata.trades GROUP BY symbol",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    for (symbol, lo, hi, n) in runs(&pg) {
        assert_eq!(hi - lo + 1, n, "{symbol}: a hole in {lo}..={hi} ({n} rows)");
    }
    let first = count(&pg);
    let dir2 = temp_dir("pg-kill-2");
    let mut mdc = Collector::start(&dir2, &config(&sim, &pg, free_port()), &[]);
    assert!(wait_until(Duration::from_secs(30), || count(&pg) >= first + 2_000));
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", mdc.log_text());
    let dups: i64 = pg
        .client()
        .query_one(
            "SELECT count(*) FROM (SELECT symbol, trade_id FROM marketdata.trades GROUP BY 1, 2 HAVING count(*) > 1) d",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dups, 0);
}

/// A batch holding rows the table already has (the same events delivered again: a spool replayed
/// after a restart, an exchange re-sending after a reconnect): the straight COPY meets a unique
/// violation, nothing of it is written, and the batch goes again through staging with
/// `ON CONFLICT DO NOTHING`: only the new rows are added, the others counted as duplicates.
/// A trade record as the parser hands it to the sinks (JSON Lines only), id `i` at `price`.
fn trade(i: u64, price: &str) -> mdc::encode::record::Record {
    let mut r = mdc::encode::record::Record::with_capacity(256);
    r.kind = mdc::event::EventKind::Trade;
    r.exchange = "binance";
    r.market = "spot";
    r.symbol.push_str("BTCUSDT");
    let line = format!(
        r#"{{"exchange":"binance","market":"spot","symbol":"BTCUSDT","type":"trade","exchange_ts_ns":{},"receive_ts_ns":{},"trade_id":{i},"price":"{price}","qty":"0.02000000","side":"buy"}}"#,
        1_795_000_000_000_000_000u64 + i * 1_000_000,
        1_795_000_000_000_500_000u64 + i * 1_000_000,
    );
    r.json.extend_from_slice(line.as_bytes());
    r.json.push(b'\n');
    r
}

/// Runs the PostgreSQL sink alone (no collector) over `records`, closes it, and returns its
/// counters by name.
fn run_sink(
    pg: &Postgres,
    records: impl Iterator<Item = mdc::encode::record::Record>,
) -> impl Fn(&str) -> u64 {
    let section: serde_yaml::Value =
        serde_yaml::from_str(&format!("{{ enabled: true, dsn: \"{}\" }}", pg.dsn())).unwrap();
    let plan = mdc::sink::factory("postgres")
        .unwrap()
        .plan(section)
        .unwrap()
        .unwrap();
    let metrics = mdc::metrics::Metrics::new(&["postgres"]);
    let mut sink = plan.start(&metrics).unwrap();
    for r in records {
        sink.write(&r).unwrap();
    }
    sink.close().unwrap();
    move |n: &str| -> u64 { metrics.counter_values(n).iter().map(|(_, v)| v).sum() }
}

#[test]
fn rows_written_again_are_counted_not_duplicated() {
    let pg = Postgres::start();
    let price = |i: u64| format!("61837.6300000{}", i % 10);
    let run = |ids: std::ops::Range<u64>| {
        let get = run_sink(&pg, ids.map(|i| trade(i, &price(i))));
        (
            get("postgres_rows_written_total"),
            get("postgres_rows_duplicate_total"),
        )
    };
    assert_eq!(run(0..100), (100, 0));
    assert_eq!(run(0..150), (50, 100));
    let n: i64 = pg
        .client()
        .query_one("SELECT count(*) FROM marketdata.trades", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 150);
    let p: String = pg
        .client()
        .query_one(
            "SELECT price::text FROM marketdata.trades WHERE trade_id = 7",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(p, "61837.63000007");
}

/// A row the server refuses for its data (here a CHECK constraint someone added by hand) would
/// fail its batch on every retry: the batch is split until the row stands alone, which is left
/// out and counted; every other row of the batch is written, once.
#[test]
fn rows_the_server_refuses_are_left_out_and_the_rest_written() {
    let pg = Postgres::start();
    let _ = run_sink(&pg, std::iter::once(trade(0, "1.0")));
    pg.client()
        .batch_execute(
            "ALTER TABLE marketdata.trades ADD CONSTRAINT sane_price CHECK (price < 100000)",
        )
        .unwrap();
    let bad = |i: u64| i % 97 == 5;
    let get = run_sink(
        &pg,
        (1..2_001).map(|i| trade(i, if bad(i) { "250000.5" } else { "61837.63" })),
    );
    let refused = (1..2_001).filter(|&i| bad(i)).count() as u64;
    assert_eq!(get("postgres_rows_refused_total"), refused);
    assert_eq!(get("postgres_rows_written_total"), 2_000 - refused);
    let ids: Vec<i64> = pg
        .client()
        .query(
            "SELECT trade_id FROM marketdata.trades ORDER BY trade_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i64> = (0..2_001).filter(|&i| !bad(i)).map(|i| i as i64).collect();
    assert_eq!(ids, want);
}

/// The server came back as a fresh cluster (its data lost): the sink creates the schema again
/// at its reconnect and writes on; every event received from the moment the old server
/// stopped is in the new one, once, and nothing the file sink does not have.
#[test]
fn a_server_back_as_a_fresh_cluster_gets_its_tables_again() {
    let mut pg = Postgres::start();
    let total = 12_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 1_000,
        total: Some(total),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("pg-fresh");
    let http = free_port();
    let mut mdc = Collector::start(&dir, &config(&sim, &pg, http), &[]);
    let data = dir.join("data");
    assert!(wait_until(Duration::from_secs(30), || count_lines(&data) >= 2_000));
    // The boundary is the moment the old server is down: a batch may still commit into it
    // while the fast shutdown runs, and those rows go with the old cluster.
    pg.stop();
    let stopped_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    pg.recreate();
    await_lines(&mdc, &data, total, Duration::from_secs(60));
    await_readyz(&mdc, http, 200, Duration::from_secs(30));
    let (status, _) = mdc.terminate(Duration::from_secs(60));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let files = read_jsonl(&data);
    for (table, kind) in TABLES {
        let have = rows_as_json(&pg, table);
        let key = |v: &Value| {
            format!(
                "{}|{}|{}|{}",
                v["symbol"], v["receive_ts_ns"], v["exchange_ts_ns"], v["trade_id"]
            )
        };
        let mut by_key: std::collections::HashMap<String, &Value> = files
            .iter()
            .filter(|v| v["type"] == *kind)
            .map(|v| (key(v), v))
            .collect();
        let mut after = by_key
            .values()
            .filter(|v| v["receive_ts_ns"].as_i64().unwrap() >= stopped_ns)
            .count();
        assert!(after > 0, "{table}: events after the restart");
        for r in &have {
            let f = by_key
                .remove(&key(r))
                .unwrap_or_else(|| panic!("{table}: row {r} twice or not in the file sink"));
            assert!(same(f, r), "{table}: file {f} vs row {r}");
            if f["receive_ts_ns"].as_i64().unwrap() >= stopped_ns {
                after -= 1;
            }
        }
        assert_eq!(after, 0, "{table}: events received after the stop missing");
    }
}

/// TLS: a server with a certificate of a private CA (self-signed here, for 127.0.0.1), the DSN
/// with `sslmode=require` and `tls_ca_file` naming the CA: the sink's connection is encrypted
/// (pg_stat_ssl) and the rows arrive; without the CA the certificate is refused and the sink is
/// not ready.
#[test]
fn tls_with_a_private_ca() {
    let pg = Postgres::start_with(
        "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
        |dir| {
            let data = dir.join("data");
            let openssl = |args: &[&str]| {
                let out = std::process::Command::new("openssl")
                    .args(args)
                    .current_dir(dir)
                    .output()
                    .expect("openssl");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            // A private CA, and the server's certificate for 127.0.0.1 signed by it.
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=mdc test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ]);
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "data/server.key",
                "-out",
                "server.csr",
            ]);
            std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "data/server.crt",
            ]);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        },
    );
    let sim = Simulator::start(SimConfig {
        rate: 500,
        ..SimConfig::default()
    })
    .unwrap();
    let ca = pg.dir.join("ca.pem");
    let tls_cfg = |http: u16, ca: Option<&std::path::Path>| {
        config(&sim, &pg, http).replace(
            &format!("dsn: \"{}\"", pg.dsn()),
            &format!(
                "dsn: \"{}?sslmode=require\"{}",
                pg.dsn(),
                ca.map(|c| format!(", tls_ca_file: \"{}\"", c.display()))
                    .unwrap_or_default()
            ),
        )
    };
    let dir = temp_dir("pg-tls");
    let http = free_port();
    let mut mdc = Collector::start(&dir, &tls_cfg(http, Some(&ca)), &[]);
    let count = || -> i64 {
        pg.client()
            .query_one("SELECT count(*) FROM marketdata.trades", &[])
            .map(|r| r.get(0))
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || count() > 100),
        "{}",
        mdc.log_text()
    );
    let encrypted: i64 = pg
        .client()
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.datname = 'postgres'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "the sink's connection uses TLS");
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", mdc.log_text());
    // Without the private CA the server's certificate is not trusted: not ready, and why.
    let dir2 = temp_dir("pg-tls-untrusted");
    let http2 = free_port();
    let mut mdc = Collector::start(&dir2, &tls_cfg(http2, None), &[]);
    assert!(wait_until(Duration::from_secs(20), || http_get(
        http2, "/readyz"
    )
    .0 == 503));
    let why = http_get(http2, "/readyz").1;
    assert!(
        why.contains("sink postgres unreachable") && why.contains("UnknownIssuer"),
        "{why}"
    );
    // (A graceful stop would retry the queued rows for 30 s first: not the point here.)
    let _ = mdc.child.kill();
    let _ = mdc.child.wait();
}
