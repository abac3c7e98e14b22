//! The tables: one per event type, columns named as the JSON Lines fields (SQL users and file
//! users read the same contract), typed by what the field holds: exact `NUMERIC` for prices and
//! quantities, `BIGINT` for ids and nanosecond times, `TIMESTAMPTZ` beside each nanosecond event
//! time, `JSONB` for book levels. Each table has a unique index on its natural key, so a batch
//! written twice (a retry after a lost connection, a replayed spool) adds no row.
//!
//! Migrations are forward-only and idempotent, recorded in `<schema>.schema_version`.

use crate::event::EventKind;

/// How a column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Text,
    Numeric,
    Int8,
    Bool,
    Jsonb,
    /// `TIMESTAMPTZ` made from the nanosecond field named.
    Time(&'static str),
    /// `JSONB`: the exchange's message the row came from (`raw: true`), NULL for rows of our
    /// own (gaps, book snapshots).
    Raw,
}

impl Col {
    pub fn sql(self) -> &'static str {
        match self {
            Col::Text => "TEXT",
            Col::Numeric => "NUMERIC",
            Col::Int8 => "BIGINT",
            Col::Bool => "BOOLEAN",
            Col::Jsonb | Col::Raw => "JSONB",
            Col::Time(_) => "TIMESTAMPTZ",
        }
    }
}

/// One table.
pub struct Table {
    pub kind: EventKind,
    pub name: &'static str,
    /// (column = JSON field, how it is written); the common columns first.
    pub columns: Vec<(&'static str, Col)>,
    /// The natural key: a row with the same values is the same event.
    pub key: &'static [&'static str],
}

const COMMON: &[(&str, Col)] = &[
    ("exchange", Col::Text),
    ("market", Col::Text),
    ("symbol", Col::Text),
    ("exchange_ts", Col::Time("exchange_ts_ns")),
    ("exchange_ts_ns", Col::Int8),
    ("receive_ts", Col::Time("receive_ts_ns")),
    ("receive_ts_ns", Col::Int8),
    ("transaction_ts_ns", Col::Int8),
    ("raw", Col::Raw),
];

/// The type of a field by its name (the JSON Lines contract, README "Output").
fn col_of(field: &'static str) -> Col {
    match field {
        "bids" | "asks" => Col::Jsonb,
        "snapshot" | "resyncing" => Col::Bool,
        "trade_id"
        | "agg_id"
        | "first_trade_id"
        | "last_trade_id"
        | "first_update_id"
        | "last_update_id"
        | "prev_last_update_id"
        | "update_id"
        | "depth"
        | "checksum"
        | "trade_seq"
        | "tick_direction"
        | "next_funding_time_ns"
        | "funding_time_ns"
        | "from_ts_ns"
        | "to_ts_ns" => Col::Int8,
        "side" | "trade_type" | "trade_id_text" | "liquidation" | "block_trade_id" | "combo_id"
        | "combo_trade_id" | "order_type" | "time_in_force" | "status" | "position_side"
        | "kind" | "period" | "underlying_index" | "index_name" | "stream" | "reason" => Col::Text,
        _ => Col::Numeric,
    }
}

/// Every table, in `EventKind` order.
pub fn tables() -> Vec<Table> {
    use EventKind::*;
    let t = |kind, name, fields: &[&'static str], key: &'static [&'static str]| {
        let mut columns: Vec<(&'static str, Col)> = COMMON.to_vec();
        columns.extend(fields.iter().map(|f| (*f, col_of(f))));
        Table {
            kind,
            name,
            columns,
            key,
        }
    };
    vec![
        t(
            Trade,
            "trades",
            &[
                "trade_id",
                "price",
                "qty",
                "side",
                "trade_type",
                "trade_id_text",
                "trade_seq",
                "mark_price",
                "index_price",
                "iv",
                "liquidation",
                "tick_direction",
                "block_trade_id",
                "contracts",
                "combo_id",
                "combo_trade_id",
            ],
            &["exchange", "market", "symbol", "trade_id", "exchange_ts"],
        ),
        t(
            AggTrade,
            "agg_trades",
            &[
                "agg_id",
                "first_trade_id",
                "last_trade_id",
                "price",
                "qty",
                "side",
                "normal_qty",
            ],
            &["exchange", "market", "symbol", "agg_id", "exchange_ts"],
        ),
        t(
            DepthDiff,
            "depth_diffs",
            &[
                "first_update_id",
                "last_update_id",
                "prev_last_update_id",
                "snapshot",
                "checksum",
                "resyncing",
                "bids",
                "asks",
            ],
            &[
                "exchange",
                "market",
                "symbol",
                "first_update_id",
                "last_update_id",
                "exchange_ts",
            ],
        ),
        t(
            BookTicker,
            "book_tickers",
            &["update_id", "bid_price", "bid_qty", "ask_price", "ask_qty"],
            &[
                "exchange",
                "market",
                "symbol",
                "update_id",
                "receive_ts_ns",
                "exchange_ts",
            ],
        ),
        t(
            BookSnapshot,
            "book_snapshots",
            &["update_id", "depth", "bids", "asks"],
            &[
                "exchange",
                "market",
                "symbol",
                "update_id",
                "receive_ts_ns",
                "exchange_ts",
            ],
        ),
        t(
            MarkPrice,
            "mark_prices",
            &[
                "mark_price",
                "index_price",
                "estimated_settle_price",
                "funding_rate",
                "next_funding_time_ns",
                "funding_8h",
                "mark_iv",
                "underlying_price",
                "underlying_index",
                "delta",
                "gamma",
                "vega",
                "theta",
                "rho",
                "bid_iv",
                "ask_iv",
                "interest_rate",
                "interest_value",
                "settlement_price",
            ],
            &[
                "exchange",
                "market",
                "symbol",
                "receive_ts_ns",
                "exchange_ts",
            ],
        ),
        t(
            Liquidation,
            "liquidations",
            &[
                "side",
                "order_type",
                "time_in_force",
                "price",
                "avg_price",
                "qty",
                "filled_qty",
                "last_filled_qty",
                "status",
                "position_side",
            ],
            &[
                "exchange",
                "market",
                "symbol",
                "receive_ts_ns",
                "exchange_ts",
            ],
        ),
        t(
            OpenInterest,
            "open_interest",
            &[
                "open_interest",
                "open_interest_value",
                "open_interest_ccy",
                "open_interest_usd",
            ],
            &["exchange", "market", "symbol", "exchange_ts"],
        ),
        t(
            LongShortRatio,
            "long_short_ratios",
            &[
                "kind",
                "period",
                "long_short_ratio",
                "long_account",
                "short_account",
            ],
            &[
                "exchange",
                "market",
                "symbol",
                "kind",
                "period",
                "exchange_ts",
            ],
        ),
        t(
            FundingRate,
            "funding_rates",
            &[
                "funding_rate",
                "funding_time_ns",
                "mark_price",
                "next_funding_rate",
                "next_funding_time_ns",
            ],
            &[
                "exchange",
                "market",
                "symbol",
                "funding_time_ns",
                "exchange_ts",
            ],
        ),
        t(
            Gap,
            "gaps",
            &["stream", "reason", "from_ts_ns", "to_ts_ns"],
            &[
                "exchange",
                "market",
                "symbol",
                "stream",
                "reason",
                "from_ts_ns",
                "to_ts_ns",
                "exchange_ts",
            ],
        ),
        t(
            VolatilityIndex,
            "volatility_index",
            &["index_name", "volatility"],
            &["exchange", "market", "symbol", "exchange_ts"],
        ),
    ]
}

/// `"schema"."name"`, quoted (the schema name is checked at config time).
pub fn qualified(schema: &str, name: &str) -> String {
    format!("\"{schema}\".\"{name}\"")
}

/// How tables are split by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// TimescaleDB is available: hypertables on `exchange_ts`, compressed after 7 days
    /// (segmented by symbol).
    Timescale,
    /// Plain PostgreSQL: native range partitions by UTC day on `exchange_ts`, created ahead of
    /// time ([`day_partitions`]), and a default partition for rows outside them (e.g. a
    /// `book_ticker` without exchange time, or a REST series' history).
    Partitions,
}

/// Migration 1: every table with its natural-key index and a (symbol, time) index, split by
/// time as `layout` says. (Every key holds `exchange_ts`: a unique index of a partitioned table
/// or hypertable must include the time column.)
pub fn migration_1(schema: &str, layout: Layout) -> String {
    let mut sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n");
    if layout == Layout::Timescale {
        sql.push_str("CREATE EXTENSION IF NOT EXISTS timescaledb;\n");
    }
    for t in tables() {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|(c, ty)| format!("\"{c}\" {}", ty.sql()))
            .collect();
        let q = qualified(schema, t.name);
        let split = match layout {
            Layout::Partitions => " PARTITION BY RANGE (exchange_ts)",
            Layout::Timescale => "",
        };
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {q} ({}){split};\n",
            cols.join(", ")
        ));
        match layout {
            Layout::Partitions => sql.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {q} DEFAULT;\n",
                qualified(schema, &format!("{}_default", t.name))
            )),
            Layout::Timescale => sql.push_str(&format!(
                "SELECT create_hypertable('{q}', 'exchange_ts', if_not_exists => TRUE);\n\
                 ALTER TABLE {q} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol');\n\
                 SELECT add_compression_policy('{q}', INTERVAL '7 days', if_not_exists => TRUE);\n"
            )),
        }
        // Key fields are always present in their event (README "Output"), so no NULL escapes.
        let key: Vec<String> = t.key.iter().map(|k| format!("\"{k}\"")).collect();
        sql.push_str(&format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS \"{n}_natural_key\" ON {q} ({});\n",
            key.join(", "),
            n = t.name
        ));
        sql.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS \"{n}_symbol_time\" ON {q} (symbol, exchange_ts);\n",
            n = t.name
        ));
    }
    sql
}

/// A table's natural key in the order a B-tree compares fastest: the numeric and time columns
/// first (an id or a time tells rows apart at the first column), then the text columns, most
/// selective first, compared bytewise (`COLLATE "C"`: the same equality, no locale).
pub fn key_columns(t: &Table) -> Vec<String> {
    let is_text = |k: &&str| t.columns.iter().any(|(c, ty)| c == k && *ty == Col::Text);
    let mut cols: Vec<String> = t
        .key
        .iter()
        .filter(|k| !is_text(k))
        .map(|k| format!("\"{k}\""))
        .collect();
    cols.extend(
        t.key
            .iter()
            .rev()
            .filter(|k| is_text(k))
            .map(|k| format!("\"{k}\" COLLATE \"C\"")),
    );
    cols
}

/// Migration 2: each natural-key index of migration 1 (text columns first: every comparison
/// went through `exchange`, `market` and `symbol`, equal in most rows, before the id; a third
/// of the server's CPU per row under COPY) replaced by one on [`key_columns`]. Same columns,
/// same uniqueness.
pub fn migration_2(schema: &str) -> String {
    let mut sql = String::new();
    for t in tables() {
        sql.push_str(&format!(
            "DROP INDEX IF EXISTS {};\nCREATE UNIQUE INDEX IF NOT EXISTS \"{n}_key\" ON {} ({});\n",
            qualified(schema, &format!("{}_natural_key", t.name)),
            qualified(schema, t.name),
            key_columns(&t).join(", "),
            n = t.name
        ));
    }
    sql
}

/// The migrations in order; `schema_version` records the last applied.
pub fn migrations(schema: &str, layout: Layout) -> Vec<(i32, String)> {
    vec![(1, migration_1(schema, layout)), (2, migration_2(schema))]
}

/// Partitions for the UTC days `from_day`..`from_day + days` (days since the Unix epoch) of every
/// table: idempotent, run at start and every hour.
pub fn day_partitions(schema: &str, from_day: i64, days: i64) -> String {
    let mut sql = String::new();
    for t in tables() {
        for d in from_day..from_day + days {
            let (y, m, dd, _) = crate::clock::utc_ymdh(d * 86_400);
            let (y2, m2, d2, _) = crate::clock::utc_ymdh((d + 1) * 86_400);
            sql.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ('{y:04}-{m:02}-{dd:02} 00:00:00+00') TO ('{y2:04}-{m2:02}-{d2:02} 00:00:00+00');\n",
                qualified(schema, &format!("{}_p{y:04}{m:02}{dd:02}", t.name)),
                qualified(schema, t.name)
            ));
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_per_event_type_with_the_json_field_names() {
        let ts = tables();
        assert_eq!(ts.len(), EventKind::COUNT);
        for (t, k) in ts.iter().zip(EventKind::ALL) {
            assert_eq!(t.kind, k);
            for key in t.key {
                assert!(
                    t.columns.iter().any(|(c, _)| c == key),
                    "{}: key {key}",
                    t.name
                );
            }
        }
        let trades = &ts[0];
        let col = |n: &str| trades.columns.iter().find(|(c, _)| *c == n).map(|c| c.1);
        assert_eq!(col("price"), Some(Col::Numeric));
        assert_eq!(col("trade_id"), Some(Col::Int8));
        assert_eq!(col("exchange_ts"), Some(Col::Time("exchange_ts_ns")));
        let plain = migration_1("marketdata", Layout::Partitions);
        assert!(plain.contains("\"marketdata\".\"trades\""));
        assert!(plain.contains("PARTITION BY RANGE (exchange_ts)"));
        assert!(plain.contains("PARTITION OF \"marketdata\".\"trades\" DEFAULT"));
        assert!(!plain.contains("timescaledb"));
        // The TimescaleDB path, unit-tested (the extension cannot be installed on this machine).
        let ts = migration_1("marketdata", Layout::Timescale);
        assert!(ts.starts_with("CREATE SCHEMA IF NOT EXISTS \"marketdata\";\nCREATE EXTENSION IF NOT EXISTS timescaledb;"));
        assert!(ts.contains(
            "SELECT create_hypertable('\"marketdata\".\"trades\"', 'exchange_ts', if_not_exists => TRUE);"
        ));
        assert!(ts.contains("add_compression_policy('\"marketdata\".\"gaps\"', INTERVAL '7 days'"));
        assert!(!ts.contains("PARTITION"));
        let m2 = migration_2("md");
        assert!(m2.contains("DROP INDEX IF EXISTS \"md\".\"trades_natural_key\";\nCREATE UNIQUE INDEX IF NOT EXISTS \"trades_key\" ON \"md\".\"trades\" (\"trade_id\", \"exchange_ts\", \"symbol\" COLLATE \"C\", \"market\" COLLATE \"C\", \"exchange\" COLLATE \"C\");"), "{m2}");
        for t in tables() {
            assert_eq!(key_columns(&t).len(), t.key.len(), "{}", t.name);
        }
    }

    #[test]
    fn day_partitions_cover_whole_utc_days() {
        let sql = day_partitions("md", 20_818, 2);
        assert!(sql.contains(
            "CREATE TABLE IF NOT EXISTS \"md\".\"trades_p20261231\" PARTITION OF \"md\".\"trades\" FOR VALUES FROM ('2026-12-31 00:00:00+00') TO ('2027-01-01 00:00:00+00');"
        ));
        assert!(sql.contains("\"md\".\"gaps_p20270101\""));
    }
}
