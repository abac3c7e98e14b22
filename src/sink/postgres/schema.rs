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
}

impl Col {
    pub fn sql(self) -> &'static str {
        match self {
            Col::Text => "TEXT",
            Col::Numeric => "NUMERIC",
            Col::Int8 => "BIGINT",
            Col::Bool => "BOOLEAN",
            Col::Jsonb => "JSONB",
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

/// Migration 1: every table with its natural-key index and a (symbol, time) index.
pub fn migration_1(schema: &str) -> String {
    let mut sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n");
    for t in tables() {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|(c, ty)| format!("\"{c}\" {}", ty.sql()))
            .collect();
        let q = qualified(schema, t.name);
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {q} ({});\n",
            cols.join(", ")
        ));
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

/// The migrations in order; `schema_version` records the last applied.
pub fn migrations(schema: &str) -> Vec<(i32, String)> {
    vec![(1, migration_1(schema))]
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
        assert!(migration_1("marketdata").contains("\"marketdata\".\"trades\""));
    }
}
