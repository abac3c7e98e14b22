//! Interned names for event headers rebuilt from our own encoded payloads (exchange and market are
//! `&'static str` in [`crate::event::Header`]). The set is bounded by the exchanges and markets the
//! collector itself names; anything longer than a name is refused.

use std::sync::Mutex;

static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// The `'static` copy of `s` (leaked once per distinct name; at most 64 names of <= 32 bytes).
pub fn intern(s: &str) -> &'static str {
    if s.len() > 32 {
        return "";
    }
    let Ok(mut names) = NAMES.lock() else {
        return "";
    };
    if let Some(n) = names.iter().find(|n| **n == s) {
        return n;
    }
    if names.len() >= 64 {
        return "";
    }
    let n: &'static str = Box::leak(s.to_string().into_boxed_str());
    names.push(n);
    n
}
