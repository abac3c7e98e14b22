//! The unit that travels reader -> parser: one WebSocket text message in a recycled buffer.

/// Padding simd-json needs after the document so it can parse in place without copying.
pub const PADDING: usize = simd_json::INPUT_PADDING;

/// One received message. Lives in a ring slot; `buf` keeps its capacity across messages.
#[derive(Debug)]
pub struct Frame {
    /// Connection that received it (index into the topology's connection table).
    pub conn: u32,
    /// Session of that connection: a planned rollover runs two sessions of one connection side by
    /// side for a moment, and the parser tells their frames apart by this number.
    pub session: u32,
    /// Exchange plan that decodes it (index into the topology's exchange table).
    pub source: u16,
    /// What the frame carries.
    pub kind: FrameKind,
    /// Receive time (ns, CLOCK_REALTIME), taken right after the socket read returned it.
    pub recv_ts_ns: i64,
    /// Length of the message in `buf` (the rest is padding).
    pub len: usize,
    /// Message bytes followed by [`PADDING`] bytes; parsed and unescaped in place.
    pub buf: Vec<u8>,
}

/// Data or a connection-level marker the parser must see in order with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text message from the exchange.
    Data,
    /// The connection was (re)established; streams start again from here.
    Connected,
    /// The connection ended; data after the last frame may be missing until the next `Connected`.
    Disconnected,
    /// Every subscription message of the session has been sent.
    Subscribed,
    /// The reader skipped a message of this connection (e.g. larger than `max_message_bytes`).
    Dropped,
}

impl Frame {
    /// An empty frame whose buffer can hold `capacity` message bytes without reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        Frame {
            conn: 0,
            session: 0,
            source: 0,
            kind: FrameKind::Data,
            recv_ts_ns: 0,
            len: 0,
            buf: Vec::with_capacity(capacity + PADDING),
        }
    }

    /// Gives back memory after an outsized message: a slot that grew beyond `limit` bytes returns to
    /// `keep` bytes, so a burst of huge messages cannot pin `ring_capacity` x `max_message_bytes`.
    #[inline]
    pub fn shrink_if_above(&mut self, limit: usize, keep: usize) {
        if self.buf.capacity() > limit {
            self.buf = Vec::with_capacity(keep + PADDING);
            self.len = 0;
        }
    }

    /// Copies `msg` in and pads it. Allocates only if `msg` is larger than any message before it.
    #[inline]
    pub fn fill(&mut self, msg: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(msg);
        self.buf.resize(msg.len() + PADDING, 0);
        self.len = msg.len();
        self.kind = FrameKind::Data;
    }
}
