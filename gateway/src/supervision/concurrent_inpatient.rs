//! `concurrent_inpatient`: the same person admitted while still in a stay at
//! another institution — typically in another region, where only this
//! gateway sees both. A stay is open until its discharge (2402); an
//! admission cancel (2404) or a reversal removes it. Stays are remembered
//! for the rule's `window` (default 90 days). Decided on the admission
//! request alone, so `mode = "refuse"` refuses the second admission.

use crate::config::Rule;
use crate::supervision::facts::Admission;
use crate::supervision::windows::Windows;
use crate::supervision::{at, window_text, Finding};

/// The finding for `admission`, if the person is in a stay elsewhere.
pub fn check(rule: &Rule, windows: &Windows, admission: &Admission) -> Option<Finding> {
    let window = i64::try_from(rule.window.as_millis()).unwrap_or(i64::MAX);
    let msgid = windows.digest(&admission.msgid);
    let stays: Vec<_> = windows
        .stays_of(&admission.person)
        .filter(|s| {
            s.institution() != admission.institution
                && s.msgid() != msgid
                && admission.at_ms - s.at_ms() <= window
                && s.end_ms().is_none_or(|end| end > admission.begin_ms)
        })
        .collect();
    let first = stays.first()?;
    let mut finding = Finding::new(
        rule,
        Some(&admission.person),
        &admission.institution,
        &admission.msgid,
    );
    finding.region(&admission.insured);
    finding.region(&admission.treatment);
    finding.mdtrt(admission.mdtrt_id.as_deref());
    for stay in &stays {
        finding.institution(stay.institution());
        finding.region(stay.insured());
        finding.region(stay.treatment());
        finding.mdtrt(stay.mdtrt_id());
    }
    finding.detail = format!(
        "admitted at {} ({}) at {} while in a stay at {} ({}) since {}, not discharged then (window {})",
        admission.institution,
        admission.treatment,
        at(admission.begin_ms),
        first.institution(),
        first.treatment(),
        at(first.begin_ms()),
        window_text(rule.window),
    );
    Some(finding)
}
