//! The rules' memory: per person, their settlements and inpatient stays
//! within the longest window; per institution, its daily counts within the
//! surge baseline. Bounded: everything older than its window is dropped by
//! [`Windows::prune`], so memory follows the traffic of the last window, not
//! the life of the process.

use crate::supervision::facts::{Admission, Fact, Line, Settlement};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// One inpatient stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    /// Institution.
    pub institution: String,
    /// Insured region.
    pub insured: String,
    /// Treatment region.
    pub treatment: String,
    /// Visit id.
    pub mdtrt_id: Option<String>,
    /// Admission time.
    pub begin_ms: i64,
    /// Discharge time, once known.
    pub end_ms: Option<i64>,
    /// When observed.
    pub at_ms: i64,
    /// The admission's msgid.
    pub msgid: String,
}

/// What one person did within the windows.
#[derive(Debug, Default)]
pub struct PersonWindow {
    /// Settlements, oldest first.
    pub settlements: VecDeque<Settlement>,
    /// Inpatient stays.
    pub stays: Vec<Stay>,
}

/// An invoice number seen.
#[derive(Debug, Clone)]
pub struct Invoice {
    /// The settlement that carried it.
    pub settlement: Settlement,
}

/// An institution's day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    /// Cross-region settlements.
    pub count: i64,
    /// Their total, fen.
    pub amount: i64,
    /// Insured regions seen (a few).
    pub insured: BTreeSet<String>,
}

/// The most insured regions remembered for an institution's day.
const DAY_REGIONS_MAX: usize = 8;
/// How long a visit's uploaded bill waits for its settlement.
const BILL_MS: i64 = 86_400_000;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The Asia/Shanghai day number of a time (days since 1970-01-01 there).
pub fn day_number(at_ms: i64) -> i64 {
    (at_ms + 8 * 3_600_000).div_euclid(DAY_MS)
}

/// The rules' memory.
#[derive(Debug, Default)]
pub struct Windows {
    /// By person key.
    pub persons: HashMap<String, PersonWindow>,
    /// (institution, `s:`setl_id | `m:`msgid | `v:`mdtrt_id) → person key,
    /// observed at, and whether it refers to a stay (kept as long as stays)
    /// rather than a settlement.
    refs: HashMap<(String, String), (String, i64, bool)>,
    /// (institution, invono) → the settlement that carried it.
    pub invoices: HashMap<(String, String), Invoice>,
    /// (institution, mdtrt_id) → uploaded lines, last upload at.
    bills: HashMap<(String, String), (Vec<Line>, i64)>,
    /// Institution → day number → counts.
    pub days: HashMap<String, BTreeMap<i64, Day>>,
    /// Surges already signalled: (rule index, institution, day number).
    pub surged: HashSet<(usize, String, i64)>,
    /// How long stays are kept (the longest window; the ledger's events alike).
    pub keep_ms: i64,
    /// How long settlements are kept (the longest window of the rules that
    /// look at settlements).
    pub settle_ms: i64,
    /// How many days of counts are kept.
    pub keep_days: i64,
}

impl Windows {
    /// Empty windows keeping stays `keep_ms`, settlements `settle_ms` (at
    /// most `keep_ms`) and counts `keep_days`.
    pub fn new(keep_ms: i64, settle_ms: i64, keep_days: i64) -> Windows {
        Windows {
            keep_ms,
            settle_ms: settle_ms.min(keep_ms),
            keep_days,
            ..Windows::default()
        }
    }

    /// The digest of a visit's uploaded bill, if its lines were seen.
    pub fn bill_of(&self, institution: &str, mdtrt_id: &str) -> Option<String> {
        self.bills
            .get(&(institution.to_owned(), mdtrt_id.to_owned()))
            .and_then(|(lines, _)| crate::supervision::facts::bill(lines))
    }

    /// A person's window, if they have one.
    pub fn person(&self, key: &str) -> Option<&PersonWindow> {
        self.persons.get(key)
    }

    fn person_of(&self, institution: &str, reference: String) -> Option<String> {
        self.refs
            .get(&(institution.to_owned(), reference))
            .map(|(person, _, _)| person.clone())
    }

    fn remember(
        &mut self,
        institution: &str,
        reference: String,
        person: &str,
        at_ms: i64,
        stay: bool,
    ) {
        self.refs.insert(
            (institution.to_owned(), reference),
            (person.to_owned(), at_ms, stay),
        );
    }

    /// Adds an admission.
    pub fn admit(&mut self, a: &Admission) {
        if let Some(mdtrt_id) = &a.mdtrt_id {
            self.remember(
                &a.institution,
                format!("v:{mdtrt_id}"),
                &a.person,
                a.at_ms,
                true,
            );
        }
        self.remember(
            &a.institution,
            format!("m:{}", a.msgid),
            &a.person,
            a.at_ms,
            true,
        );
        self.persons
            .entry(a.person.clone())
            .or_default()
            .stays
            .push(Stay {
                institution: a.institution.clone(),
                insured: a.insured.clone(),
                treatment: a.treatment.clone(),
                mdtrt_id: a.mdtrt_id.clone(),
                begin_ms: a.begin_ms,
                end_ms: None,
                at_ms: a.at_ms,
                msgid: a.msgid.clone(),
            });
    }

    /// Adds a settlement (and, with `count`, counts it in its institution's day).
    pub fn settle(&mut self, s: &Settlement, count: bool) {
        if let Some(setl_id) = &s.setl_id {
            self.remember(
                &s.institution,
                format!("s:{setl_id}"),
                &s.person,
                s.at_ms,
                false,
            );
        }
        self.remember(
            &s.institution,
            format!("m:{}", s.msgid),
            &s.person,
            s.at_ms,
            false,
        );
        if let Some(invono) = &s.invono {
            self.invoices.insert(
                (s.institution.clone(), invono.clone()),
                Invoice {
                    settlement: s.clone(),
                },
            );
        }
        if let Some(mdtrt_id) = &s.mdtrt_id {
            self.bills
                .remove(&(s.institution.clone(), mdtrt_id.clone()));
        }
        if count {
            self.count(s);
        }
        self.persons
            .entry(s.person.clone())
            .or_default()
            .settlements
            .push_back(s.clone());
    }

    /// Counts a cross-region settlement in its institution's day.
    fn count(&mut self, s: &Settlement) {
        if s.insured.get(..2) == s.treatment.get(..2) {
            return;
        }
        let day = self
            .days
            .entry(s.institution.clone())
            .or_default()
            .entry(day_number(s.at_ms))
            .or_default();
        day.count += 1;
        day.amount = day.amount.saturating_add(s.amount.fen());
        if day.insured.len() < DAY_REGIONS_MAX {
            day.insured.insert(s.insured.clone());
        }
    }

    /// Loads a stored daily count.
    pub fn load_day(&mut self, institution: &str, day: i64, count: i64, amount: i64) {
        let entry = self
            .days
            .entry(institution.to_owned())
            .or_default()
            .entry(day)
            .or_default();
        entry.count = count;
        entry.amount = amount;
    }

    /// Applies a fact (settlements counted in their day with `count`).
    pub fn apply(&mut self, fact: &Fact, count: bool) {
        match fact {
            Fact::Admission(a) => self.admit(a),
            Fact::Settlement(s) => self.settle(s, count),
            Fact::Discharge {
                institution,
                mdtrt_id,
                end_ms,
                ..
            } => {
                if let Some(person) = self.person_of(institution, format!("v:{mdtrt_id}")) {
                    if let Some(window) = self.persons.get_mut(&person) {
                        for stay in &mut window.stays {
                            if stay.institution == *institution
                                && stay.mdtrt_id.as_deref() == Some(mdtrt_id)
                            {
                                stay.end_ms = Some(*end_ms);
                            }
                        }
                    }
                }
            }
            Fact::AdmissionCancel {
                institution,
                mdtrt_id,
                ..
            } => {
                if let Some(person) = self.person_of(institution, format!("v:{mdtrt_id}")) {
                    if let Some(window) = self.persons.get_mut(&person) {
                        window.stays.retain(|s| {
                            !(s.institution == *institution
                                && s.mdtrt_id.as_deref() == Some(mdtrt_id))
                        });
                    }
                }
            }
            Fact::Cancel {
                institution,
                setl_id,
                ..
            } => {
                if let Some(person) = self.person_of(institution, format!("s:{setl_id}")) {
                    self.forget(&person, institution, |s| {
                        s.setl_id.as_deref() == Some(setl_id)
                    });
                }
            }
            Fact::Reversal {
                institution,
                omsgid,
                ..
            } => {
                if let Some(person) = self.person_of(institution, format!("m:{omsgid}")) {
                    self.forget(&person, institution, |s| s.msgid == *omsgid);
                    if let Some(window) = self.persons.get_mut(&person) {
                        window
                            .stays
                            .retain(|s| !(s.institution == *institution && s.msgid == *omsgid));
                    }
                }
            }
            Fact::FeeUpload {
                institution,
                mdtrt_id,
                lines,
                at_ms,
            } => {
                let entry = self
                    .bills
                    .entry((institution.clone(), mdtrt_id.clone()))
                    .or_default();
                entry.0.extend(lines.iter().cloned());
                entry.1 = *at_ms;
            }
        }
    }

    /// Removes a person's settlements at `institution` matching `which`
    /// (a cancel or a reversal: it did not happen, or no longer counts).
    fn forget(&mut self, person: &str, institution: &str, which: impl Fn(&Settlement) -> bool) {
        let Some(window) = self.persons.get_mut(person) else {
            return;
        };
        let mut gone = Vec::new();
        window.settlements.retain(|s| {
            let drop = s.institution == institution && which(s);
            if drop {
                gone.push(s.clone());
            }
            !drop
        });
        for s in gone {
            if let Some(invono) = &s.invono {
                let key = (s.institution.clone(), invono.clone());
                if self
                    .invoices
                    .get(&key)
                    .is_some_and(|i| i.settlement.msgid == s.msgid)
                {
                    self.invoices.remove(&key);
                }
            }
        }
    }

    /// Drops everything older than its window at `now_ms`.
    pub fn prune(&mut self, now_ms: i64) {
        let horizon = now_ms - self.keep_ms;
        let settled_horizon = now_ms - self.settle_ms;
        self.persons.retain(|_, window| {
            while window
                .settlements
                .front()
                .is_some_and(|s| s.at_ms < settled_horizon)
            {
                window.settlements.pop_front();
            }
            window.stays.retain(|stay| {
                stay.at_ms >= horizon && stay.end_ms.is_none_or(|end| end + DAY_MS >= now_ms)
            });
            !window.settlements.is_empty() || !window.stays.is_empty()
        });
        self.refs
            .retain(|_, (_, at, stay)| *at >= if *stay { horizon } else { settled_horizon });
        self.invoices
            .retain(|_, invoice| invoice.settlement.at_ms >= settled_horizon);
        self.bills.retain(|_, (_, at)| *at + BILL_MS >= now_ms);
        let first_day = day_number(now_ms) - self.keep_days;
        self.days.retain(|_, days| {
            days.retain(|day, _| *day >= first_day);
            !days.is_empty()
        });
        self.surged.retain(|(_, _, day)| *day >= first_day);
    }

    /// How many things are remembered (for tests and metrics).
    pub fn size(&self) -> usize {
        self.persons
            .values()
            .map(|w| w.settlements.len() + w.stays.len())
            .sum::<usize>()
            + self.refs.len()
            + self.invoices.len()
            + self.bills.len()
            + self.days.values().map(BTreeMap::len).sum::<usize>()
    }
}
