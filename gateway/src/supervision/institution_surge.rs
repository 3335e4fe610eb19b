//! `institution_surge`: an institution's cross-region settlements of one day
//! (Asia/Shanghai), by count or by amount, above `factor` times its own
//! baseline: the mean of its days with settlements within the trailing
//! `window` (default 30 days, whole days), today excluded. A day must have at
//! least `min_count` settlements and the baseline at least
//! `min_baseline_days` days. One signal per institution and day. Only flags:
//! no single request decides it.

use crate::config::Rule;
use crate::supervision::windows::Windows;
use crate::supervision::{window_text, Finding};
use contracts::Money;

/// The finding for `institution` on day `today`, if its day is a surge.
pub fn check(
    rule: &Rule,
    windows: &Windows,
    institution: &str,
    treatment: &str,
    today: i64,
) -> Option<Finding> {
    let days = windows.days.get(institution)?;
    let day = days.get(&today)?;
    if day.count < i64::from(rule.min_count) {
        return None;
    }
    let span = i64::try_from(rule.window.as_secs() / 86_400).unwrap_or(30);
    let baseline: Vec<_> = days
        .range(today - span..today)
        .map(|(_, d)| d)
        .filter(|d| d.count > 0)
        .collect();
    if baseline.len() < rule.min_baseline_days.max(1) as usize {
        return None;
    }
    let n = baseline.len() as i128;
    let counts: i128 = baseline.iter().map(|d| i128::from(d.count)).sum();
    let amounts: i128 = baseline.iter().map(|d| i128::from(d.amount)).sum();
    let factor = i128::from(rule.factor);
    let by_count = i128::from(day.count) * n > factor * counts;
    let by_amount = i128::from(day.amount) * n > factor * amounts && amounts > 0;
    if !by_count && !by_amount {
        return None;
    }
    let mut finding = Finding::new(rule, None, institution, &format!("{institution}:{today}"));
    finding.region(treatment);
    for region in &day.insured {
        finding.region(region);
    }
    if let Some(amount) = Money::from_fen(day.amount) {
        finding.amounts.push(amount);
    }
    let mean_amount = Money::from_fen(i64::try_from(amounts / n).unwrap_or(0)).unwrap_or_default();
    finding.detail = format!(
        "{} cross-region settlements ({} yuan) today against a baseline of {}/day ({} yuan) over {} days of the last {}: {} more than {}×",
        day.count,
        Money::from_fen(day.amount).unwrap_or_default(),
        counts / n,
        mean_amount,
        n,
        window_text(rule.window),
        match (by_count, by_amount) {
            (true, true) => "count and amount",
            (true, false) => "count",
            _ => "amount",
        },
        rule.factor,
    );
    Some(finding)
}
