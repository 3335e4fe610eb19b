//! `duplicate_bill`: the same person, at the same institution, settled the
//! same total with the same fee lines (codes, quantities, prices) twice
//! within the rule's `window` (default 7 days); or one invoice number
//! (`invono`) settled twice at one institution. Fee lines are those of a
//! pharmacy purchase, or those uploaded for the visit (2204/2301) before its
//! settlement. A cancelled or reversed settlement no longer counts. Decided
//! on the settlement request alone: `mode = "refuse"` refuses the second one.

use crate::config::Rule;
use crate::supervision::facts::Settlement;
use crate::supervision::held::HeldSettlement;
use crate::supervision::windows::Windows;
use crate::supervision::{window_text, Finding};

/// The finding for `settlement`, if it repeats an earlier one.
pub fn check(rule: &Rule, windows: &Windows, settlement: &Settlement) -> Option<Finding> {
    let window = i64::try_from(rule.window.as_millis()).unwrap_or(i64::MAX);
    let msgid = windows.digest(&settlement.msgid);
    let within = |earlier: &HeldSettlement| {
        earlier.msgid() != msgid && settlement.at_ms - earlier.at_ms() <= window
    };
    if let Some(invono) = &settlement.invono {
        if let Some(earlier) = windows
            .invoice(&settlement.institution, invono)
            .filter(|e| within(e))
        {
            let mut finding = Finding::of_settlements(rule, settlement, &[earlier]);
            finding.detail = format!(
                "invoice {invono} settled twice at {} within {}",
                settlement.institution,
                window_text(rule.window)
            );
            return Some(finding);
        }
    }
    let bill = settlement.bill.as_deref().map(|b| windows.digest(b));
    let earlier = windows
        .settlements_of(&settlement.person)?
        .filter(|e| {
            within(e)
                && e.institution() == settlement.institution
                && e.kind() == settlement.kind
                && e.amount() == settlement.amount
                && e.bill() == bill
        })
        .last()?;
    let mut finding = Finding::of_settlements(rule, settlement, &[earlier]);
    finding.detail = format!(
        "the same {} bill ({} yuan{}) settled twice at {} within {}",
        settlement.kind.as_str(),
        settlement.amount,
        if settlement.bill.is_some() {
            ", same fee lines"
        } else {
            ""
        },
        settlement.institution,
        window_text(rule.window)
    );
    Some(finding)
}
