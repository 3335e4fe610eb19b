//! Writes a synthetic clearing day for benchmarking `jjj-gateway reconcile`:
//! the gateway's export (`gateway.csv`) and the three regions' statements
//! (`110000.csv`, `120000.csv`, `130000.csv`), with N settlements across the
//! regions, 2% of them cancelled, and a few planted discrepancies (one row in
//! 100,000 with an amount off by a fen, one in 200,000 missing from its
//! region's statement).
//!
//! ```text
//! cargo run --release -p gateway --example clearing_day -- 10000000 /tmp/day
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use contracts::statement::{Row, RowState, Writer};
use contracts::{Admdvs, DateTime, Money};
use std::fs::File;
use std::io::BufWriter;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: clearing_day N OUT_DIR");
    let out = std::path::PathBuf::from(args.next().expect("usage: clearing_day N OUT_DIR"));
    std::fs::create_dir_all(&out).unwrap();
    let regions = ["110000", "120000", "130000"];
    let open = |name: &str| {
        Writer::new(BufWriter::with_capacity(
            1 << 20,
            File::create(out.join(name)).unwrap(),
        ))
        .unwrap()
    };
    let mut gateway = open("gateway.csv");
    let mut statements: Vec<_> = regions.iter().map(|r| open(&format!("{r}.csv"))).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (mut planted_amount, mut planted_missing) = (0u64, 0u64);
    for i in 0..n {
        let r = next();
        let insured = usize::try_from(r % 3).unwrap();
        let treatment = (insured + 1 + usize::try_from((r >> 8) % 2).unwrap()) % 3;
        let fen = i64::try_from(1_000 + (r >> 16) % 2_000_000).unwrap();
        let fund = fen * 6 / 10;
        let acct = (fen / 10).min(50_000);
        let second = i % 86_400;
        let time = DateTime::from_civil(
            2026,
            11,
            26,
            u32::try_from(second / 3600).unwrap(),
            u32::try_from(second / 60 % 60).unwrap(),
            u32::try_from(second % 60).unwrap(),
            0,
        )
        .unwrap();
        let institution = format!("H{}{:07}", &regions[treatment][..4], (r >> 40) % 2_000);
        let row = Row {
            setl_id: Some(format!("{}{i:016}", regions[insured])),
            msgid: Some(format!("{institution}{i:018}")),
            omsgid: None,
            mdtrt_id: Some(format!("D{i:012}")),
            fixmedins_code: institution,
            insuplc_admdvs: Admdvs::parse(regions[insured]).unwrap(),
            mdtrtarea_admvs: Admdvs::parse(regions[treatment]).unwrap(),
            insutype: Some(if r & 1 == 0 { "310" } else { "390" }.into()),
            med_type: Some("11".into()),
            clr_type: Some("11".into()),
            setl_time: time,
            medfee_sumamt: Money::from_fen(fen),
            fund_pay_sumamt: Money::from_fen(fund),
            acct_pay: Money::from_fen(acct),
            psn_cash_pay: Money::from_fen(fen - fund - acct),
            state: RowState::Settled,
        };
        gateway.write(&row).unwrap();
        if i % 200_000 == 199_999 {
            planted_missing += 1;
        } else if i % 100_000 == 99_999 {
            let mut off = row.clone();
            off.fund_pay_sumamt = Money::from_fen(fund + 1);
            off.psn_cash_pay = Money::from_fen(fen - fund - acct - 1);
            statements[insured].write(&off).unwrap();
            planted_amount += 1;
        } else {
            statements[insured].write(&row).unwrap();
        }
        if (r >> 32) % 50 == 0 {
            let neg = |m: Option<Money>| m.map(Money::negated);
            let cancel = Row {
                msgid: Some(format!("C{i:018}")),
                omsgid: row.msgid.clone(),
                medfee_sumamt: neg(row.medfee_sumamt),
                fund_pay_sumamt: neg(row.fund_pay_sumamt),
                acct_pay: neg(row.acct_pay),
                psn_cash_pay: neg(row.psn_cash_pay),
                state: RowState::Cancelled,
                ..row.clone()
            };
            gateway.write(&cancel).unwrap();
            statements[insured].write(&cancel).unwrap();
        }
    }
    gateway.finish().unwrap();
    for s in statements {
        s.finish().unwrap();
    }
    println!(
        "{n} settlements written to {}; planted: {planted_amount} amount_differs, {planted_missing} only_in_gateway",
        out.display()
    );
}
