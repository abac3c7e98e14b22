//! Stage 4 of the hot path: a normalized [`Event`](crate::event::Event) to bytes, into reused buffers.
//!
//! - [`json`]: the JSON Lines object (a public contract, documented in README.md).
//! - [`protobuf`]: the `Envelope` of `proto/marketdata.proto`.
//!
//! Each encoder appends to a caller-owned `Vec<u8>`; once that buffer has grown to the largest event it
//! never allocates again.

pub mod json;
pub mod protobuf;
pub mod record;

/// Which encodings the enabled sinks need; the parser only produces those.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Formats {
    pub json: bool,
    pub protobuf: bool,
    /// The exchange's own message the event came from (`Record::raw`), for sinks that keep it.
    pub raw: bool,
}

impl Formats {
    pub const JSON: Formats = Formats {
        json: true,
        protobuf: false,
        raw: false,
    };
    pub const PROTOBUF: Formats = Formats {
        json: false,
        protobuf: true,
        raw: false,
    };
    pub const NONE: Formats = Formats {
        json: false,
        protobuf: false,
        raw: false,
    };

    /// The union of two requirements.
    pub fn union(self, other: Formats) -> Formats {
        Formats {
            json: self.json || other.json,
            protobuf: self.protobuf || other.protobuf,
            raw: self.raw || other.raw,
        }
    }
}
