//! `pharmacy_quantity`: one person buying more of one drug code
//! (`med_list_codg`) than `max_quantity` within the rule's `window`
//! (default 30 days), across the pharmacies of all regions (2102). `drugs`
//! limits the rule to some codes (all when empty). Every purchase beyond the
//! limit raises a signal. Decided on the purchase request alone: `mode =
//! "refuse"` refuses the purchase that would go beyond it.

use crate::config::Rule;
use crate::supervision::facts::{SettleKind, Settlement};
use crate::supervision::held::HeldSettlement;
use crate::supervision::windows::Windows;
use crate::supervision::{window_text, Finding};
use std::collections::BTreeMap;

/// The finding for `settlement`, if it takes a drug beyond `max_quantity`.
pub fn check(rule: &Rule, windows: &Windows, settlement: &Settlement) -> Option<Finding> {
    if settlement.kind != SettleKind::Pharmacy || settlement.drugs.is_empty() {
        return None;
    }
    let window = i64::try_from(rule.window.as_millis()).unwrap_or(i64::MAX);
    let mut now: BTreeMap<&str, i64> = BTreeMap::new();
    for (code, quantity) in &settlement.drugs {
        if rule.drugs.is_empty() || rule.drugs.iter().any(|d| d == code) {
            *now.entry(code.as_str()).or_default() += quantity;
        }
    }
    let msgid = windows.digest(&settlement.msgid);
    let earlier: Vec<HeldSettlement> = windows
        .settlements_of(&settlement.person)
        .map(|settlements| {
            settlements
                .filter(|e| {
                    e.kind() == SettleKind::Pharmacy
                        && e.msgid() != msgid
                        && settlement.at_ms - e.at_ms() < window
                })
                .collect()
        })
        .unwrap_or_default();
    for (code, quantity) in now {
        let before: i64 = earlier
            .iter()
            .flat_map(|e| e.drugs())
            .filter(|(c, _)| *c == code)
            .map(|(_, q)| q)
            .sum();
        let total = before.saturating_add(quantity);
        if total <= rule.max_quantity.scaled() {
            continue;
        }
        let buying: Vec<HeldSettlement> = earlier
            .iter()
            .copied()
            .filter(|e| e.drugs().any(|(c, _)| c == code))
            .collect();
        let mut finding = Finding::of_settlements(rule, settlement, &buying);
        finding.detail = format!(
            "drug {code}: {} bought within {} (at most {}) at {} pharmacies",
            contracts::Quantity::from_scaled(total).unwrap_or_default(),
            window_text(rule.window),
            rule.max_quantity,
            finding.institutions.len()
        );
        return Some(finding);
    }
    None
}
