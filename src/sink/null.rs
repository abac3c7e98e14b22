//! `sinks.null`: discards everything (benchmarks isolate the pipeline with it).

use super::{Sink, SinkError, SinkFactory, SinkPlan};
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::setting::{ConfigError, section};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NullConfig {
    /// Turn the sink on.
    #[serde(default)]
    enabled: bool,
    /// Which encoding the pipeline still produces for it: `jsonl`, `protobuf` or `none`.
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    "protobuf".into()
}

#[derive(Debug)]
struct NullPlan(NullConfig);

pub struct Factory;
pub static FACTORY: Factory = Factory;

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "null"
    }

    fn plan(&self, value: serde_yaml::Value) -> Result<Option<Box<dyn SinkPlan>>, ConfigError> {
        let c: NullConfig = section("sinks.null", value)?;
        if !["jsonl", "protobuf", "none"].contains(&c.format.as_str()) {
            return Err(ConfigError::new(
                "sinks.null.format",
                format!("`{}` is not one of jsonl, protobuf, none", c.format),
            ));
        }
        Ok(c.enabled
            .then(|| Box::new(NullPlan(c)) as Box<dyn SinkPlan>))
    }
}

impl SinkPlan for NullPlan {
    fn name(&self) -> &'static str {
        "null"
    }
    fn formats(&self) -> Formats {
        match self.0.format.as_str() {
            "jsonl" => Formats::JSON,
            "protobuf" => Formats::PROTOBUF,
            _ => Formats::NONE,
        }
    }
    fn effective(&self) -> serde_yaml::Value {
        serde_yaml::to_value(&self.0).unwrap_or(serde_yaml::Value::Null)
    }
    fn start(
        &self,
        _metrics: &std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(NullSink))
    }
}

struct NullSink;

impl Sink for NullSink {
    fn name(&self) -> &'static str {
        "null"
    }
    fn write(&mut self, _rec: &Record) -> Result<(), SinkError> {
        Ok(())
    }
    fn tick(&mut self, _now_ns: i64) -> Result<(), SinkError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
