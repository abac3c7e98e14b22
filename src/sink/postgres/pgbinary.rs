//! PostgreSQL's binary COPY format, written straight into a reused buffer: a batch is one
//! `COPY ... FROM STDIN (FORMAT binary)` of many rows, with no per-value boxing. Decimals go in as
//! `NUMERIC` built from the exchange's digits (exact: `"0.01000000"` keeps its eight decimals),
//! never through a float.

/// Signature, flags and header extension length of a binary COPY stream.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// End of a binary COPY stream.
pub const TRAILER: &[u8] = &[0xff, 0xff];
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// One batch being written.
#[derive(Default)]
pub struct CopyBuf {
    pub buf: Vec<u8>,
    rows: usize,
    /// Where each finished row starts (a batch the server refuses is split by rows).
    starts: Vec<usize>,
    /// Where the current row's field count goes, and how many fields it has so far.
    row_start: usize,
    fields: i16,
}

impl CopyBuf {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.rows = 0;
        self.starts.clear();
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn begin_row(&mut self) {
        if self.buf.is_empty() {
            self.buf.extend_from_slice(HEADER);
        }
        self.row_start = self.buf.len();
        self.fields = 0;
        self.buf.extend_from_slice(&0i16.to_be_bytes());
    }

    pub fn end_row(&mut self) {
        let n = self.fields.to_be_bytes();
        self.buf[self.row_start..self.row_start + 2].copy_from_slice(&n);
        self.starts.push(self.row_start);
        self.rows += 1;
    }

    /// Drops a row begun but not ended (a value that could not be encoded).
    pub fn abandon_row(&mut self) {
        self.buf.truncate(self.row_start);
        if self.rows == 0 && self.buf.len() == HEADER.len() {
            self.buf.clear();
        }
    }

    /// Rows `from..to` as they go between [`HEADER`] and [`TRAILER`].
    pub fn row_range(&self, from: usize, to: usize) -> &[u8] {
        let at = |i: usize| self.starts.get(i).copied().unwrap_or(self.buf.len());
        self.buf.get(at(from)..at(to)).unwrap_or(&[])
    }

    fn field(&mut self, bytes: &[u8]) {
        self.fields += 1;
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    pub fn null(&mut self) {
        self.fields += 1;
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn text(&mut self, s: &str) {
        self.field(s.as_bytes());
    }

    pub fn int8(&mut self, v: i64) {
        self.field(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.field(&[v as u8]);
    }

    /// `TIMESTAMPTZ` from Unix nanoseconds (PostgreSQL keeps microseconds; the exact value is in
    /// the `_ns` column beside it).
    pub fn timestamptz_ns(&mut self, ns: i64) {
        let us = ns.div_euclid(1_000) - PG_EPOCH_US;
        self.field(&us.to_be_bytes());
    }

    /// `JSONB` from JSON text (binary format version 1).
    pub fn jsonb(&mut self, json: &[u8]) {
        self.fields += 1;
        self.buf
            .extend_from_slice(&(json.len() as i32 + 1).to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(json);
    }

    /// `NUMERIC` from a plain decimal (`-?digits(.digits)?`); `false` (nothing written) when `s`
    /// is not one.
    pub fn numeric(&mut self, s: &str) -> bool {
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() && frac.is_empty()
            || !digits_ok(int)
            || !digits_ok(frac)
            || frac.len() > 16_383
            || int.len() > 131_072
        {
            return false;
        }
        let dscale = frac.len() as i16;
        // Base-10000 groups: the integer part padded on the left, the fraction on the right.
        let int = int.trim_start_matches('0');
        let lead = (4 - int.len() % 4) % 4;
        let int_groups = (int.len() + lead) / 4;
        let frac_groups = frac.len().div_ceil(4);
        let digit = |i: usize| -> u16 {
            // Digit i of the padded integer part followed by the padded fraction.
            let int_len = int_groups * 4;
            let b = if i < int_len {
                i.checked_sub(lead).and_then(|j| int.as_bytes().get(j))
            } else {
                frac.as_bytes().get(i - int_len)
            };
            b.map_or(0, |b| u16::from(b - b'0'))
        };
        let group = |g: usize| -> u16 { (0..4).fold(0u16, |acc, k| acc * 10 + digit(g * 4 + k)) };
        let total = int_groups + frac_groups;
        let first = (0..total).find(|&g| group(g) != 0);
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let Some(first) = first else {
            // Zero: no digits, weight 0, positive, the scale as written.
            self.buf.extend_from_slice(&0i16.to_be_bytes());
            self.buf.extend_from_slice(&0i16.to_be_bytes());
            self.buf.extend_from_slice(&0u16.to_be_bytes());
            self.buf.extend_from_slice(&dscale.to_be_bytes());
            self.close_field(start);
            return true;
        };
        let last = (0..total).rev().find(|&g| group(g) != 0).unwrap_or(first);
        let ndigits = (last - first + 1) as i16;
        let weight = int_groups as i16 - 1 - first as i16;
        self.buf.extend_from_slice(&ndigits.to_be_bytes());
        self.buf.extend_from_slice(&weight.to_be_bytes());
        let sign: u16 = if neg { 0x4000 } else { 0 };
        self.buf.extend_from_slice(&sign.to_be_bytes());
        self.buf.extend_from_slice(&dscale.to_be_bytes());
        for g in first..=last {
            self.buf.extend_from_slice(&group(g).to_be_bytes());
        }
        self.close_field(start);
        true
    }

    /// Fills in the length of a field written in place from `start` (its 4 length bytes).
    fn close_field(&mut self, start: usize) {
        let len = (self.buf.len() - start - 4) as i32;
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.fields += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ndigits, weight, sign, dscale, digits) of one encoded NUMERIC.
    fn numeric(s: &str) -> (i16, i16, u16, i16, Vec<u16>) {
        let mut c = CopyBuf::default();
        assert!(c.numeric(s), "{s}");
        let b = &c.buf;
        let len = i32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, b.len() - 4);
        let h = |i: usize| i16::from_be_bytes(b[4 + i * 2..6 + i * 2].try_into().unwrap());
        let n = h(0);
        let digits = (0..n as usize).map(|i| h(4 + i) as u16).collect();
        (n, h(1), h(2) as u16, h(3), digits)
    }

    #[test]
    fn numeric_matches_postgres_layout() {
        assert_eq!(numeric("61837.63000000"), (3, 1, 0, 8, vec![6, 1837, 6300]));
        assert_eq!(numeric("0.0005"), (1, -1, 0, 4, vec![5]));
        assert_eq!(numeric("0.01000000"), (1, -1, 0, 8, vec![100]));
        assert_eq!(numeric("-12.5"), (2, 0, 0x4000, 1, vec![12, 5000]));
        assert_eq!(numeric("10000"), (1, 1, 0, 0, vec![1]));
        assert_eq!(numeric("0"), (0, 0, 0, 0, vec![]));
        assert_eq!(numeric("0.00000000"), (0, 0, 0, 8, vec![]));
        // 1|2345|6789 . 0000|0000|1000 (the fraction padded on the right).
        assert_eq!(
            numeric("123456789.000000001"),
            (6, 2, 0, 9, vec![1, 2345, 6789, 0, 0, 1000])
        );
        for bad in ["", ".", "1e5", "12a", "--1", "1.2.3", " 1"] {
            assert!(!CopyBuf::default().numeric(bad), "{bad:?}");
        }
    }

    #[test]
    fn rows_and_trailer() {
        let mut c = CopyBuf::default();
        c.begin_row();
        c.int8(7);
        c.text("BTCUSDT");
        c.null();
        c.end_row();
        assert_eq!(c.rows(), 1);
        let mut out = c.buf.clone();
        out.extend_from_slice(TRAILER);
        assert!(out.starts_with(HEADER));
        assert_eq!(&out[HEADER.len()..HEADER.len() + 2], &3i16.to_be_bytes());
        assert!(out.ends_with(&(-1i16).to_be_bytes()));
        c.begin_row();
        c.int8(8);
        c.end_row();
        assert_eq!(c.rows(), 2);
        let (first, second) = (c.row_range(0, 1).to_vec(), c.row_range(1, 2));
        assert_eq!(first.len(), 2 + 12 + 4 + 7 + 4);
        assert_eq!(
            second,
            &[
                &1i16.to_be_bytes()[..],
                &8i32.to_be_bytes(),
                &8i64.to_be_bytes()
            ]
            .concat()
        );
        assert_eq!(c.row_range(0, 2).len(), c.buf.len() - HEADER.len());
        let mut t = CopyBuf::default();
        t.timestamptz_ns(946_684_800_000_000_000 + 1_500);
        assert_eq!(&t.buf[4..], &1i64.to_be_bytes());
    }
}
