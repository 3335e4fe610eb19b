//! Reading a daily statement, the hot loop of reconciliation: a megabyte of
//! rows as `Writer` prints them, read by `Layout::parse_lines` (what
//! reconciliation's parsing threads do) and, for comparison in the same
//! run, line by line with `Layout::parse` and row by row with `Reader`.
//! Throughput is the statement's bytes.
//!
//! Run: `cargo bench -p contracts --bench statement`

use contracts::statement::{Layout, Reader, Row, RowState, StatementError, Writer};
use contracts::{Admdvs, DateTime, Money};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// About a megabyte of settlements and cancels, header first.
fn statement() -> Vec<u8> {
    let mut writer = Writer::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    let region = |code| Admdvs::parse(code).unwrap_or_else(|e| panic!("{e}"));
    for n in 0..6_000u64 {
        let fen = 1_000 + (n * 7_919) % 2_000_000;
        let money = |fen: u64| Money::from_fen(fen as i64);
        let state = if n % 50 == 0 {
            RowState::Cancelled
        } else {
            RowState::Settled
        };
        let sign = |m: Option<Money>| match state {
            RowState::Settled => m,
            _ => m.map(Money::negated),
        };
        let row = Row {
            setl_id: Some(format!("12000000000000{n:08}")),
            msgid: Some(format!("H12010100789202611260{n:09}")),
            omsgid: (state != RowState::Settled).then(|| format!("H12010100789202611250{n:09}")),
            mdtrt_id: Some(format!("D{n:012}")),
            fixmedins_code: "H12010100789".into(),
            insuplc_admdvs: region("110000"),
            mdtrtarea_admvs: region("120000"),
            insutype: Some("310".into()),
            med_type: Some("11".into()),
            clr_type: Some("11".into()),
            setl_time: DateTime::from_civil(
                2026,
                11,
                26,
                (n / 3600 % 24) as u32,
                (n / 60 % 60) as u32,
                (n % 60) as u32,
                0,
            )
            .unwrap_or_else(|| panic!("a time")),
            medfee_sumamt: sign(money(fen)),
            fund_pay_sumamt: sign(money(fen * 6 / 10)),
            acct_pay: sign(money(fen / 10)),
            psn_cash_pay: sign(money(fen - fen * 6 / 10 - fen / 10)),
            state,
        };
        writer.write(&row).unwrap_or_else(|e| panic!("{e}"));
    }
    writer.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn bench(c: &mut Criterion) {
    let text = statement();
    let header_end = text.iter().position(|&b| b == b'\n').unwrap_or(0);
    let layout = Layout::from_header(&text[..header_end]).unwrap_or_else(|e| panic!("{e}"));
    let body = &text[header_end + 1..];
    let mut group = c.benchmark_group("statement");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse_lines", |b| {
        b.iter(|| {
            let mut fen = 0i64;
            layout
                .parse_lines(black_box(body), 2, |row, _, _, _| {
                    fen += row.medfee_sumamt.map_or(0, Money::fen);
                    Ok::<(), StatementError>(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
            fen
        })
    });
    group.bench_function("parse line by line", |b| {
        let mut spans = Vec::new();
        b.iter(|| {
            let mut fen = 0i64;
            let (mut start, mut number) = (0, 2);
            let body = black_box(body);
            while start < body.len() {
                let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |at| start + at);
                let mut unquoted = String::new();
                if let Some(row) = layout
                    .parse(&body[start..end], number, &mut spans, &mut unquoted)
                    .unwrap_or_else(|e| panic!("{e}"))
                {
                    fen += row.medfee_sumamt.map_or(0, Money::fen);
                }
                (start, number) = (end + 1, number + 1);
            }
            fen
        })
    });
    group.bench_function("Reader", |b| {
        b.iter(|| {
            let mut reader = Reader::new(black_box(&text[..])).unwrap_or_else(|e| panic!("{e}"));
            let mut fen = 0i64;
            while reader.advance().unwrap_or_else(|e| panic!("{e}")) {
                let row = reader.current().unwrap_or_else(|e| panic!("{e}"));
                fen += row.medfee_sumamt.map_or(0, Money::fen);
            }
            fen
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
