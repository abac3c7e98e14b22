//! The schema at connect: migrations applied under an advisory lock (several collectors may
//! start at once), then every table checked against the columns the rows carry.

use super::schema::{self, Col, Layout, Table, qualified};

/// A migration step's error: what the server refused (SQL) needs a person, so it is a config
/// error; a lost connection is retried.
fn migration_error(v: i32, e: postgres::Error) -> String {
    if e.as_db_error().is_some() {
        format!("config error: sinks.postgres: migration {v}: {e}")
    } else {
        format!("migration {v}: {e}")
    }
}

/// Applies the migrations not yet recorded in `<schema>.schema_version`, one transaction each,
/// under an advisory lock (several collectors may start at once).
pub fn migrate(c: &mut postgres::Client, schema: &str, layout: Layout) -> Result<(), String> {
    let versions = qualified(schema, "schema_version");
    c.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS {versions} (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ))
    .map_err(|e| format!("schema: {e}"))?;
    for (v, sql) in schema::migrations(schema, layout) {
        let mut tx = c.transaction().map_err(|e| migration_error(v, e))?;
        tx.execute("SELECT pg_advisory_xact_lock(7271996)", &[])
            .map_err(|e| migration_error(v, e))?;
        let done = tx
            .query_opt(
                &format!("SELECT 1 FROM {versions} WHERE version = $1"),
                &[&v],
            )
            .map_err(|e| migration_error(v, e))?
            .is_some();
        if !done {
            tx.batch_execute(&sql).map_err(|e| migration_error(v, e))?;
            tx.execute(
                &format!("INSERT INTO {versions} (version) VALUES ($1)"),
                &[&v],
            )
            .map_err(|e| migration_error(v, e))?;
            log::info!("event=postgres_migrated schema={schema} version={v}");
        }
        tx.commit().map_err(|e| migration_error(v, e))?;
    }
    Ok(())
}

/// Every table has the columns and types the rows carry (someone may have altered one by hand).
pub fn check_tables(
    c: &mut postgres::Client,
    schema: &str,
    tables: &[Table],
) -> Result<(), String> {
    let rows = c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = $1",
            &[&schema],
        )
        .map_err(|e| format!("columns: {e}"))?;
    let have: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for t in tables {
        for (col, ty) in &t.columns {
            let want = match ty {
                Col::Text => "text",
                Col::Numeric => "numeric",
                Col::Int8 => "bigint",
                Col::Bool => "boolean",
                Col::Jsonb | Col::Raw => "jsonb",
                Col::Time(_) => "timestamp with time zone",
            };
            match have.iter().find(|(tn, cn, _)| tn == t.name && cn == col) {
                Some((_, _, dt)) if dt == want => {}
                Some((_, _, dt)) => {
                    return Err(format!(
                        "config error: sinks.postgres: column {schema}.{}.{col} is {dt}, expected {want} (altered by hand? restore it or use another schema)",
                        t.name
                    ));
                }
                None => {
                    return Err(format!(
                        "config error: sinks.postgres: column {schema}.{}.{col} is missing (altered by hand? restore it or use another schema)",
                        t.name
                    ));
                }
            }
        }
        let extra: Vec<&str> = have
            .iter()
            .filter(|(tn, cn, _)| tn == t.name && !t.columns.iter().any(|(c, _)| c == cn))
            .map(|(_, cn, _)| cn.as_str())
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "config error: sinks.postgres: table {schema}.{} has columns the sink does not write: {extra:?} (the staging copy would not line up)",
                t.name
            ));
        }
    }
    Ok(())
}
