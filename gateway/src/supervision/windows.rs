//! The rules' memory: per person, their settlements and inpatient stays
//! within the longest window; per institution, its daily counts within the
//! surge baseline. Bounded: everything older than its window is dropped by
//! [`Windows::prune`], so memory follows the traffic of the last window, not
//! the life of the process.
//!
//! Compact, for national scale (issue 11): a settlement is one record
//! ([`Held`]) in a slab, in its person's chain (oldest first) and named by
//! its id in three indexes: by settlement id and by msgid (for cancels and
//! reversals), by invoice number (for `duplicate_bill`). Stays, far fewer,
//! are kept per person and found by (institution, visit) and (institution,
//! msgid); a msgid leads to the last settlement or stay that carried it.
//! Persons are found by their key's 32 bytes.
//!
//! An index entry lives as long as the item it names (its record, while
//! its person's window holds it; its stay). The windows used to keep a
//! reference from an id to a person for the whole window instead; one whose
//! item is gone led nowhere (the cancel, reversal or admission cancel took
//! all of that person's items with the id) unless the person had another
//! item with the id, and that is the item the entry then names
//! (`repoint`). The rules find the same either way.

use crate::supervision::codes::{Code, Codes};
use crate::supervision::facts::{Admission, Fact, Line, Settlement};
use crate::supervision::held::{Held, HeldSettlement, HeldStay, Stay, Tail};
use crate::supervision::index::Index;
use crate::supervision::keys::{Digest, Digester, PersonKey};
use crate::supervision::slab::{Slab, NONE};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

/// A key whose entry an item took out of an index.
enum Key {
    /// A settlement id.
    Setl(Box<str>),
    /// A msgid.
    Msgid(Digest),
}

/// A person with a window.
#[derive(Debug)]
struct Person {
    key: PersonKey,
    /// Their oldest settlement held (`NONE`: none).
    first: u32,
    /// Their newest.
    last: u32,
    /// When their oldest was (the prune reads it here, not in the record).
    first_at: i64,
    /// Whether a settlement came in older than the one before it: then the
    /// prune also looks behind the oldest.
    disordered: bool,
}

/// The rules' memory.
#[derive(Debug, Default)]
pub struct Windows {
    /// The codes held.
    codes: Codes,
    /// Digests of the ids held.
    digester: Digester,
    /// Persons with a window.
    persons: Slab<Person>,
    /// Persons by key.
    person_ids: Index,
    /// Settlements.
    settlements: Slab<Held>,
    /// Bytes of the settlements' tails.
    tail_bytes: usize,
    /// Settlements by (institution, setl_id): the last one.
    by_setl: Index,
    /// Settlements by (institution, msgid): the last one.
    by_msgid: Index,
    /// Settlements by (institution, invono): the last one.
    invoices: Index,
    /// Stays by person.
    stays: HashMap<u32, Vec<Stay>>,
    /// (institution, mdtrt_id) → the person of the last stay.
    stay_by_visit: HashMap<(Code, Digest), u32>,
    /// (institution, msgid) → the person of the last stay.
    stay_by_msgid: HashMap<(Code, Digest), u32>,
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

/// The hash of a settlement's key in `by_msgid`.
fn msgid_hash(held: &Held) -> u64 {
    held.msgid.with(held.institution.number())
}

/// The hash of a settlement's key in `invoices`.
fn invoice_hash(held: &Held) -> Option<u64> {
    Some(held.invono?.with(held.institution.number()))
}

/// The hash of a settlement's key in `by_setl`.
fn setl_hash(digester: &Digester, held: &Held) -> Option<u64> {
    Some(digester.hash((held.institution, held.tail.setl_id()?)))
}

/// A person's settlements, oldest first.
struct Chain<'a> {
    settlements: &'a Slab<Held>,
    codes: &'a Codes,
    next: u32,
}

impl<'a> Iterator for Chain<'a> {
    type Item = HeldSettlement<'a>;

    fn next(&mut self) -> Option<HeldSettlement<'a>> {
        let held = self.settlements.get(self.next)?;
        self.next = held.next;
        Some(HeldSettlement::new(held, self.codes))
    }
}

/// Where a prune in slices is ([`Windows::prune_start`]).
#[derive(Debug)]
pub struct Prune {
    now_ms: i64,
    /// The people who had stays when it began.
    with_stays: Vec<u32>,
    next_stay: usize,
    next_person: u32,
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

    /// The digest of an id, to compare with the digests held.
    pub fn digest(&self, id: &str) -> Digest {
        self.digester.of(id)
    }

    /// The digest of a visit's uploaded bill, if its lines were seen.
    pub fn bill_of(&self, institution: &str, mdtrt_id: &str) -> Option<String> {
        self.bills
            .get(&(institution.to_owned(), mdtrt_id.to_owned()))
            .and_then(|(lines, _)| crate::supervision::facts::bill(lines))
    }

    fn person_id(&self, key: &PersonKey) -> Option<u32> {
        self.person_ids.get(key.hash(), |id| {
            self.persons.get(id).is_some_and(|p| p.key == *key)
        })
    }

    fn person_or_new(&mut self, key: PersonKey) -> Option<u32> {
        if let Some(id) = self.person_id(&key) {
            return Some(id);
        }
        let id = self.persons.insert(Person {
            key,
            first: NONE,
            last: NONE,
            first_at: 0,
            disordered: false,
        })?;
        let persons = &self.persons;
        self.person_ids.put(id, key.hash(), |other| {
            persons.get(other).is_some_and(|p| p.key == key)
        });
        Some(id)
    }

    /// The settlements of `person`, oldest first, if they have a window
    /// (settlements or stays, or had some since the last prune).
    pub fn settlements_of(&self, person: &str) -> Option<impl Iterator<Item = HeldSettlement<'_>>> {
        let id = self.person_id(&PersonKey::of(person))?;
        Some(Chain {
            settlements: &self.settlements,
            codes: &self.codes,
            next: self.persons.get(id).map_or(NONE, |p| p.first),
        })
    }

    /// The stays of `person`, in the order admitted.
    pub fn stays_of(&self, person: &str) -> impl Iterator<Item = HeldStay<'_>> {
        self.person_id(&PersonKey::of(person))
            .and_then(|id| self.stays.get(&id))
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|stay| HeldStay::new(stay, &self.codes))
    }

    /// The last settlement that carried invoice `invono` at `institution`.
    pub fn invoice(&self, institution: &str, invono: &str) -> Option<HeldSettlement<'_>> {
        let code = self.codes.find(institution)?;
        let digest = self.digester.of(invono);
        let id = self.invoices.get(digest.with(code.number()), |id| {
            self.settlements
                .get(id)
                .is_some_and(|h| h.institution == code && h.invono == Some(digest))
        })?;
        Some(HeldSettlement::new(self.settlements.get(id)?, &self.codes))
    }

    /// Adds an admission.
    pub fn admit(&mut self, a: &Admission) {
        let Some(person) = self.person_or_new(PersonKey::of(&a.person)) else {
            return;
        };
        let stay = Stay {
            institution: self.codes.intern(&a.institution),
            insured: self.codes.intern(&a.insured),
            treatment: self.codes.intern(&a.treatment),
            begin_ms: a.begin_ms,
            end_ms: None,
            at_ms: a.at_ms,
            msgid: self.digester.of(&a.msgid),
            mdtrt_id: a.mdtrt_id.as_deref().map(Box::from),
        };
        if let Some(mdtrt_id) = &a.mdtrt_id {
            self.stay_by_visit
                .insert((stay.institution, self.digester.of(mdtrt_id)), person);
        }
        self.stay_by_msgid
            .insert((stay.institution, stay.msgid), person);
        let hash = stay.msgid.with(stay.institution.number());
        let settled = self.by_msgid.get(hash, |id| {
            self.settlements
                .get(id)
                .is_some_and(|h| h.institution == stay.institution && h.msgid == stay.msgid)
        });
        if let Some(id) = settled {
            self.by_msgid.remove(id, hash);
        }
        self.stays.entry(person).or_default().push(stay);
    }

    /// Adds a settlement (and, with `count`, counts it in its institution's day).
    pub fn settle(&mut self, s: &Settlement, count: bool) {
        if let Some(mdtrt_id) = &s.mdtrt_id {
            self.bills
                .remove(&(s.institution.clone(), mdtrt_id.clone()));
        }
        if count {
            self.count(s);
        }
        let Some(person) = self.person_or_new(PersonKey::of(&s.person)) else {
            return;
        };
        let drugs: Vec<(Code, i64)> = s
            .drugs
            .iter()
            .map(|(code, quantity)| (self.codes.intern(code), *quantity))
            .collect();
        let codes = [
            self.codes.intern(&s.institution),
            self.codes.intern(&s.insured),
            self.codes.intern(&s.treatment),
        ];
        let held = Held {
            at_ms: s.at_ms,
            amount: s.amount,
            msgid: self.digester.of(&s.msgid),
            invono: s.invono.as_deref().map(|i| self.digester.of(i)),
            bill: s.bill.as_deref().map(|b| self.digester.of(b)),
            person,
            next: NONE,
            institution: codes[0],
            insured: codes[1],
            treatment: codes[2],
            kind: s.kind,
            tail: Tail::new(s.mdtrt_id.as_deref(), s.setl_id.as_deref(), &drugs),
        };
        let tail = held.tail.bytes();
        let msgid = held.msgid;
        match self.settlements.insert(held) {
            Some(id) => {
                self.tail_bytes += tail;
                self.index(id);
                self.stay_by_msgid.remove(&(codes[0], msgid));
                self.append(person, id);
            }
            None => {
                // Four thousand million settlements held: more than memory holds.
                for code in drugs.into_iter().map(|(code, _)| code).chain(codes) {
                    self.codes.release(code);
                }
            }
        }
    }

    /// Puts settlement `id` in the indexes, in place of the last of its keys.
    fn index(&mut self, id: u32) {
        self.index_msgid(id);
        self.index_setl(id);
        self.index_invoice(id);
    }

    /// Puts settlement `id` in `by_msgid`.
    fn index_msgid(&mut self, id: u32) {
        let settlements = &self.settlements;
        let Some(held) = settlements.get(id) else {
            return;
        };
        self.by_msgid.put(id, msgid_hash(held), |other| {
            settlements
                .get(other)
                .is_some_and(|o| o.institution == held.institution && o.msgid == held.msgid)
        });
    }

    /// Puts settlement `id` in `by_setl`, if it has a settlement id.
    fn index_setl(&mut self, id: u32) {
        let (settlements, digester) = (&self.settlements, &self.digester);
        let Some(held) = settlements.get(id) else {
            return;
        };
        let Some(hash) = setl_hash(digester, held) else {
            return;
        };
        self.by_setl.put(id, hash, |other| {
            settlements.get(other).is_some_and(|o| {
                o.institution == held.institution && o.tail.setl_id() == held.tail.setl_id()
            })
        });
    }

    /// Puts settlement `id` in `invoices`, if it has an invoice number.
    fn index_invoice(&mut self, id: u32) {
        let settlements = &self.settlements;
        let Some(held) = settlements.get(id) else {
            return;
        };
        let Some(hash) = invoice_hash(held) else {
            return;
        };
        self.invoices.put(id, hash, |other| {
            settlements
                .get(other)
                .is_some_and(|o| o.institution == held.institution && o.invono == held.invono)
        });
    }

    /// Takes settlement `id` out of the indexes that name it; whether
    /// `by_setl` and `by_msgid` did.
    fn unindex(&mut self, id: u32) -> (bool, bool) {
        let Some(held) = self.settlements.get(id) else {
            return (false, false);
        };
        let by_msgid = self.by_msgid.remove(id, msgid_hash(held));
        let by_setl =
            setl_hash(&self.digester, held).is_some_and(|hash| self.by_setl.remove(id, hash));
        if let Some(hash) = invoice_hash(held) {
            self.invoices.remove(id, hash);
        }
        (by_setl, by_msgid)
    }

    /// The id of `person`'s last settlement at `institution` matching `which`.
    fn last_of(
        &self,
        person: u32,
        institution: Code,
        which: impl Fn(&Held) -> bool,
    ) -> Option<u32> {
        let mut current = self.persons.get(person)?.first;
        let mut found = None;
        while let Some(held) = self.settlements.get(current) {
            if held.institution == institution && which(held) {
                found = Some(current);
            }
            current = held.next;
        }
        found
    }

    /// After a cancel, a reversal or an admission cancel took out the item
    /// (settlement or stay) a key's entry named: the entry names another
    /// item of the same person with that key, if they have one — the key
    /// still leads to the person, as it did when entries named persons.
    fn repoint(&mut self, person: u32, institution: Code, key: Key) {
        match key {
            Key::Setl(setl_id) => {
                if let Some(id) =
                    self.last_of(person, institution, |h| h.tail.setl_id() == Some(&*setl_id))
                {
                    self.index_setl(id);
                }
            }
            Key::Msgid(msgid) => {
                if let Some(id) = self.last_of(person, institution, |h| h.msgid == msgid) {
                    self.index_msgid(id);
                } else if self.stays.get(&person).is_some_and(|stays| {
                    stays
                        .iter()
                        .any(|s| s.institution == institution && s.msgid == msgid)
                }) {
                    self.stay_by_msgid.insert((institution, msgid), person);
                }
            }
        }
    }

    /// Drops settlement `id` (out of its person's chain already).
    fn drop_settlement(&mut self, id: u32) {
        self.unindex(id);
        let Some(held) = self.settlements.remove(id) else {
            return;
        };
        self.tail_bytes = self.tail_bytes.saturating_sub(held.tail.bytes());
        for (code, _) in held.tail.drugs() {
            self.codes.release(code);
        }
        for code in [held.institution, held.insured, held.treatment] {
            self.codes.release(code);
        }
    }

    /// Adds settlement `id` at the end of `person`'s chain.
    fn append(&mut self, person: u32, id: u32) {
        let Some(at_ms) = self.settlements.get(id).map(|h| h.at_ms) else {
            return;
        };
        let Some(p) = self.persons.get_mut(person) else {
            return;
        };
        if let Some(last) = self.settlements.get_mut(p.last) {
            last.next = id;
            p.disordered |= at_ms < last.at_ms;
        } else {
            p.first = id;
            p.first_at = at_ms;
            p.disordered = false;
        }
        p.last = id;
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
                let Some(code) = self.codes.find(institution) else {
                    return;
                };
                let visit = (code, self.digester.of(mdtrt_id));
                let Some(person) = self.stay_by_visit.get(&visit) else {
                    return;
                };
                for stay in self.stays.get_mut(person).into_iter().flatten() {
                    if stay.institution == code && stay.mdtrt_id.as_deref() == Some(mdtrt_id) {
                        stay.end_ms = Some(*end_ms);
                    }
                }
            }
            Fact::AdmissionCancel {
                institution,
                mdtrt_id,
                ..
            } => {
                let Some(code) = self.codes.find(institution) else {
                    return;
                };
                let visit = (code, self.digester.of(mdtrt_id));
                if let Some(&person) = self.stay_by_visit.get(&visit) {
                    self.end_stays(person, |s| {
                        s.institution == code && s.mdtrt_id.as_deref() == Some(mdtrt_id)
                    });
                }
            }
            Fact::Cancel {
                institution,
                setl_id,
                ..
            } => {
                let Some(code) = self.codes.find(institution) else {
                    return;
                };
                let hash = self.digester.hash((code, setl_id.as_str()));
                let found = self.by_setl.get(hash, |id| {
                    self.settlements.get(id).is_some_and(|h| {
                        h.institution == code && h.tail.setl_id() == Some(setl_id.as_str())
                    })
                });
                if let Some(person) = found
                    .and_then(|id| self.settlements.get(id))
                    .map(|h| h.person)
                {
                    self.forget(person, code, |h| h.tail.setl_id() == Some(setl_id.as_str()));
                }
            }
            Fact::Reversal {
                institution,
                omsgid,
                ..
            } => {
                let Some(code) = self.codes.find(institution) else {
                    return;
                };
                let msgid = self.digester.of(omsgid);
                let settled = self
                    .by_msgid
                    .get(msgid.with(code.number()), |id| {
                        self.settlements
                            .get(id)
                            .is_some_and(|h| h.institution == code && h.msgid == msgid)
                    })
                    .and_then(|id| self.settlements.get(id))
                    .map(|h| h.person);
                let person = settled.or_else(|| self.stay_by_msgid.get(&(code, msgid)).copied());
                if let Some(person) = person {
                    self.forget(person, code, |h| h.msgid == msgid);
                    self.end_stays(person, |s| s.institution == code && s.msgid == msgid);
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
    fn forget(&mut self, person: u32, institution: Code, which: impl Fn(&Held) -> bool) {
        let Some(p) = self.persons.get(person) else {
            return;
        };
        let (mut first, mut last) = (p.first, p.last);
        let mut gone = Vec::new();
        let mut previous = NONE;
        let mut current = first;
        while let Some(held) = self.settlements.get(current) {
            let next = held.next;
            if held.institution == institution && which(held) {
                gone.push(current);
                match self.settlements.get_mut(previous) {
                    Some(before) => before.next = next,
                    None => first = next,
                }
                if current == last {
                    last = previous;
                }
            } else {
                previous = current;
            }
            current = next;
        }
        if gone.is_empty() {
            return;
        }
        let first_at = self.settlements.get(first).map_or(0, |h| h.at_ms);
        if let Some(p) = self.persons.get_mut(person) {
            (p.first, p.last, p.first_at) = (first, last, first_at);
        }
        // An invoice no longer counts when the settlement it names has the
        // msgid of one forgotten.
        for &id in &gone {
            let Some(held) = self.settlements.get(id) else {
                continue;
            };
            let Some(hash) = invoice_hash(held) else {
                continue;
            };
            let named = self.invoices.get(hash, |other| {
                self.settlements
                    .get(other)
                    .is_some_and(|o| o.institution == held.institution && o.invono == held.invono)
            });
            if let Some(named) = named {
                if self
                    .settlements
                    .get(named)
                    .is_some_and(|n| n.msgid == held.msgid)
                {
                    self.invoices.remove(named, hash);
                }
            }
        }
        let mut keys = Vec::new();
        for &id in &gone {
            let setl_id = self
                .settlements
                .get(id)
                .and_then(|h| h.tail.setl_id().map(Box::from));
            let msgid = self.settlements.get(id).map(|h| h.msgid);
            let (by_setl, by_msgid) = self.unindex(id);
            keys.extend(setl_id.filter(|_| by_setl).map(Key::Setl));
            keys.extend(msgid.filter(|_| by_msgid).map(Key::Msgid));
        }
        for id in gone {
            self.drop_settlement(id);
        }
        for key in keys {
            self.repoint(person, institution, key);
        }
    }

    /// Removes a person's stays matching `which`.
    fn end_stays(&mut self, person: u32, which: impl Fn(&Stay) -> bool) {
        let Some(stays) = self.stays.get_mut(&person) else {
            return;
        };
        let mut gone = Vec::new();
        let mut i = 0;
        while i < stays.len() {
            if which(&stays[i]) {
                gone.push(stays.remove(i));
            } else {
                i += 1;
            }
        }
        for stay in gone {
            self.drop_stay(person, stay, true);
        }
    }

    /// Drops a stay removed from its person's: its index entries (unless
    /// another stay of theirs has the same key; with `repoint`, the msgid's
    /// entry then names a settlement of theirs with it, if any) and its codes.
    fn drop_stay(&mut self, person: u32, stay: Stay, repoint: bool) {
        let others = self.stays.get(&person).map_or(&[][..], Vec::as_slice);
        let visit = stay
            .mdtrt_id
            .as_deref()
            .map(|id| (stay.institution, self.digester.of(id)));
        if let Some(visit) = visit {
            let kept = others
                .iter()
                .any(|s| s.institution == stay.institution && s.mdtrt_id == stay.mdtrt_id);
            if !kept && self.stay_by_visit.get(&visit) == Some(&person) {
                self.stay_by_visit.remove(&visit);
            }
        }
        let message = (stay.institution, stay.msgid);
        let kept = others
            .iter()
            .any(|s| s.institution == stay.institution && s.msgid == stay.msgid);
        if !kept && self.stay_by_msgid.get(&message) == Some(&person) {
            self.stay_by_msgid.remove(&message);
            if repoint {
                self.repoint(person, stay.institution, Key::Msgid(stay.msgid));
            }
        }
        for code in [stay.institution, stay.insured, stay.treatment] {
            self.codes.release(code);
        }
    }

    /// Drops everything older than its window at `now_ms`, in one go (at
    /// start; the task prunes in slices: [`Windows::prune_start`], then
    /// [`Windows::prune_slice`] until it says it is done).
    pub fn prune(&mut self, now_ms: i64) {
        let mut prune = self.prune_start(now_ms);
        while !self.prune_slice(&mut prune, u32::MAX) {}
    }

    /// Begins a prune at `now_ms`: drops the bills, daily counts and surges
    /// older than their windows (small), and notes the people with stays;
    /// the stays and the settlements are dropped by [`Windows::prune_slice`].
    pub fn prune_start(&mut self, now_ms: i64) -> Prune {
        self.bills.retain(|_, (_, at)| *at + BILL_MS >= now_ms);
        let first_day = day_number(now_ms) - self.keep_days;
        self.days.retain(|_, days| {
            days.retain(|day, _| *day >= first_day);
            !days.is_empty()
        });
        self.surged.retain(|(_, _, day)| *day >= first_day);
        Prune {
            now_ms,
            with_stays: self.stays.keys().copied().collect(),
            next_stay: 0,
            next_person: 0,
        }
    }

    /// One slice of a prune: the stays of at most `count` of the people
    /// noted, or once those are done the settlements of at most `count`
    /// people (stopping once `count` settlements are dropped); `true` when
    /// every one has been seen. Between two slices the
    /// windows may be read and changed as usual (someone noted may have no
    /// stay left by then, someone new has none old enough to drop).
    pub fn prune_slice(&mut self, prune: &mut Prune, count: u32) -> bool {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if prune.next_stay < prune.with_stays.len() {
            let end = prune
                .next_stay
                .saturating_add(count)
                .min(prune.with_stays.len());
            let horizon = prune.now_ms - self.keep_ms;
            for at in prune.next_stay..end {
                self.prune_stays_of(prune.with_stays[at], horizon, prune.now_ms);
            }
            prune.next_stay = end;
            return false;
        }
        let horizon = prune.now_ms - self.settle_ms;
        let bound = self.persons.bound();
        let end = u32::try_from(count)
            .map_or(bound, |count| prune.next_person.saturating_add(count))
            .min(bound);
        // At most `count` settlements dropped too: when a whole day expires
        // at once, one slice of people can hold many of them.
        let mut dropped = 0;
        let mut person = prune.next_person;
        while person < end && dropped < count {
            dropped += self.prune_person(person, horizon);
            person += 1;
        }
        prune.next_person = person;
        person >= bound
    }

    /// Drops a person's stays that began before `horizon`, or ended more
    /// than a day before `now_ms`.
    fn prune_stays_of(&mut self, person: u32, horizon: i64, now_ms: i64) {
        let Some(stays) = self.stays.get_mut(&person) else {
            return;
        };
        let mut gone = Vec::new();
        let mut i = 0;
        while i < stays.len() {
            let stay = &stays[i];
            if stay.at_ms >= horizon && stay.end_ms.is_none_or(|end| end + DAY_MS >= now_ms) {
                i += 1;
            } else {
                gone.push(stays.remove(i));
            }
        }
        if stays.is_empty() {
            self.stays.remove(&person);
        }
        for stay in gone {
            // A stay discharged long enough ago goes before its entries did.
            let repoint = stay.at_ms >= horizon;
            self.drop_stay(person, stay, repoint);
        }
    }

    /// Drops a person's settlements older than `horizon`, from the oldest
    /// (one behind a newer is kept, out of the indexes, until that one
    /// goes), and the person when nothing of theirs is left; how many
    /// settlements it dropped.
    fn prune_person(&mut self, person: u32, horizon: i64) -> usize {
        let Some(p) = self.persons.get(person) else {
            return 0;
        };
        let mut count = 0;
        let (key, mut first, disordered) = (p.key, p.first, p.disordered);
        if first != NONE && p.first_at < horizon {
            let mut dropped = Vec::new();
            while let Some(held) = self.settlements.get(first).filter(|h| h.at_ms < horizon) {
                dropped.push(first);
                first = held.next;
            }
            let first_at = self.settlements.get(first).map_or(0, |h| h.at_ms);
            if let Some(p) = self.persons.get_mut(person) {
                (p.first, p.first_at) = (first, first_at);
                if first == NONE {
                    (p.last, p.disordered) = (NONE, false);
                }
            }
            count = dropped.len();
            for id in dropped {
                self.drop_settlement(id);
            }
        }
        if disordered {
            let mut current = first;
            let mut behind = Vec::new();
            while let Some(held) = self.settlements.get(current) {
                if held.at_ms < horizon {
                    behind.push(current);
                }
                current = held.next;
            }
            for id in behind {
                self.unindex(id);
            }
        }
        if first == NONE && !self.stays.contains_key(&person) {
            self.person_ids.remove(person, key.hash());
            self.persons.remove(person);
        }
        count
    }

    /// How many settlements are held.
    pub fn settlements_held(&self) -> usize {
        self.settlements.len()
    }

    /// How many things are remembered (for tests and metrics): settlements,
    /// stays, index entries, uploaded bills, institutions' days.
    pub fn size(&self) -> usize {
        self.settlements.len()
            + self.stays.values().map(Vec::len).sum::<usize>()
            + self.by_setl.len()
            + self.by_msgid.len()
            + self.invoices.len()
            + self.stay_by_visit.len()
            + self.stay_by_msgid.len()
            + self.bills.len()
            + self.days.values().map(BTreeMap::len).sum::<usize>()
    }

    /// Bytes allocated, by structure (heap allocations as requested, without
    /// the allocator's own overhead; strings of the bills and days not counted).
    pub fn footprint(&self) -> Vec<(&'static str, usize)> {
        let stays: usize = self
            .stays
            .values()
            .map(|v| {
                v.capacity() * std::mem::size_of::<Stay>()
                    + v.iter()
                        .map(|s| s.mdtrt_id.as_ref().map_or(0, |m| m.len()))
                        .sum::<usize>()
            })
            .sum();
        let entry = |key: usize, value: usize| key + value + 1;
        vec![
            ("settlement records", self.settlements.bytes()),
            ("settlement tails", self.tail_bytes),
            ("settlement indexes", {
                self.by_setl.bytes() + self.by_msgid.bytes() + self.invoices.bytes()
            }),
            ("persons", self.persons.bytes() + self.person_ids.bytes()),
            (
                "stays",
                stays
                    + self.stays.capacity() * entry(4, std::mem::size_of::<Vec<Stay>>())
                    + (self.stay_by_visit.capacity() + self.stay_by_msgid.capacity())
                        * entry(std::mem::size_of::<(Code, Digest)>(), 4),
            ),
            ("codes", self.codes.bytes()),
            (
                "days and surges",
                self.days.capacity() * entry(24, 24)
                    + self.days.values().map(BTreeMap::len).sum::<usize>()
                        * std::mem::size_of::<(i64, Day)>()
                    + self.surged.capacity() * entry(48, 0),
            ),
            (
                "uploaded bills",
                self.bills.capacity() * entry(48, 32)
                    + self
                        .bills
                        .values()
                        .map(|(lines, _)| lines.capacity() * std::mem::size_of::<Line>())
                        .sum::<usize>(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervision::facts::{Admission, SettleKind, Settlement};
    use contracts::Money;

    const HOUR_MS: i64 = 3_600_000;

    /// Windows of two days holding, for each of 40 people, a settlement an
    /// hour for three days, out of order for every fifth, and a stay each.
    fn filled() -> Windows {
        let mut windows = Windows::new(2 * DAY_MS, 2 * DAY_MS, 3);
        for n in 0..40_i64 {
            let person = format!("{n:064x}");
            let mut hours: Vec<i64> = (0..72).collect();
            if n % 5 == 0 {
                hours.swap(3, 40);
            }
            for hour in hours {
                let at_ms = hour * HOUR_MS;
                windows.apply(
                    &Fact::Settlement(Settlement {
                        person: person.clone(),
                        institution: format!("H{}", n % 7),
                        insured: "110000".into(),
                        treatment: "120000".into(),
                        kind: SettleKind::Outpatient,
                        mdtrt_id: Some(format!("V{n}-{hour}")),
                        setl_id: Some(format!("S{n}-{hour}")),
                        amount: Money::from_fen(100 + hour).unwrap_or_default(),
                        invono: Some(format!("I{n}-{hour}")),
                        bill: None,
                        drugs: Vec::new(),
                        at_ms,
                        msgid: format!("M{n}-{hour}"),
                    }),
                    true,
                );
            }
            windows.apply(
                &Fact::Admission(Admission {
                    person,
                    institution: "H9".into(),
                    insured: "110000".into(),
                    treatment: "130000".into(),
                    mdtrt_id: Some(format!("A{n}")),
                    begin_ms: n * HOUR_MS,
                    at_ms: n * HOUR_MS,
                    msgid: format!("MA{n}"),
                }),
                true,
            );
        }
        windows
    }

    #[test]
    fn a_prune_in_slices_forgets_what_a_prune_in_one_go_forgets() {
        let now = 80 * HOUR_MS;
        let mut whole = filled();
        let before = whole.settlements_held();
        whole.prune(now);
        let mut sliced = filled();
        let mut prune = sliced.prune_start(now);
        let mut slices = 1;
        while !sliced.prune_slice(&mut prune, 3) {
            slices += 1;
        }
        // 40 people with stays and 40 with settlements, 3 at a time, and
        // more slices as each stops once 3 settlements are dropped.
        assert!(slices > 14 + 14, "{slices}");
        // Hours 32 to 71 are within two days of hour 80: 40 a person. For
        // the eight people out of order (hour 40 came fourth), hours 3 to 31
        // stay too, behind hour 40, out of the indexes, until it goes.
        assert_eq!(before, 40 * 72);
        assert_eq!(whole.settlements_held(), 40 * 40 + 8 * 29);
        assert_eq!(sliced.settlements_held(), whole.settlements_held());
        assert_eq!(sliced.size(), whole.size());
        for n in [0_i64, 1, 39] {
            let person = format!("{n:064x}");
            let at = |w: &Windows| -> Vec<i64> {
                w.settlements_of(&person)
                    .map(|s| s.map(|h| h.at_ms()).collect())
                    .unwrap_or_default()
            };
            assert_eq!(at(&sliced), at(&whole));
            if n % 5 != 0 {
                assert!(at(&whole).iter().all(|&t| t >= now - 2 * DAY_MS), "{n}");
            }
        }
        // Past every window, nothing is left either way.
        let later = now + 10 * DAY_MS;
        whole.prune(later);
        let mut prune = sliced.prune_start(later);
        while !sliced.prune_slice(&mut prune, 7) {}
        assert_eq!((whole.size(), sliced.size()), (0, 0));
    }
}
