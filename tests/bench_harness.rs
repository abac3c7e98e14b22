//! `mdc bench` end to end (short, at a modest rate; the figures themselves are not checked here,
//! only that the harness measures every stage and writes its report): simulator and collector in
//! one process, a Markdown and a CSV report under `<out>/<date>-<host>/`.

mod common;

use common::temp_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `mdc bench <args> --out <out>`, asserts success, returns the run directory.
fn run_bench(out: &Path, args: &[&str]) -> PathBuf {
    let st = Command::new(env!("CARGO_BIN_EXE_mdc"))
        .arg("bench")
        .args(args)
        // These runs check the report, in a debug build with a 1 s warm-up: buffers (the
        // WebSocket read buffer) may still reach their working size inside the window. The
        // zero-allocation check itself (`--max-allocations`, default 0) is what real benches run
        // with; its refusal is tested below.
        .args(["--max-allocations", "1000"])
        .arg("--out")
        .arg(out)
        .output()
        .expect("run mdc bench");
    let stdout = String::from_utf8_lossy(&st.stdout);
    assert!(
        st.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .next()
        .expect("a <date>-<host> directory")
        .path()
}

#[test]
fn bench_writes_a_complete_report() {
    let out = temp_dir("bench-report");
    let run_dir = run_bench(
        &out,
        &[
            "--rate",
            "4000",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--symbols",
            "3",
            "--baseline-messages",
            "2000",
        ],
    );
    let md = std::fs::read_to_string(run_dir.join("bench-null-4000.md")).unwrap();
    let csv = std::fs::read_to_string(run_dir.join("bench-null-4000.csv")).unwrap();
    for needle in [
        "Command: `",
        "| git revision |",
        "| CPU |",
        "| pinning |",
        "## Throughput",
        "| sim_send_to_receive |",
        "| receive_to_parsed |",
        "| parsed_to_sink |",
        "## CPU, wake-ups and memory",
        "| reader-0 |",
        "| **collector threads** |",
        "Allocations by the pipeline threads",
        "**Ratio: ",
        "Loss over the whole run (received but not handed to the sink after the drain): 0 of",
    ] {
        assert!(md.contains(needle), "missing `{needle}` in:\n{md}");
    }
    for key in [
        "received_rate,",
        "latency_receive_to_parsed_p99,",
        "latency_sim_send_to_receive_p99_9,",
        "allocations_reader-0,",
        "collector_ns_per_msg,",
        "collector_switches_per_msg,",
        "ratio,",
    ] {
        assert!(csv.contains(key), "missing `{key}` in:\n{csv}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `--rates`: one run per rate and a summary table with CPU and context switches per message.
#[test]
fn bench_rate_sweep_writes_a_summary() {
    let out = temp_dir("bench-sweep");
    let run_dir = run_bench(
        &out,
        &[
            "--rates",
            "2000,4000",
            "--duration",
            "1s",
            "--warmup",
            "1s",
            "--symbols",
            "2",
            "--baseline-messages",
            "1000",
            "--tag",
            "t",
        ],
    );
    let md = std::fs::read_to_string(run_dir.join("sweep-null-t.md")).unwrap();
    let csv = std::fs::read_to_string(run_dir.join("sweep-null-t.csv")).unwrap();
    assert!(md.contains("| 2000 |") && md.contains("| 4000 |"), "{md}");
    assert!(md.contains("context switches per message"), "{md}");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(run_dir.join("bench-null-2000-t.md").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// More allocations than `--max-allocations` after warm-up: the run fails, naming the count, with
/// the report written anyway.
#[test]
fn bench_fails_when_the_pipeline_allocates() {
    let out = temp_dir("bench-alloc");
    let st = Command::new(env!("CARGO_BIN_EXE_mdc"))
        .args([
            "bench",
            "--rate",
            "2000",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--symbols",
            "2",
            "--baseline-messages",
            "1000",
            // Warm-up 0: every ring slot and buffer grows inside the window.
            "--max-allocations",
            "0",
            "--pipeline",
            "threads",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run mdc bench");
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success(), "{err}");
    assert!(
        err.contains("the pipeline threads allocated after warm-up")
            && err.contains("limit --max-allocations 0"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
