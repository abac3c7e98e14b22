//! Helpers shared by the end-to-end tests: run the real `mdc` binary against the simulator, read
//! what the file sink wrote, and derive the expected normalized events from the raw messages.
#![allow(dead_code)]

pub mod fuzz;
pub mod kafka;
pub mod postgres;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mdc-test-{tag}-{}-{}",
        std::process::id(),
        mdc::clock::realtime_ns()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free TCP port on 127.0.0.1 (bound and released; tiny race accepted in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The collector as a child process.
pub struct Collector {
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Collector {
    /// Writes `config` to `<dir>/config.yaml` and starts `mdc run` there with `env`.
    pub fn start(dir: &Path, config: &str, env: &[(&str, String)]) -> Collector {
        let cfg = dir.join("config.yaml");
        std::fs::write(&cfg, config).unwrap();
        Collector::spawn(dir, &["run", "--config", cfg.to_str().unwrap()], env)
    }

    /// `mdc job` in `dir`, configured by `env` only.
    #[allow(dead_code)]
    pub fn start_job(dir: &Path, env: &[(&str, String)]) -> Collector {
        Collector::spawn(dir, &["job"], env)
    }

    fn spawn(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Collector {
        let log = dir.join("mdc.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdc"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("mdc.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("RUST_LOG", "info");
        Collector {
            child: cmd.spawn().expect("start mdc"),
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// The process id (for /proc sampling).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    #[allow(dead_code)]
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM; waits up to `limit`; returns the exit status and how long it took.
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return (st, t0.elapsed());
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "mdc did not exit within {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Keep the directory (config, log, output) of a failed test for inspection.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Every file of the sink directory for `stem` (a type name), in rotation order.
pub fn files(dir: &Path, stem: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{stem}.")))
    });
    // <stem>.<date>T<hh>.<n>.<ext>: order by hour then by n.
    v.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let parts: Vec<&str> = name.split('.').collect();
        (parts[1].to_string(), parts[2].parse::<u64>().unwrap_or(0))
    });
    v
}

pub const TYPES: [&str; 4] = ["trade", "agg_trade", "depth_diff", "book_ticker"];

/// Every streamed event type of USD-M.
pub const USDM_TYPES: [&str; 6] = [
    "trade",
    "agg_trade",
    "depth_diff",
    "book_ticker",
    "mark_price",
    "liquidation",
];

/// JSON Lines objects of the given types.
pub fn read_types(dir: &Path, types: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for t in types {
        for f in files(dir, t) {
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
            }
        }
    }
    out
}

/// All JSON Lines objects the file sink wrote, every type.
pub fn read_jsonl(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for t in TYPES {
        for f in files(dir, t) {
            let text = std::fs::read_to_string(&f).unwrap();
            for line in text.lines() {
                out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
            }
        }
    }
    out
}

/// Lines written so far (cheap progress check while the collector runs).
pub fn count_lines(dir: &Path) -> usize {
    TYPES
        .iter()
        .flat_map(|t| files(dir, t))
        .map(|f| {
            std::fs::read(&f)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0)
        })
        .sum()
}

/// Polls `f` every 50 ms until true or `limit`; true if it became true.
/// Waits until the file sink under `data` holds `n` lines; fails with the collector's log.
#[allow(dead_code)]
pub fn await_lines(mdc: &Collector, data: &Path, n: u64, limit: Duration) {
    assert!(
        wait_until(limit, || count_lines(data) as u64 >= n),
        "{} of {n} lines; log:\n{}",
        count_lines(data),
        mdc.log_text()
    );
}

/// Waits until `/readyz` on `http` answers `code`; fails with the collector's log.
#[allow(dead_code)]
pub fn await_readyz(mdc: &Collector, http: u16, code: u16, limit: Duration) {
    assert!(
        wait_until(limit, || http_get(http, "/readyz").0 == code),
        "/readyz is not {code}; log:\n{}",
        mdc.log_text()
    );
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// The normalized event a raw Binance spot combined-stream message must become, without
/// `receive_ts_ns` (only the collector knows it).
pub fn expected_event(raw: &str) -> Value {
    expected_events(raw, "spot").remove(0)
}

/// The normalized events a raw Binance combined-stream message (spot or USD-M; arrays give one
/// event per element) must become, without `receive_ts_ns`.
pub fn expected_events(raw: &str, market: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(raw).unwrap();
    let items: Vec<Value> = match v["data"].as_array() {
        Some(a) => a.clone(),
        None => vec![v["data"].clone()],
    };
    items
        .iter()
        // USD-M `NA` records are not trades: skipped by default.
        .filter(|d| !(d["e"] == "trade" && d["X"] == "NA"))
        .map(|d| expected_one(d, market))
        .collect()
}

fn expected_one(d: &Value, market: &str) -> Value {
    let side = |m: &Value| if m.as_bool().unwrap() { "sell" } else { "buy" };
    let ns = |x: &Value| x.as_i64().unwrap() * 1_000_000;
    let opt = |x: &Value| if x.is_null() { json!("") } else { x.clone() };
    let mut e = json!({"exchange": "binance", "market": market});
    let o = e.as_object_mut().unwrap();
    let mut put = |k: &str, x: Value| {
        o.insert(k.into(), x);
    };
    match d.get("e").and_then(Value::as_str) {
        Some("trade") => {
            put("symbol", d["s"].clone());
            put("type", json!("trade"));
            put("exchange_ts_ns", json!(ns(&d["T"])));
            put("trade_id", d["t"].clone());
            put("price", d["p"].clone());
            put("qty", d["q"].clone());
            put("side", json!(side(&d["m"])));
            if let Some(x) = d["X"].as_str() {
                put("trade_type", json!(x.to_ascii_lowercase()));
            }
        }
        Some("aggTrade") => {
            put("symbol", d["s"].clone());
            put("type", json!("agg_trade"));
            put("exchange_ts_ns", json!(ns(&d["T"])));
            put("agg_id", d["a"].clone());
            put("first_trade_id", d["f"].clone());
            put("last_trade_id", d["l"].clone());
            put("price", d["p"].clone());
            put("qty", d["q"].clone());
            put("side", json!(side(&d["m"])));
            if !d["nq"].is_null() {
                put("normal_qty", d["nq"].clone());
            }
        }
        Some("depthUpdate") => {
            put("symbol", d["s"].clone());
            put("type", json!("depth_diff"));
            put("exchange_ts_ns", json!(ns(&d["E"])));
            put("first_update_id", d["U"].clone());
            put("last_update_id", d["u"].clone());
            if !d["pu"].is_null() {
                put("prev_last_update_id", d["pu"].clone());
            }
            if !d["T"].is_null() {
                put("transaction_ts_ns", json!(ns(&d["T"])));
            }
            put("bids", d["b"].clone());
            put("asks", d["a"].clone());
        }
        Some("markPriceUpdate") => {
            put("symbol", d["s"].clone());
            put("type", json!("mark_price"));
            put("exchange_ts_ns", json!(ns(&d["E"])));
            put("mark_price", d["p"].clone());
            put("index_price", opt(&d["i"]));
            put("estimated_settle_price", opt(&d["P"]));
            put("funding_rate", opt(&d["r"]));
            put("next_funding_time_ns", json!(ns(&d["T"])));
        }
        Some("forceOrder") => {
            let x = &d["o"];
            put("symbol", x["s"].clone());
            put("type", json!("liquidation"));
            put("exchange_ts_ns", json!(ns(&x["T"])));
            put("side", json!(x["S"].as_str().unwrap().to_lowercase()));
            put("order_type", x["o"].clone());
            put("time_in_force", x["f"].clone());
            put("price", x["p"].clone());
            put("avg_price", x["ap"].clone());
            put("qty", x["q"].clone());
            put("filled_qty", x["z"].clone());
            put("status", x["X"].clone());
            if !x["l"].is_null() {
                put("last_filled_qty", x["l"].clone());
            }
        }
        None | Some("bookTicker") => {
            put("symbol", d["s"].clone());
            put("type", json!("book_ticker"));
            put(
                "exchange_ts_ns",
                json!(if d["E"].is_null() { 0 } else { ns(&d["E"]) }),
            );
            if !d["T"].is_null() {
                put("transaction_ts_ns", json!(ns(&d["T"])));
            }
            put("update_id", d["u"].clone());
            put("bid_price", d["b"].clone());
            put("bid_qty", d["B"].clone());
            put("ask_price", d["a"].clone());
            put("ask_qty", d["A"].clone());
        }
        Some(other) => panic!("unexpected {other}"),
    }
    e
}

/// Checks that `got` holds exactly the events of `sent` (raw messages): same multiset, each
/// exactly once, and the same order within every (type, symbol) stream.
pub fn assert_exactly_once(sent: &[String], got: &[Value]) {
    assert_exactly_once_market(sent, got, "spot")
}

/// `got` holds, per (type, symbol) stream, exactly the first events of `sent` in order: nothing
/// missing before the last one written, nothing twice (a run stopped while data kept coming).
#[allow(dead_code)]
pub fn assert_prefix_once(sent: &[String], got: &[Value]) {
    use std::collections::BTreeMap;
    let key = |v: &Value| {
        (
            v["type"].as_str().unwrap().to_string(),
            v["symbol"].as_str().unwrap().to_string(),
        )
    };
    let mut want: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for raw in sent {
        for e in expected_events(raw, "spot") {
            want.entry(key(&e)).or_default().push(e);
        }
    }
    let mut have: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for g in got {
        let mut g = g.clone();
        g.as_object_mut().unwrap().remove("receive_ts_ns");
        g.as_object_mut().unwrap().remove("resyncing");
        have.entry(key(&g)).or_default().push(g);
    }
    for (k, h) in &have {
        let w = want.get(k).unwrap_or_else(|| panic!("{k:?} never sent"));
        assert!(h.len() <= w.len(), "{k:?}: more written than sent");
        for (i, (a, b)) in w.iter().zip(h).enumerate() {
            assert_eq!(a, b, "{k:?} event #{i} differs (hole or copy)");
        }
    }
}

/// [`assert_exactly_once`] for a given market; `resyncing` marks on depth diffs are ignored.
pub fn assert_exactly_once_market(sent: &[String], got: &[Value], market: &str) {
    use std::collections::BTreeMap;
    let key = |v: &Value| {
        (
            v["type"].as_str().unwrap().to_string(),
            v["symbol"].as_str().unwrap().to_string(),
        )
    };
    let mut want: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for raw in sent {
        for e in expected_events(raw, market) {
            want.entry(key(&e)).or_default().push(e);
        }
    }
    let mut have: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for g in got {
        let ts = g["receive_ts_ns"].as_i64().expect("receive_ts_ns");
        assert!(
            ts > 1_600_000_000_000_000_000,
            "receive_ts_ns is a realtime ns timestamp: {ts}"
        );
        let mut g = g.clone();
        g.as_object_mut().unwrap().remove("receive_ts_ns");
        g.as_object_mut().unwrap().remove("resyncing");
        have.entry(key(&g)).or_default().push(g);
    }
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        have.keys().collect::<Vec<_>>(),
        "same streams"
    );
    for (k, w) in &want {
        let h = &have[k];
        assert_eq!(
            h.len(),
            w.len(),
            "{k:?}: {} events expected, {} written",
            w.len(),
            h.len()
        );
        for (i, (a, b)) in w.iter().zip(h).enumerate() {
            assert_eq!(a, b, "{k:?} event #{i} differs");
        }
    }
}

/// A decoded `Envelope` as the JSON Lines object it corresponds to.
pub fn envelope_json(env: &mdc::wire::Envelope) -> Value {
    use mdc::wire::envelope::Payload;
    let side = |s: i32| {
        if s == mdc::wire::Side::Buy as i32 {
            "buy"
        } else {
            "sell"
        }
    };
    let levels = |ls: &[mdc::wire::Level]| -> Value {
        Value::Array(ls.iter().map(|l| json!([l.price, l.qty])).collect())
    };
    let mut v = json!({
        "exchange": env.exchange, "market": env.market, "symbol": env.symbol, "type": env.r#type,
        "exchange_ts_ns": env.exchange_ts_ns, "receive_ts_ns": env.receive_ts_ns,
    });
    let o = v.as_object_mut().unwrap();
    if env.transaction_ts_ns != 0 {
        o.insert("transaction_ts_ns".into(), json!(env.transaction_ts_ns));
    }
    match env.payload.as_ref().unwrap() {
        Payload::Trade(t) => {
            o.insert("trade_id".into(), json!(t.trade_id));
            o.insert("price".into(), json!(t.price));
            o.insert("qty".into(), json!(t.qty));
            o.insert("side".into(), json!(side(t.side)));
            if !t.trade_type.is_empty() {
                o.insert("trade_type".into(), json!(t.trade_type));
            }
            for (k, v) in [
                ("trade_id_text", &t.trade_id_text),
                ("mark_price", &t.mark_price),
                ("index_price", &t.index_price),
                ("iv", &t.iv),
                ("liquidation", &t.liquidation),
                ("block_trade_id", &t.block_trade_id),
                ("contracts", &t.contracts),
                ("combo_id", &t.combo_id),
                ("combo_trade_id", &t.combo_trade_id),
            ] {
                if !v.is_empty() {
                    o.insert(k.into(), json!(v));
                }
            }
            if t.trade_seq != 0 {
                o.insert("trade_seq".into(), json!(t.trade_seq));
            }
            if let Some(d) = t.tick_direction {
                o.insert("tick_direction".into(), json!(d));
            }
        }
        Payload::AggTrade(t) => {
            o.insert("agg_id".into(), json!(t.agg_id));
            o.insert("first_trade_id".into(), json!(t.first_trade_id));
            o.insert("last_trade_id".into(), json!(t.last_trade_id));
            o.insert("price".into(), json!(t.price));
            o.insert("qty".into(), json!(t.qty));
            o.insert("side".into(), json!(side(t.side)));
            if !t.normal_qty.is_empty() {
                o.insert("normal_qty".into(), json!(t.normal_qty));
            }
        }
        Payload::DepthDiff(d) => {
            o.insert("first_update_id".into(), json!(d.first_update_id));
            o.insert("last_update_id".into(), json!(d.last_update_id));
            if let Some(pu) = d.prev_last_update_id {
                o.insert("prev_last_update_id".into(), json!(pu));
            }
            o.insert("bids".into(), levels(&d.bids));
            o.insert("asks".into(), levels(&d.asks));
            if d.resyncing {
                o.insert("resyncing".into(), json!(true));
            }
        }
        Payload::MarkPrice(m) => {
            o.insert("mark_price".into(), json!(m.mark_price));
            o.insert("index_price".into(), json!(m.index_price));
            o.insert(
                "estimated_settle_price".into(),
                json!(m.estimated_settle_price),
            );
            o.insert("funding_rate".into(), json!(m.funding_rate));
            o.insert("next_funding_time_ns".into(), json!(m.next_funding_time_ns));
            for (k, v) in [
                ("funding_8h", &m.funding_8h),
                ("mark_iv", &m.mark_iv),
                ("underlying_price", &m.underlying_price),
                ("underlying_index", &m.underlying_index),
                ("delta", &m.delta),
                ("gamma", &m.gamma),
                ("vega", &m.vega),
                ("theta", &m.theta),
                ("rho", &m.rho),
                ("bid_iv", &m.bid_iv),
                ("ask_iv", &m.ask_iv),
                ("interest_rate", &m.interest_rate),
                ("interest_value", &m.interest_value),
                ("settlement_price", &m.settlement_price),
            ] {
                if !v.is_empty() {
                    o.insert(k.into(), json!(v));
                }
            }
        }
        Payload::Liquidation(l) => {
            o.insert("side".into(), json!(side(l.side)));
            o.insert("order_type".into(), json!(l.order_type));
            o.insert("time_in_force".into(), json!(l.time_in_force));
            o.insert("price".into(), json!(l.price));
            o.insert("avg_price".into(), json!(l.avg_price));
            o.insert("qty".into(), json!(l.qty));
            o.insert("filled_qty".into(), json!(l.filled_qty));
            o.insert("status".into(), json!(l.status));
            if !l.last_filled_qty.is_empty() {
                o.insert("last_filled_qty".into(), json!(l.last_filled_qty));
            }
        }
        Payload::OpenInterest(x) => {
            o.insert("open_interest".into(), json!(x.open_interest));
            if !x.open_interest_value.is_empty() {
                o.insert("open_interest_value".into(), json!(x.open_interest_value));
            }
        }
        Payload::LongShortRatio(r) => {
            o.insert("kind".into(), json!(r.kind));
            o.insert("period".into(), json!(r.period));
            o.insert("long_short_ratio".into(), json!(r.long_short_ratio));
            o.insert("long_account".into(), json!(r.long_account));
            o.insert("short_account".into(), json!(r.short_account));
        }
        Payload::FundingRate(f) => {
            o.insert("funding_rate".into(), json!(f.funding_rate));
            o.insert("funding_time_ns".into(), json!(f.funding_time_ns));
            o.insert("mark_price".into(), json!(f.mark_price));
        }
        Payload::Gap(g) => {
            o.insert("stream".into(), json!(g.stream));
            o.insert("reason".into(), json!(g.reason));
            o.insert("from_ts_ns".into(), json!(g.from_ts_ns));
            o.insert("to_ts_ns".into(), json!(g.to_ts_ns));
        }
        Payload::VolatilityIndex(x) => {
            o.insert("index_name".into(), json!(x.index_name));
            o.insert("volatility".into(), json!(x.volatility));
        }
        Payload::BookSnapshot(b) => {
            o.insert("update_id".into(), json!(b.update_id));
            o.insert("depth".into(), json!(b.depth));
            o.insert("bids".into(), levels(&b.bids));
            o.insert("asks".into(), levels(&b.asks));
        }
        Payload::BookTicker(b) => {
            o.insert("update_id".into(), json!(b.update_id));
            o.insert("bid_price".into(), json!(b.bid_price));
            o.insert("bid_qty".into(), json!(b.bid_qty));
            o.insert("ask_price".into(), json!(b.ask_price));
            o.insert("ask_qty".into(), json!(b.ask_qty));
        }
    }
    v
}

/// `GET path` on 127.0.0.1:`port`: `(status, body)`; `(0, "")` when nothing answers.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_request(port, "GET", path)
}

/// `method path` over HTTP/1.0 (no body); (status, body), (0, "") when nothing answers.
pub fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    );
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The value of the `/metrics` line for `name` (a metric name, with or without its labels), or
/// `None` when absent.
pub fn metric_in(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}

/// [`metric_in`] of the collector's `/metrics` on port `http`; -1 when absent or unanswered.
pub fn metric_value(http: u16, name: &str) -> f64 {
    metric_in(&http_get(http, "/metrics").1, name).unwrap_or(-1.0)
}
