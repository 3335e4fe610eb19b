//! A short demo day, as a new user runs it: the real binary, its own
//! certificates and configuration, the platforms and the gateway over real
//! mutual TLS, and a clearing statement that nets to zero.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::process::Command;

#[test]
fn a_short_demo_day_settles_in_every_region_and_nets_to_zero() {
    let dir = std::env::temp_dir().join(format!("jjj-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = Command::new(env!("CARGO_BIN_EXE_jjj-gateway"))
        .args(["demo", "--visits", "66", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("listening on https://127.0.0.1:"),
        "{stdout}"
    );
    for scenario in ["outpatient", "inpatient", "pharmacy"] {
        assert!(
            stdout.contains(&format!("settled, {scenario}: ")),
            "no {scenario} settlement:\n{stdout}"
        );
    }
    // Every ordered pair of the three regions appears, and the net positions sum to zero.
    for pair in ["北京", "天津", "河北"] {
        assert!(stdout.matches(pair).count() >= 3, "{pair}:\n{stdout}");
    }
    let sum = stdout
        .lines()
        .find(|l| l.contains("sum (always 0)"))
        .expect("a sum line");
    assert!(sum.trim_end().ends_with(" 0.00"), "{sum}");
    // Supervision finds every injected pattern, and nothing in the honest traffic.
    assert!(
        stdout.contains("injected patterns found: 5 of 5   signals on honest traffic: 0"),
        "supervision:\n{stdout}"
    );
    // The data folder reproduces the demo by hand.
    for file in [
        "gateway.toml",
        "sandbox.toml",
        "certs/ca.pem",
        "certs/server.pem",
        "certs/gateway.pem",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    // No personal data in the gateway's log: the demo's patients' names never appear.
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    assert!(!log.is_empty(), "the gateway logged nothing");
    assert!(
        !log.contains("收费员"),
        "an operator's name reached the log"
    );
    let bytes = log.as_bytes();
    let id_like = bytes.windows(18).any(|w| {
        w[..17].iter().all(u8::is_ascii_digit) && (w[17].is_ascii_digit() || w[17] == b'X')
    });
    assert!(
        !id_like,
        "something shaped like an ID number reached the log"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
