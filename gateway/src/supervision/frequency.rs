//! `frequency`: more outpatient settlements (2207) for one person within the
//! rule's `window` (a sliding window: `1d` for a day, `7d` for a week)
//! than `max`, counted across all regions. Every settlement beyond `max`
//! raises a signal. Decided on the settlement request alone: `mode =
//! "refuse"` refuses the settlement that would go beyond `max`. The rule may
//! be configured more than once with different windows.

use crate::config::Rule;
use crate::supervision::facts::{SettleKind, Settlement};
use crate::supervision::held::HeldSettlement;
use crate::supervision::windows::Windows;
use crate::supervision::{window_text, Finding};

/// The finding for `settlement`, if it takes the person beyond `max`.
pub fn check(rule: &Rule, windows: &Windows, settlement: &Settlement) -> Option<Finding> {
    if settlement.kind != SettleKind::Outpatient {
        return None;
    }
    let window = i64::try_from(rule.window.as_millis()).unwrap_or(i64::MAX);
    let msgid = windows.digest(&settlement.msgid);
    let earlier: Vec<HeldSettlement> = windows
        .settlements_of(&settlement.person)?
        .filter(|e| {
            e.kind() == SettleKind::Outpatient
                && e.msgid() != msgid
                && settlement.at_ms - e.at_ms() < window
        })
        .collect();
    let count = earlier.len() + 1;
    if count <= rule.max as usize {
        return None;
    }
    let regions: std::collections::BTreeSet<&str> = earlier
        .iter()
        .map(|e| e.treatment())
        .chain([settlement.treatment.as_str()])
        .collect();
    let mut finding = Finding::of_settlements(rule, settlement, &earlier);
    finding.detail = format!(
        "{count} outpatient settlements within {} (at most {}), treated in {}",
        window_text(rule.window),
        rule.max,
        regions.into_iter().collect::<Vec<_>>().join(", ")
    );
    Some(finding)
}
