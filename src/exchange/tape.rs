//! Field readers over simd-json's tape, shared by every adapter's general decoding path: each
//! returns the exchange's text unchanged (decimals are never parsed into floats) or a
//! [`DecodeError`] naming the field, so a bad field skips its frame with a counted reason.

use crate::event::Levels;
use crate::exchange::{DecodeError, is_decimal};
use simd_json::prelude::*;
use simd_json::tape::Value;

/// A field as found in an object (`None`: absent).
pub type Field<'t, 'i> = Option<Value<'t, 'i>>;

/// A short enumeration string (order type, status, side): letters, digits, `_` and `-`.
#[inline]
pub fn text<'i>(v: Field<'_, 'i>, name: &'static str) -> Result<&'i str, DecodeError> {
    let s = v
        .and_then(|v| v.into_string())
        .ok_or(DecodeError::Shape(name))?;
    if s.len() > 32
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(DecodeError::Shape(name));
    }
    Ok(s)
}

/// A plain decimal string, exactly as sent.
#[inline]
pub fn decimal<'i>(v: Field<'_, 'i>, name: &'static str) -> Result<&'i str, DecodeError> {
    let s = v
        .and_then(|v| v.into_string())
        .ok_or(DecodeError::Shape(name))?;
    if is_decimal(s) {
        Ok(s)
    } else {
        Err(DecodeError::BadDecimal(name))
    }
}

/// A decimal, or `""` where the field is absent or the exchange sends an empty string.
#[inline]
pub fn decimal_or_empty<'i>(v: Field<'_, 'i>, name: &'static str) -> Result<&'i str, DecodeError> {
    match v {
        None => Ok(""),
        Some(x) if x.into_string() == Some("") => Ok(""),
        _ => decimal(v, name),
    }
}

/// A non-negative JSON integer.
#[inline]
pub fn uint(v: Field<'_, '_>, name: &'static str) -> Result<u64, DecodeError> {
    v.and_then(|v| v.as_u64()).ok_or(DecodeError::Shape(name))
}

/// A JSON integer that fits `i64`.
#[inline]
pub fn int(v: Field<'_, '_>, name: &'static str) -> Result<i64, DecodeError> {
    v.and_then(|v| v.as_i64()).ok_or(DecodeError::Shape(name))
}

/// An unsigned integer sent as a string of digits (OKX ids and times).
#[inline]
pub fn uint_str(v: Field<'_, '_>, name: &'static str) -> Result<u64, DecodeError> {
    let s = v
        .and_then(|v| v.into_string())
        .ok_or(DecodeError::Shape(name))?;
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(DecodeError::Shape(name));
    }
    s.parse().map_err(|_| DecodeError::Shape(name))
}

/// Milliseconds as a JSON integer, in nanoseconds.
#[inline]
pub fn millis(v: Field<'_, '_>, name: &'static str) -> Result<i64, DecodeError> {
    ms_to_ns(uint(v, name)?, name)
}

/// Milliseconds as a string of digits (OKX), in nanoseconds.
#[inline]
pub fn millis_str(v: Field<'_, '_>, name: &'static str) -> Result<i64, DecodeError> {
    ms_to_ns(uint_str(v, name)?, name)
}

#[inline]
fn ms_to_ns(ms: u64, name: &'static str) -> Result<i64, DecodeError> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or(DecodeError::Shape(name))
}

/// A symbol or instrument name: non-empty, at most 64 bytes.
#[inline]
pub fn symbol<'i>(v: Field<'_, 'i>, name: &'static str) -> Result<&'i str, DecodeError> {
    let s = v
        .and_then(|v| v.into_string())
        .ok_or(DecodeError::Shape(name))?;
    if s.is_empty() || s.len() > 64 {
        return Err(DecodeError::Shape(name));
    }
    Ok(s)
}

/// An array of levels `[price, qty, ...]` (extra elements, such as OKX's order counts, ignored)
/// appended to `out`.
pub fn levels(out: &mut Levels, v: Field<'_, '_>, name: &'static str) -> Result<(), DecodeError> {
    let arr = v
        .and_then(|v| v.as_array())
        .ok_or(DecodeError::Shape(name))?;
    for lvl in arr.iter() {
        let pair = lvl.as_array().ok_or(DecodeError::Shape(name))?;
        let price = decimal(pair.get(0), name)?;
        let qty = decimal(pair.get(1), name)?;
        out.push(price, qty);
    }
    Ok(())
}
