//! The demo's supervision: a baseline of earlier days for every
//! institution, a few of each fraud pattern injected among the day's honest
//! traffic (deterministic: fixed people, fixed institutions, fixed bills),
//! and the closing summary of the signals found. Honest traffic raises none:
//! its patients are new every visit and its invoice numbers unique, and the
//! thresholds of the demo's `gateway.toml` ([`RULES`]) sit above what one
//! honest day reaches.

use crate::client::Client;
use crate::demo::traffic::{His, Tally};
use crate::demo::world::{Institution, Kind};
use contracts::sample::Rng;
use contracts::{Admdvs, DateTime, Money};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// The demo's HMAC key for person keys (a real deployment has its own secret).
pub const HMAC_KEY: &str =
    "6a6a6a2d64656d6f2d6f6e6c792d6b65792d6e6f742d666f722d70726f64756374696f6e";

/// The demo's `[supervision]` rules, as written into its `gateway.toml`.
pub const RULES: &str = r#"
[[supervision.rules]]
name = "concurrent_inpatient"
window = "90d"

[[supervision.rules]]
name = "duplicate_bill"
window = "7d"

[[supervision.rules]]
name = "frequency"
window = "1d"
max = 4

[[supervision.rules]]
name = "pharmacy_quantity"
window = "30d"
max_quantity = "60"

[[supervision.rules]]
name = "institution_surge"
window = "30d"
factor = 3
min_count = 20
min_baseline_days = 7
"#;

/// How many signals each injected pattern raises, by rule.
pub const EXPECTED: [(&str, usize); 5] = [
    ("concurrent_inpatient", 1),
    ("duplicate_bill", 2),
    ("frequency", 1),
    ("pharmacy_quantity", 1),
    ("institution_surge", 1),
];

/// Purchases of the injected surge.
const SURGE: u32 = 40;

/// A fixed person of the injected patterns: an address code honest traffic never uses.
fn person(n: u32) -> String {
    crate::sandbox::population::with_check_character(&format!("11010119800101{n:03}"))
        .unwrap_or_default()
}

/// Seeds 30 earlier days of `per_day` settlements for every institution:
/// the history `institution_surge` compares a day with.
pub async fn seed_baseline(
    ledger: &ledger::Ledger,
    institutions: &[Institution],
    per_day: i64,
) -> anyhow::Result<()> {
    let now = DateTime::now().unix_millis();
    for back in 1..=30 {
        let Some(day) = DateTime::from_unix_millis(now - back * 86_400_000) else {
            continue;
        };
        for i in institutions {
            ledger
                .set_settlement_count(ledger::DailyCount {
                    institution: i.code.clone(),
                    day: day.date().to_string(),
                    settlements: per_day,
                    amount: Money::from_fen(per_day * 30_000).unwrap_or_default(),
                })
                .await?;
        }
    }
    Ok(())
}

/// The injected patterns' people and the surge's institution.
pub struct Injected {
    people: BTreeSet<String>,
    surge: String,
}

fn his(certs: &std::path::Path, base: &str, institution: &Institution) -> anyhow::Result<His> {
    // Each HIS of the patterns numbers its messages apart from the others (msgids are unique).
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(His {
        client: Client::for_code(certs, &institution.code)?,
        institution: institution.clone(),
        base: base.to_owned(),
        sequence: 5_000 + (n % 40) * 100,
        rng: Rng::new(7),
    })
}

fn pick(institutions: &[Institution], province: u32, kind: Kind, n: usize) -> Option<&Institution> {
    institutions
        .iter()
        .filter(|i| i.admdvs.value() / 10_000 == province && i.kind == kind)
        .nth(n)
}

/// Injects every pattern; returns who and where, to tell them from honest traffic.
pub async fn inject(
    certs: &std::path::Path,
    base: &str,
    institutions: &[Institution],
    tally: &Mutex<Tally>,
) -> anyhow::Result<Injected> {
    let need = |i: Option<&Institution>| {
        i.cloned()
            .ok_or_else(|| anyhow::anyhow!("the demo's world lacks an institution"))
    };
    let (bj, bj2) = (
        need(pick(institutions, 11, Kind::Hospital, 0))?,
        need(pick(institutions, 11, Kind::Hospital, 1))?,
    );
    let tj = need(pick(institutions, 12, Kind::Hospital, 0))?;
    let he = need(pick(institutions, 13, Kind::Hospital, 0))?;
    let (tj_shop, tj_shop2) = (
        need(pick(institutions, 12, Kind::Pharmacy, 0))?,
        need(pick(institutions, 12, Kind::Pharmacy, 1))?,
    );
    let he_shop = need(pick(institutions, 13, Kind::Pharmacy, 0))?;
    let surge_shop = need(pick(institutions, 13, Kind::Pharmacy, 2))?;
    // The injected people are insured in Beijing or Tianjin, whose platforms
    // commit every settlement (Hebei's drops a few connections on purpose).
    let (bj_ins, tj_ins) = (Admdvs::parse("110105")?, Admdvs::parse("120104")?);
    let mut people = BTreeSet::new();

    // concurrent_inpatient: admitted in Beijing, then in Hebei, no discharge.
    let p = person(1);
    people.insert(p.clone());
    his(certs, base, &bj)?
        .inject_admission(&p, tj_ins, tally)
        .await;
    his(certs, base, &he)?
        .inject_admission(&p, tj_ins, tally)
        .await;

    // duplicate_bill: the same bill twice at one Tianjin hospital; one invoice number twice in Hebei.
    let p = person(2);
    people.insert(p.clone());
    let mut tianjin = his(certs, base, &tj)?;
    for _ in 0..2 {
        tianjin
            .inject_visit(&p, bj_ins, "XDEMO000000000000000002", None, tally)
            .await;
    }
    let mut hebei = his(certs, base, &he)?;
    for n in [3, 4] {
        let p = person(n);
        people.insert(p.clone());
        hebei
            .inject_visit(
                &p,
                tj_ins,
                &format!("XDEMO00000000000000000{n}"),
                Some("INVDEMO0001"),
                tally,
            )
            .await;
    }

    // frequency: five outpatient settlements in a day, in two regions.
    let p = person(5);
    people.insert(p.clone());
    for (n, institution) in [&bj, &he, &bj2, &he, &bj].into_iter().enumerate() {
        his(certs, base, institution)?
            .inject_visit(
                &p,
                tj_ins,
                &format!("XDEMO0000000000000005{n}"),
                None,
                tally,
            )
            .await;
    }

    // pharmacy_quantity: 3 × 25 of one drug at pharmacies of two regions.
    let p = person(6);
    people.insert(p.clone());
    for shop in [&tj_shop, &he_shop, &tj_shop2] {
        his(certs, base, shop)?
            .inject_purchase(&p, bj_ins, "XDEMO000000000000000006", 25, tally)
            .await;
    }

    // institution_surge: one Hebei pharmacy's day far above its baseline.
    let mut shop = his(certs, base, &surge_shop)?;
    for n in 0..SURGE {
        let insured = if n % 2 == 0 { bj_ins } else { tj_ins };
        shop.inject_purchase(
            &person(100 + n),
            insured,
            &format!("XDEMO0000000000000{n:05}"),
            1,
            tally,
        )
        .await;
        // The pharmacy's rate limit: 30 requests a second.
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    Ok(Injected {
        people,
        surge: surge_shop.code,
    })
}

/// Waits for the injected patterns' signals, then prints the day's signals:
/// by rule, which were injected, and any raised by honest traffic.
pub async fn summary(ledger: &ledger::Ledger, injected: &Injected) -> anyhow::Result<()> {
    let day = DateTime::now().date().to_string();
    let expected: usize = EXPECTED.iter().map(|(_, n)| n).sum();
    let key: Vec<u8> = (0..HMAC_KEY.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(HMAC_KEY.get(i..i + 2)?, 16).ok())
        .collect();
    let keys: BTreeSet<String> = injected
        .people
        .iter()
        .filter_map(|id| {
            crate::supervision::facts::person_key(&key, Some("02"), Some(id), None, None)
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let signals = loop {
        let signals = ledger.signals(&day).await?;
        if signals.len() >= expected || std::time::Instant::now() > deadline {
            break signals;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let injected_one = |s: &ledger::Signal| {
        s.person_key.as_ref().is_some_and(|k| keys.contains(k))
            || (s.person_key.is_none() && s.institutions.contains(&injected.surge))
    };
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for s in signals.iter().filter(|s| injected_one(s)) {
        *by_rule.entry(s.rule.as_str()).or_default() += 1;
    }
    let found = EXPECTED
        .iter()
        .filter(|(rule, n)| by_rule.get(rule).copied().unwrap_or(0) >= *n)
        .count();
    let honest = signals.iter().filter(|s| !injected_one(s)).count();
    println!("\n== Supervision: cross-region signals of the day (GET /v1/signals?date={day})");
    for (rule, n) in EXPECTED {
        println!(
            "  {rule:<21} {} signal(s) (injected: {n})",
            signals.iter().filter(|s| s.rule == rule).count()
        );
    }
    for s in &signals {
        println!(
            "    {} {:<20} {:<6} {} [{}] {}",
            crate::supervision::at(s.detected_at_ms),
            s.rule,
            s.severity,
            s.institutions.join(","),
            s.regions.join(","),
            s.detail
        );
    }
    println!(
        "  injected patterns found: {found} of {}   signals on honest traffic: {honest}",
        EXPECTED.len()
    );
    Ok(())
}
