//! The unit that travels parser -> publisher -> sinks: one encoded event in recycled buffers.

use crate::event::EventKind;

/// One normalized, encoded event. Lives in a ring slot; its buffers keep their capacity.
#[derive(Debug)]
pub struct Record {
    pub kind: EventKind,
    pub exchange: &'static str,
    pub market: &'static str,
    /// The exchange's symbol (upper case); sinks use it for keys and partitioning.
    pub symbol: String,
    /// Receive time of the frame it came from (ns).
    pub recv_ts_ns: i64,
    /// When the parser finished it (ns, same clock), for stage latency.
    pub parsed_ts_ns: i64,
    /// The JSON Lines object including its trailing `\n` (empty unless a sink needs JSON).
    pub json: Vec<u8>,
    /// The Protobuf `Envelope`, no length prefix (empty unless a sink needs Protobuf).
    pub proto: Vec<u8>,
    /// The event's position in its stream ([`crate::event::Event::position`]; 0 when none) and
    /// whether it is unique there (an exchange id, not a time): sinks build message ids from it.
    pub position: u64,
    pub position_unique: bool,
    /// A sub-type some sinks route by (long/short ratios: `top-position`, `top-account`,
    /// `all-account`); `""` otherwise.
    pub variant: &'static str,
    /// The exchange's message the event came from, as received (empty unless a sink keeps it,
    /// and for events of our own: gaps, book snapshots).
    pub raw: Vec<u8>,
    /// The first record of the frame in `raw` (a frame that yields several events carries the
    /// same `raw` in each): a sink keeping one copy per frame (Kafka `format: raw`) uses it.
    pub raw_first: bool,
}

impl Record {
    /// An empty record whose buffers hold `capacity` bytes before growing.
    pub fn with_capacity(capacity: usize) -> Self {
        Record {
            kind: EventKind::Trade,
            exchange: "",
            market: "",
            symbol: String::with_capacity(32),
            recv_ts_ns: 0,
            parsed_ts_ns: 0,
            json: Vec::with_capacity(capacity),
            proto: Vec::with_capacity(capacity),
            position: 0,
            position_unique: false,
            variant: "",
            raw: Vec::new(),
            raw_first: false,
        }
    }

    /// A record of a ring whose records carry `formats`: when the exchange's message is kept
    /// (`raw`), its buffer is reserved for `frame_bytes` up front, so a message larger than any
    /// seen so far (within the frame size) never grows it on the hot path.
    pub fn for_formats(
        capacity: usize,
        frame_bytes: usize,
        formats: crate::encode::Formats,
    ) -> Self {
        let mut r = Record::with_capacity(capacity);
        if formats.raw {
            r.raw.reserve(frame_bytes);
        }
        r
    }

    /// Makes `self` a copy of `other`, reusing its buffers (no allocation once they are large
    /// enough): the hand-off to a sink's own queue.
    pub fn copy_from(&mut self, other: &Record) {
        self.kind = other.kind;
        self.exchange = other.exchange;
        self.market = other.market;
        self.symbol.clear();
        self.symbol.push_str(&other.symbol);
        self.recv_ts_ns = other.recv_ts_ns;
        self.parsed_ts_ns = other.parsed_ts_ns;
        self.json.clear();
        self.json.extend_from_slice(&other.json);
        self.proto.clear();
        self.proto.extend_from_slice(&other.proto);
        self.position = other.position;
        self.position_unique = other.position_unique;
        self.variant = other.variant;
        self.raw.clear();
        self.raw.extend_from_slice(&other.raw);
        self.raw_first = other.raw_first;
    }

    /// Gives back memory after an outsized event (see `Frame::shrink_if_above`).
    #[inline]
    pub fn shrink_if_above(&mut self, limit: usize, keep: usize) {
        if self.json.capacity() > limit {
            self.json = Vec::with_capacity(keep);
        }
        if self.proto.capacity() > limit {
            self.proto = Vec::with_capacity(keep);
        }
        if self.raw.capacity() > limit {
            self.raw = Vec::with_capacity(keep);
        }
    }
}
