//! loom models of the hot path's two lock-free parts, run over every interleaving loom can
//! reach: `cargo test --release --features loom --test loom` (the `loom` feature puts the ring
//! and the bell on loom's atomics; `scripts/test.sh` runs it).
//!
//! - The SPSC ring: values arrive once, in order, never torn (loom checks each slot is never
//!   accessed by both sides at once), and a full ring refuses instead of overwriting.
//! - The idle bell: a consumer that announces a park, checks its ring and parks is always woken by
//!   a producer's write: no lost wake-up (loom reports a thread parked forever as a deadlock). With
//!   the fence in `Bell::ring` or `Bell::park` removed, this model fails (checked by hand).
#![cfg(feature = "loom")]

use mdc::pipeline::idle::Bell;
use mdc::pipeline::ring::ring;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn ring_hands_over_in_order_and_never_overwrites() {
    loom::model(|| {
        let (mut p, mut c) = ring(2, || 0u32);
        let producer = loom::thread::spawn(move || {
            let mut sent = 0u32;
            let mut refused = 0;
            for v in 1..=3u32 {
                if p.write_with(|s| *s = v).is_some() {
                    sent += 1;
                } else {
                    refused += 1;
                }
            }
            (sent, refused)
        });
        let mut got = Vec::new();
        for _ in 0..3 {
            if let Some(v) = c.read_with(|s| *s) {
                got.push(v);
            }
        }
        let (sent, _) = producer.join().unwrap();
        while let Some(v) = c.read_with(|s| *s) {
            got.push(v);
        }
        assert_eq!(got.len() as u32, sent);
        // In order, no value twice, none invented.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        assert!(got.iter().all(|v| (1..=3).contains(v)));
    });
}

#[test]
fn a_parked_consumer_is_always_woken() {
    loom::model(|| {
        let bell = Arc::new(Bell::default());
        let (mut p, mut c) = ring(2, || 0u32);
        p.set_bell(Some(bell.clone()));
        let producer = loom::thread::spawn(move || {
            assert!(p.write_with(|s| *s = 7).is_some());
        });
        // The consumer: look, announce, look again, park; until the value came.
        loop {
            if let Some(v) = c.read_with(|s| *s) {
                assert_eq!(v, 7);
                break;
            }
            bell.park(|| !c.is_empty(), Duration::from_secs(1));
        }
        producer.join().unwrap();
    });
}
