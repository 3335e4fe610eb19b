//! Journal writes per second with group commit: N concurrent writers, each
//! journalling settlements one after the other (`begin`, then `finish` as
//! done), for a fixed time, on the backend the URL names.
//!
//! ```text
//! cargo run --release -p ledger --example journal_tps -- \
//!     --url sqlite:///tmp/bench/ledger.db --writers 32 --seconds 10
//! ```
//!
//! Prints a `RESULT` line: durable journal writes per second (a begin and a
//! finish are one write each, each acknowledged only once on disk),
//! settlements per second, writes per commit (the group-commit factor) and
//! settlement latency percentiles. `journal_tps.sh` next to this file runs it
//! against `pgbench` on the same PostgreSQL.

use std::time::{Duration, Instant};

use ledger::{Answered, Begin, Finish, Key, Ledger, Money, NewEntry, PsnNo, Reply, State};

struct Args {
    url: String,
    writers: usize,
    seconds: u64,
    reply_bytes: usize,
    /// Idle time between a settlement's two writes and after them, as a
    /// gateway at a low rate leaves the writer: every write then wakes it.
    pause_us: u64,
}

fn usage() -> String {
    "usage: journal_tps --url URL [--writers N] [--seconds S] [--reply-bytes B] [--pause-us U]"
        .to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        writers: 32,
        seconds: 10,
        reply_bytes: 512,
        pause_us: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(usage)?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--writers" => args.writers = value.parse().map_err(|_| usage())?,
            "--seconds" => args.seconds = value.parse().map_err(|_| usage())?,
            "--reply-bytes" => args.reply_bytes = value.parse().map_err(|_| usage())?,
            "--pause-us" => args.pause_us = value.parse().map_err(|_| usage())?,
            _ => return Err(usage()),
        }
    }
    if args.url.is_empty() || args.writers == 0 || args.seconds == 0 {
        return Err(usage());
    }
    Ok(args)
}

fn new_entry(caller: &str, msgid: String, now_ms: i64) -> NewEntry {
    NewEntry {
        key: Key::new(caller, msgid),
        infno: "2207".into(),
        institution: "H13010500001".into(),
        insured: "110000".into(),
        treatment: "130100".into(),
        region: "110000".into(),
        digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        original_msgid: None,
        cancels_setl_id: None,
        // As the gateway journals it for every settlement.
        psn_no: PsnNo::new("11000000000012345678").ok(),
        received_at_ms: now_ms,
    }
}

fn done(reply: &[u8], now_ms: i64) -> Finish {
    Finish {
        state: State::Done,
        answered: Answered {
            setl_id: Some(format!("S{now_ms}")),
            mdtrt_id: Some("M123456789012".into()),
            insutype: Some("310".into()),
            med_type: Some("11".into()),
            clr_type: Some("11".into()),
            setl_time_ms: Some(now_ms),
            medfee_sumamt: Money::from_fen(29_620),
            fund_pay_sumamt: Money::from_fen(20_000),
            acct_pay: Money::from_fen(5_000),
            psn_cash_pay: Money::from_fen(4_620),
            error_code: None,
            anomalies: Vec::new(),
        },
        reply: Reply {
            status: 200,
            media_type: "application/json".into(),
            bytes: reply.to_vec(),
            finished_at_ms: now_ms,
        },
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The `per_mille`-th latency of `sorted`, in microseconds.
fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = (sorted.len() - 1) * per_mille / 1000;
    sorted[index]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = parse_args()?;
    let ledger = Ledger::open(&args.url).await?;
    let caller = format!("BENCH{}", now_ms());
    let reply = vec![b'x'; args.reply_bytes];
    let duration = Duration::from_secs(args.seconds);
    let commits_before = ledger.commits();
    let started = Instant::now();
    let deadline = started + duration;
    let pause = Duration::from_micros(args.pause_us);

    let writers: Vec<_> = (0..args.writers)
        .map(|w| {
            let ledger = ledger.clone();
            let caller = caller.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let now = now_ms();
                    let entry = new_entry(&caller, format!("w{w}-{i}"), now);
                    let key = entry.key.clone();
                    match ledger.begin(entry).await? {
                        Begin::Fresh => {}
                        other => return Err(format!("unexpected {other:?}").into()),
                    }
                    let began_finish = if pause.is_zero() {
                        began
                    } else {
                        // The upstream's time, not counted: only the two writes are.
                        let begin_took = began.elapsed();
                        tokio::time::sleep(pause).await;
                        Instant::now() - begin_took
                    };
                    ledger.finish(&key, done(&reply, now)).await?;
                    latencies.push(
                        u64::try_from(began_finish.elapsed().as_micros()).unwrap_or(u64::MAX),
                    );
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    i += 1;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for writer in writers {
        latencies.extend(writer.await??);
    }
    let elapsed_ms = u64::try_from(started.elapsed().as_millis())?.max(1);
    let commits = ledger.commits() - commits_before;
    latencies.sort_unstable();
    let settlements = u64::try_from(latencies.len())?;
    let writes = settlements * 2;
    println!(
        "backend={} writers={} seconds={} reply_bytes={}",
        ledger.backend_name(),
        args.writers,
        args.seconds,
        args.reply_bytes
    );
    println!(
        "RESULT writes_per_s={} settlements_per_s={} writes={writes} commits={commits} writes_per_commit={} p50_us={} p99_us={} max_us={}",
        writes * 1000 / elapsed_ms,
        settlements * 1000 / elapsed_ms,
        writes / commits.max(1),
        percentile(&latencies, 500),
        percentile(&latencies, 990),
        latencies.last().copied().unwrap_or(0),
    );
    Ok(())
}
