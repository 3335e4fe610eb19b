//! Reconciliation of one clearing day: the gateway's journal against each
//! region's own statement (both in the form of `contracts/statement.md`).
//!
//! ```text
//! gateway rows ──▶ index (key → compact slot) ──┐
//!                                                ├─▶ totals (对总账) + discrepancies (对明细账) ─▶ Outcome
//! statement rows (one region at a time) ─────────┘
//! ```
//!
//! A row is identified on both sides by its **key**: (institution, settling
//! msgid, settle-or-undo). The gateway's rows are read once into a compact
//! `index` (a 32-byte slot per row: the key, a digest of the compared
//! fields and where the row is in the source, and a table from key to slot),
//! so ten million rows fit in a few hundred megabytes. Statement rows are
//! streamed against it (looked for first just after the last row matched:
//! both sides are in settlement-time order): equal
//! digests match at once; unequal ones are compared field by field after the
//! gateway's row is read back from its source. Totals per region, insurance
//! type and clearing type are summed while streaming.
//!
//! Discrepancy classes:
//! - `only_in_gateway` / `only_in_region`: a settlement one side has and the other lacks;
//! - `amount_differs`: the same settlement with different amounts (which, by how much);
//! - `state_differs`: a cancel or reversal on one side only, or a cancel on one
//!   side that is a reversal on the other;
//! - `field_differs`: the same settlement with a different `setl_id`,
//!   insurance type, clearing type or regions;
//! - `duplicate`: the same key twice on one side.
//!
//! Late rows of days already closed (see `contracts/statement.md`) come with
//! a later day's sources and are adjustments of that day; one without a
//! partner there is looked up on its own day's other side ([`Earlier`]).
//!
//! A call whose outcome the gateway never learned (its answer was lost) has
//! no amounts in the gateway's rows: it matches the region's rows without
//! comparing amounts, and when the gateway reversed it and the region has no
//! trace of it, nothing happened and nothing is reported.

use crate::route::Routes;
use contracts::money::Money;
use contracts::statement::{Reader, Row, RowRef, StatementError};
use contracts::{Admdvs, Date, DateTime};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, Seek, SeekFrom};

mod index;
use index::{Cursor, Index, Slot, DUPLICATE, MATCHED, REGION_SEEN};

/// At most this many discrepancies are listed in full; counts stay exact.
pub const MAX_LISTED: usize = 100_000;

/// Field-by-field comparisons are done in batches of this many rows.
const DEFERRED_BATCH: usize = 10_000;

/// Why a reconciliation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A statement (or the gateway's rows) is malformed: nothing was used.
    #[error("{source_name}: {error}")]
    Malformed {
        /// `gateway` or the region's code.
        source_name: String,
        /// Where and what.
        error: StatementError,
    },
    /// Reading a source failed.
    #[error("{source_name}: {error}")]
    Io {
        /// `gateway` or the region's code.
        source_name: String,
        /// The error.
        error: std::io::Error,
    },
    /// A sum left the range of money.
    #[error("a sum is out of range")]
    Overflow,
}

/// The configured regions: who is a party to clearing.
#[derive(Debug, Clone)]
pub struct Regions {
    /// Each region's code and name, in configuration order.
    pub list: Vec<(Admdvs, String)>,
    routes: Routes,
}

impl Regions {
    /// From the configured regions.
    pub fn new(list: Vec<(Admdvs, String)>) -> Regions {
        let routes = Routes::new(list.iter().map(|(code, _)| *code));
        Regions { list, routes }
    }

    /// The configured region containing `code`, by longest prefix.
    pub fn of(&self, code: Admdvs) -> Option<usize> {
        self.routes.route(code)
    }

    /// The index of a configured region's own code.
    pub fn index(&self, code: Admdvs) -> Option<usize> {
        self.list.iter().position(|(c, _)| *c == code)
    }
}

/// Which side a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The gateway's journal.
    Gateway,
    /// The region's statement.
    Region,
}

/// A discrepancy class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// In the gateway's journal only.
    OnlyInGateway,
    /// In the region's statement only.
    OnlyInRegion,
    /// Amounts differ.
    AmountDiffers,
    /// Cancelled or reversed on one side only, or differently.
    StateDiffers,
    /// Ids, codes or regions differ.
    FieldDiffers,
    /// The same row twice on one side.
    Duplicate,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 6] = [
        Class::OnlyInGateway,
        Class::OnlyInRegion,
        Class::AmountDiffers,
        Class::StateDiffers,
        Class::FieldDiffers,
        Class::Duplicate,
    ];

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::OnlyInGateway => "only_in_gateway",
            Class::OnlyInRegion => "only_in_region",
            Class::AmountDiffers => "amount_differs",
            Class::StateDiffers => "state_differs",
            Class::FieldDiffers => "field_differs",
            Class::Duplicate => "duplicate",
        }
    }

    /// The Chinese name, for officers' downloads.
    pub fn name_zh(self) -> &'static str {
        match self {
            Class::OnlyInGateway => "网关有、地区无",
            Class::OnlyInRegion => "地区有、网关无",
            Class::AmountDiffers => "金额不符",
            Class::StateDiffers => "状态不符",
            Class::FieldDiffers => "字段不符",
            Class::Duplicate => "重复",
        }
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    /// The column.
    pub field: &'static str,
    /// The gateway's value (empty when absent).
    pub gateway: String,
    /// The region's value.
    pub region: String,
    /// For amounts: region minus gateway.
    pub difference: Option<Money>,
}

/// One discrepancy, with both sides' rows where they exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    /// Its class.
    pub class: Class,
    /// The configured region whose statement it concerns.
    pub region: Admdvs,
    /// For a duplicate: the side with two rows.
    pub side: Option<Side>,
    /// The gateway's row.
    pub gateway: Option<Row>,
    /// The region's row.
    pub statement: Option<Row>,
    /// The fields that differ (amount_differs, state_differs, field_differs).
    pub fields: Vec<FieldDiff>,
    /// For a late row: the closed day it is of (see [`Earlier`]).
    pub late_of: Option<Date>,
}

impl Discrepancy {
    /// The row to show: the region's if any, else the gateway's.
    pub fn row(&self) -> Option<&Row> {
        self.statement.as_ref().or(self.gateway.as_ref())
    }

    /// A one-line explanation for officers.
    pub fn detail(&self) -> String {
        let detail = self.what();
        match self.late_of {
            Some(day) => {
                format!("{detail} (a late row of the closed day {day}, carried to this day)")
            }
            None => detail,
        }
    }

    fn what(&self) -> String {
        match self.class {
            Class::OnlyInGateway => {
                "journalled by the gateway, missing from the region's statement".into()
            }
            Class::OnlyInRegion => {
                "in the region's statement, never journalled by the gateway".into()
            }
            Class::Duplicate => format!(
                "the same {} twice in the {}",
                self.row().map_or("row", |r| r.state.as_str()),
                match self.side {
                    Some(Side::Gateway) => "gateway's journal",
                    _ => "region's statement",
                }
            ),
            Class::StateDiffers if self.fields.is_empty() => {
                let (which, row) = match (&self.gateway, &self.statement) {
                    (Some(row), None) => ("gateway", row),
                    (None, Some(row)) => ("region", row),
                    _ => return "states differ".into(),
                };
                format!("{} on the {which}'s side only", row.state)
            }
            _ => self
                .fields
                .iter()
                .map(|f| match f.difference {
                    Some(d) => format!(
                        "{}: gateway {} region {} (difference {})",
                        f.field,
                        f.gateway,
                        f.region,
                        d.to_yuan_string()
                    ),
                    None => format!("{}: gateway {:?} region {:?}", f.field, f.gateway, f.region),
                })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// Counts and sums of one group of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    /// Rows.
    pub count: u64,
    /// Rows without amounts (outcomes the gateway never learned).
    pub unknown: u64,
    /// Total medical fees.
    pub medfee_sumamt: Money,
    /// The funds' share.
    pub fund_pay_sumamt: Money,
    /// Paid from the personal account.
    pub acct_pay: Money,
    /// Paid in cash.
    pub psn_cash_pay: Money,
}

/// A sum plus an amount (an absent one adds nothing); `None` out of range.
fn plus(sum: Money, value: Option<Money>) -> Option<Money> {
    sum.checked_add(value.unwrap_or_default())
}

impl Sums {
    /// Adds a row; nothing is added when a sum would leave the range.
    fn add(&mut self, row: &RowRef<'_>) -> Result<(), ReconcileError> {
        let (Some(medfee), Some(fund), Some(acct), Some(cash)) = (
            plus(self.medfee_sumamt, row.medfee_sumamt),
            plus(self.fund_pay_sumamt, row.fund_pay_sumamt),
            plus(self.acct_pay, row.acct_pay),
            plus(self.psn_cash_pay, row.psn_cash_pay),
        ) else {
            return Err(ReconcileError::Overflow);
        };
        self.count += 1;
        if row.medfee_sumamt.is_none() && row.fund_pay_sumamt.is_none() {
            self.unknown += 1;
        }
        (
            self.medfee_sumamt,
            self.fund_pay_sumamt,
            self.acct_pay,
            self.psn_cash_pay,
        ) = (medfee, fund, acct, cash);
        Ok(())
    }

    /// Takes back a row of unknown outcome (counted with no amounts).
    fn forget_unknown(&mut self) {
        self.count = self.count.saturating_sub(1);
        self.unknown = self.unknown.saturating_sub(1);
    }

    /// Adds another group's sums (saturating: a sum that large was already
    /// refused as out of range while adding rows).
    fn merge(&mut self, other: &Sums) {
        self.count += other.count;
        self.unknown += other.unknown;
        let add = |a: Money, b: Money| a.checked_add(b).unwrap_or(a);
        self.medfee_sumamt = add(self.medfee_sumamt, other.medfee_sumamt);
        self.fund_pay_sumamt = add(self.fund_pay_sumamt, other.fund_pay_sumamt);
        self.acct_pay = add(self.acct_pay, other.acct_pay);
        self.psn_cash_pay = add(self.psn_cash_pay, other.psn_cash_pay);
    }

    /// Equal counts and sums (rows of unknown outcome aside).
    pub fn agrees(&self, other: &Sums) -> bool {
        self.count == other.count
            && self.medfee_sumamt == other.medfee_sumamt
            && self.fund_pay_sumamt == other.fund_pay_sumamt
            && self.acct_pay == other.acct_pay
            && self.psn_cash_pay == other.psn_cash_pay
    }
}

/// The group totals are kept by (对总账): region, insurance type, clearing type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    /// The configured region.
    pub region: Admdvs,
    /// Insurance type code (empty when absent).
    pub insutype: String,
    /// Clearing type code (empty when absent).
    pub clr_type: String,
}

/// What one statement was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementInfo {
    /// The region.
    pub region: Admdvs,
    /// Rows read.
    pub rows: u64,
}

/// Money owed between two regions for the day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owed {
    /// Settlements, cancels and reversals counted.
    pub count: u64,
    /// The funds' share.
    pub fund_pay_sumamt: Money,
    /// The personal-account share.
    pub acct_pay: Money,
}

impl Owed {
    /// What is owed: funds and personal account.
    pub fn total(&self) -> Option<Money> {
        self.fund_pay_sumamt.checked_add(self.acct_pay)
    }
}

/// The result of reconciling a day.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The day.
    pub day: Option<Date>,
    /// Rows of the gateway's journal.
    pub gateway_rows: u64,
    /// The statements reconciled.
    pub statements: Vec<StatementInfo>,
    /// Totals per group and side.
    pub totals: BTreeMap<Group, (Sums, Sums)>,
    /// Discrepancies listed (at most [`MAX_LISTED`]).
    pub discrepancies: Vec<Discrepancy>,
    /// Discrepancies per class (exact, also beyond [`MAX_LISTED`]).
    pub counts: BTreeMap<Class, u64>,
    /// What each insured region owes each treatment region (by index into the regions).
    pub owed: BTreeMap<(usize, usize), Owed>,
    /// Late rows of closed days read on either side (see [`Earlier`]).
    pub late_rows: u64,
    /// Late rows that found their partner on their own closed day.
    pub late_matched: u64,
}

impl Outcome {
    /// `true` when no discrepancy was found and every region's totals agree.
    pub fn all_matched(&self) -> bool {
        self.counts.values().all(|&n| n == 0) && self.totals.values().all(|(g, r)| g.agrees(r))
    }

    fn note(&mut self, mut discrepancy: Discrepancy) {
        let date = discrepancy.row().map(|r| r.setl_time.date());
        if date.is_some() && date != self.day {
            discrepancy.late_of = date;
        }
        *self.counts.entry(discrepancy.class).or_default() += 1;
        if self.discrepancies.len() < MAX_LISTED {
            self.discrepancies.push(discrepancy);
        }
    }
}

/// The digest mask's bits of the four amounts (see [`compared`]).
const AMOUNTS: u16 = 0b1_1110_0000;

/// A fast, fixed hash (a folded multiply per 8-byte word, then a final
/// avalanche): reconciliation must be deterministic and need not resist
/// crafted collisions. Keys carry a second, independent 32-bit check, and a
/// digest collision only costs an exact field-by-field comparison.
#[derive(Clone, Copy)]
struct Fast(u64);

impl Fast {
    fn new(seed: u64) -> Fast {
        Fast(seed)
    }

    fn word(&mut self, word: u64) {
        // A folded multiply (the high half folded onto the low half) spreads
        // every input bit over the whole state, high bits into low and back.
        let product =
            u128::from(self.0 ^ word).wrapping_mul(u128::from(0x51_7c_c1_b7_27_22_0a_95u64));
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(self) -> u64 {
        // MurmurHash3's finaliser.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Feeds `bytes` to `word` as 8-byte little-endian words, the last one
/// zero-padded and marked with its length.
#[inline(always)]
fn words(bytes: &[u8], mut word: impl FnMut(u64)) {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        word(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        word(tail(bytes, rest) ^ ((rest.len() as u64) << 59));
    }
}

/// The last `rest.len()` bytes of `bytes` (`rest` is its tail: 1 to 7 bytes
/// when `bytes` is a word long or more, up to 7 otherwise) as a
/// little-endian word: when `bytes` is a word long or more, its last eight
/// bytes shifted down (one load); otherwise four, two and one bytes at a
/// time. Never a copy of a length not known in advance, which is a call to
/// `memcpy`.
fn tail(bytes: &[u8], rest: &[u8]) -> u64 {
    if let Some(last) = bytes.len().checked_sub(8).and_then(|at| bytes.get(at..)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(last);
        return u64::from_le_bytes(w) >> (8 * (8 - rest.len()));
    }
    let (mut w, mut shift, mut rest) = (0u64, 0, rest);
    if let Some((four, more)) = rest.split_first_chunk::<4>() {
        (w, shift, rest) = (u64::from(u32::from_le_bytes(*four)), 32, more);
    }
    if let Some((two, more)) = rest.split_first_chunk::<2>() {
        w |= u64::from(u16::from_le_bytes(*two)) << shift;
        (shift, rest) = (shift + 16, more);
    }
    if let [one] = rest {
        w |= u64::from(*one) << shift;
    }
    w
}

/// A row's key: institution, settling msgid, settle or undo; and an
/// independent 32-bit check of the same (another seed, hashed in the same
/// pass).
fn key(row: &RowRef<'_>, undo: bool) -> (u64, u32) {
    let mut a = Fast::new(0x243f_6a88_85a3_08d3);
    let mut b = Fast::new(0x1319_8a2e_0370_7344);
    let mut word = |w: u64| {
        a.word(w);
        b.word(w);
    };
    words(row.fixmedins_code.as_bytes(), &mut word);
    word(0xff);
    words(
        row.settling_msgid().unwrap_or_default().as_bytes(),
        &mut word,
    );
    word(0xff);
    word(u64::from(undo));
    (a.finish(), b.finish() as u32)
}

/// The compared fields as text, in a fixed order; `None` when absent.
fn compared(row: &Row) -> [(&'static str, Option<String>); 9] {
    let money = |m: Option<Money>| m.map(Money::to_yuan_string);
    [
        ("state", Some(row.state.as_str().to_owned())),
        ("setl_id", row.setl_id.clone()),
        ("insuplc_admdvs", Some(row.insuplc_admdvs.to_string())),
        ("insutype", row.insutype.clone()),
        ("clr_type", row.clr_type.clone()),
        ("medfee_sumamt", money(row.medfee_sumamt)),
        ("fund_pay_sumamt", money(row.fund_pay_sumamt)),
        ("acct_pay", money(row.acct_pay)),
        ("psn_cash_pay", money(row.psn_cash_pay)),
    ]
}

/// The presence mask and digest of a row's compared fields (those of
/// [`compared`], in its order); with `within`, only the fields in that mask
/// (a gateway's mask, for a region's row). Nothing is allocated. The texts
/// and the numbers are hashed in two independent lanes (shorter chains of
/// multiplies), each text followed by its length; the mask, hashed with the
/// numbers, says which fields are there.
fn digest(row: &RowRef<'_>, within: Option<u16>) -> (u16, u64) {
    let wanted = within.unwrap_or(u16::MAX);
    let mut mask = 0u16;
    let mut texts = Fast::new(0xa409_3822_299f_31d0);
    let mut numbers = Fast::new(0x082e_fa98_ec4e_6c89);
    for (bit, text) in [(1u16, row.setl_id), (3, row.insutype), (4, row.clr_type)] {
        if let Some(text) = text.filter(|_| wanted & (1 << bit) != 0) {
            mask |= 1 << bit;
            words(text.as_bytes(), |w| texts.word(w));
            texts.word(text.len() as u64);
        }
    }
    let amounts = [
        row.medfee_sumamt,
        row.fund_pay_sumamt,
        row.acct_pay,
        row.psn_cash_pay,
    ];
    let mut fixed = 0u64;
    if wanted & 1 != 0 {
        mask |= 1;
        fixed |= row.state as u64;
    }
    if wanted & (1 << 2) != 0 {
        mask |= 1 << 2;
        fixed |= u64::from(row.insuplc_admdvs.value()) << 8;
    }
    for (i, amount) in amounts.iter().enumerate() {
        let bit = 1u16 << (5 + i);
        if let Some(amount) = amount.filter(|_| wanted & bit != 0) {
            mask |= bit;
            numbers.word(amount.fen() as u64);
        }
    }
    numbers.word(fixed | (u64::from(mask) << 40));
    (mask, texts.finish() ^ numbers.finish())
}

/// Field by field, skipping fields absent on either side.
fn differences(gateway: &Row, region: &Row) -> Vec<FieldDiff> {
    let amounts_g = gateway.amounts();
    let amounts_r = region.amounts();
    compared(gateway)
        .into_iter()
        .zip(compared(region))
        .filter_map(|((field, g), (_, r))| match (g, r) {
            (Some(g), Some(r)) if g != r => {
                let difference = amounts_g
                    .iter()
                    .zip(amounts_r.iter())
                    .find(|((name, _), _)| *name == field)
                    .and_then(|((_, a), (_, b))| (*b)?.checked_sub((*a)?));
                Some(FieldDiff {
                    field,
                    gateway: g,
                    region: r,
                    difference,
                })
            }
            _ => None,
        })
        .collect()
}

fn class_of(fields: &[FieldDiff]) -> Class {
    if fields.iter().any(|f| f.field == "state") {
        Class::StateDiffers
    } else if fields.iter().all(|f| f.difference.is_some()) {
        Class::AmountDiffers
    } else {
        Class::FieldDiffers
    }
}

/// Earlier days an officer closed. A row of one of them that came after the
/// closing (a **late** row: the gateway's, when an answer or a resolution came
/// late; a region's, sent with a later day's statement) is an adjustment of
/// the day reconciled: it is accepted in this day's sources and matched here;
/// one that finds no partner among this day's rows is looked up on its own
/// day's other side — a settlement the closed day reported on one side only
/// is then settled here.
pub struct Earlier<'a> {
    /// The closed days before the one reconciled.
    pub closed: BTreeSet<Date>,
    /// A closed day's other side, in statement form: the gateway's rows
    /// ([`Side::Gateway`]) or the region's statement ([`Side::Region`]);
    /// `None` when there is none.
    pub lookup: Lookup<'a>,
}

/// How [`Earlier`] finds a closed day's side: (day, side wanted, region).
pub type Lookup<'a> =
    Box<dyn FnMut(Date, Side, Admdvs) -> std::io::Result<Option<Vec<u8>>> + Send + 'a>;

impl Earlier<'_> {
    /// No closed day: every row must be of the day reconciled.
    pub fn none() -> Earlier<'static> {
        Earlier {
            closed: BTreeSet::new(),
            lookup: Box::new(|_, _, _| Ok(None)),
        }
    }
}

/// Why a row at `setl_time` may not be in the sources of `day`, if it may
/// not: only rows of the day and late rows of an earlier `closed` day may.
pub fn misplaced(day: Date, setl_time: DateTime, closed: &BTreeSet<Date>) -> Option<String> {
    let date = setl_time.date();
    if date == day || (date < day && closed.contains(&date)) {
        return None;
    }
    let why = format!("setl_time {setl_time} is not on the clearing day {day}");
    Some(if date < day {
        format!("{why}; {date} is still open: its rows go with its own statement")
    } else {
        why
    })
}

/// The gateway's rows: read once, read back by offset for comparisons.
pub trait GatewaySource: BufRead + Seek + Send {}
impl<T: BufRead + Seek + Send> GatewaySource for T {}

/// Bytes of whole lines handed to a parsing thread at a time.
const CHUNK: usize = 1 << 20;

/// Whole lines of a source.
struct Chunk {
    bytes: Vec<u8>,
    /// Room for what its rows contribute (recycled, empty).
    parsed: Vec<Parsed>,
    /// Where `bytes` starts in the source.
    offset: u64,
    /// The number of its first line.
    line: u64,
}

/// What one row contributes, computed on a parsing thread.
struct Parsed {
    key: u64,
    check: u32,
    digest: u64,
    mask: u16,
    /// The configured region of the insured.
    region: u8,
    undo: bool,
    /// Where the row's line starts in the source.
    offset: u64,
    line: u64,
    /// The line within its chunk's bytes.
    start: usize,
    end: usize,
}

/// A chunk parsed: its rows' contributions and the sums over them.
struct Batch {
    bytes: Vec<u8>,
    /// Rows of an earlier (closed) day.
    late: u64,
    parsed: Vec<Parsed>,
    totals: Totals,
    owed: BTreeMap<(usize, usize), Owed>,
}

/// Which side a source is, for the parsing threads.
#[derive(Clone, Copy)]
enum Role {
    /// The gateway's journal: any configured region; counts for clearing.
    Gateway,
    /// A region's statement: rows of that (configured) region only.
    Statement(usize),
}

/// Reads the header line (bounded) and returns it without its line end.
fn header<R: BufRead>(source: &mut R, name: &str) -> Result<(Vec<u8>, u64), ReconcileError> {
    let mut line = Vec::new();
    let io = |error| ReconcileError::Io {
        source_name: name.to_owned(),
        error,
    };
    let read = std::io::Read::take(&mut *source, contracts::statement::MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut line)
        .map_err(io)?;
    let consumed = read as u64;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok((line, consumed))
}

/// Buffers of chunks handed back by the matching thread to the reading one
/// once matched, to be filled again: no memory is allocated, zeroed or
/// faulted in per chunk.
type Spare = std::sync::mpsc::Receiver<(Vec<u8>, Vec<Parsed>)>;

/// Cuts a source into chunks of whole lines (a line longer than any
/// statement may hold is cut short: the parser refuses it by its length).
/// Bytes are read straight into the chunk's buffer (a `BufReader` hands
/// reads as large as its buffer or larger straight to its source).
fn read_chunks<R: BufRead>(
    source: &mut R,
    mut offset: u64,
    name: &str,
    spare: &Spare,
    mut send: impl FnMut(Chunk) -> bool,
) -> Result<(), ReconcileError> {
    const ROOM: usize = CHUNK + 4096;
    let mut line = 2u64;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let (mut bytes, parsed) = spare
            .try_recv()
            .unwrap_or_else(|_| (Vec::new(), Vec::new()));
        // Only what the last use left short is zeroed again.
        bytes.resize(ROOM, 0);
        bytes[..carry.len()].copy_from_slice(&carry);
        let mut filled = carry.len();
        carry.clear();
        let mut eof = false;
        while filled < CHUNK {
            match source.read(&mut bytes[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(ReconcileError::Io {
                        source_name: name.to_owned(),
                        error,
                    })
                }
            }
        }
        bytes.truncate(filled);
        if !eof {
            // No line end in a whole chunk: far too long a line, cut short.
            if let Some(at) = memchr::memrchr(b'\n', &bytes) {
                carry.extend_from_slice(&bytes[at + 1..]);
                bytes.truncate(at + 1);
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let lines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
        let len = bytes.len() as u64;
        if !send(Chunk {
            bytes,
            parsed,
            offset,
            line,
        }) {
            return Ok(());
        }
        offset += len;
        line += lines;
        if eof {
            return Ok(());
        }
    }
}

/// The configured regions of the codes a chunk met (a chunk meets few; the
/// longest-prefix search is done once for each).
#[derive(Default)]
struct Memo(Vec<(Admdvs, Option<usize>)>);

impl Memo {
    fn of(&mut self, regions: &Regions, code: Admdvs) -> Option<usize> {
        if let Some(&(_, region)) = self.0.iter().find(|(known, _)| *known == code) {
            return region;
        }
        let region = regions.of(code);
        if self.0.len() < 32 {
            self.0.push((code, region));
        }
        region
    }
}

/// Parses one chunk: every row checked (day, region) and turned into what it
/// contributes; the first malformed line fails the chunk.
fn parse_chunk(
    chunk: Chunk,
    layout: &contracts::statement::Layout,
    (day, earlier): (Date, &BTreeSet<Date>),
    regions: &Regions,
    role: Role,
) -> Result<Batch, StatementError> {
    let mut parsed = chunk.parsed;
    parsed.clear();
    parsed.reserve(chunk.bytes.len() / 160);
    let mut batch = Batch {
        parsed,
        totals: Totals::default(),
        owed: BTreeMap::new(),
        bytes: Vec::new(),
        late: 0,
    };
    let mut memo = Memo::default();
    layout.parse_lines(&chunk.bytes, chunk.line, |row, number, start, end| {
        let fail = |field: &'static str, message: String| StatementError {
            line: number,
            column: layout.column(field),
            field: Some(field),
            message,
        };
        if let Some(why) = misplaced(day, row.setl_time, earlier) {
            return Err(fail("setl_time", why));
        }
        if row.setl_time.date() != day {
            batch.late += 1;
        }
        let region = match (memo.of(regions, row.insuplc_admdvs), role) {
            (None, _) => {
                return Err(fail(
                    "insuplc_admdvs",
                    format!("{} is in no configured region", row.insuplc_admdvs),
                ))
            }
            (Some(region), Role::Statement(own)) if region != own => {
                return Err(fail(
                    "insuplc_admdvs",
                    format!(
                        "{} is not insured in {}",
                        row.insuplc_admdvs, regions.list[own].0
                    ),
                ))
            }
            (Some(region), _) => region,
        };
        let sums = batch.totals.get(regions.list[region].0, row);
        let added = match role {
            Role::Gateway => sums.0.add(row),
            Role::Statement(_) => sums.1.add(row),
        };
        let overflow = |_| fail("medfee_sumamt", "a sum is out of range".into());
        added.map_err(overflow)?;
        if let Role::Gateway = role {
            let treatment = memo.of(regions, row.mdtrtarea_admvs);
            add_owed(&mut batch.owed, region, treatment, row).map_err(overflow)?;
        }
        let undo = row.state.is_undo();
        let (key, check) = key(row, undo);
        let (mask, digest) = digest(row, None);
        batch.parsed.push(Parsed {
            key,
            check,
            digest,
            mask,
            region: u8::try_from(region).unwrap_or(u8::MAX),
            undo,
            offset: chunk.offset + start as u64,
            line: number,
            start,
            end,
        });
        Ok(())
    })?;
    batch.bytes = chunk.bytes;
    Ok(batch)
}

/// Streams a source through parsing threads and hands each batch, in the
/// source's order, to `consume`; returns the source's layout.
fn stream<R: BufRead + Send>(
    source: &mut R,
    name: &str,
    day: (Date, &BTreeSet<Date>),
    regions: &Regions,
    role: Role,
    mut consume: impl FnMut(&contracts::statement::Layout, &mut Batch) -> Result<(), ReconcileError>,
) -> Result<contracts::statement::Layout, ReconcileError> {
    use std::sync::mpsc::{channel, sync_channel};
    let malformed = |error| ReconcileError::Malformed {
        source_name: name.to_owned(),
        error,
    };
    let (header, offset) = header(source, name)?;
    if header.is_empty() && offset == 0 {
        return Err(malformed(StatementError {
            line: 1,
            column: 0,
            field: None,
            message: "empty statement: no header".into(),
        }));
    }
    let layout = contracts::statement::Layout::from_header(&header).map_err(malformed)?;
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|scope| -> Result<(), ReconcileError> {
        let mut to_workers = Vec::new();
        let mut from_workers = Vec::new();
        for _ in 0..workers {
            let (send_chunk, take_chunk) = sync_channel::<Chunk>(2);
            let (send_batch, take_batch) = sync_channel::<Result<Batch, StatementError>>(2);
            let layout = &layout;
            scope.spawn(move || {
                while let Ok(chunk) = take_chunk.recv() {
                    let parsed = parse_chunk(chunk, layout, day, regions, role);
                    let failed = parsed.is_err();
                    if send_batch.send(parsed).is_err() || failed {
                        return;
                    }
                }
            });
            to_workers.push(send_chunk);
            from_workers.push(take_batch);
        }
        let (give_back, spare) = channel();
        let reader = scope.spawn(move || {
            let mut n = 0usize;
            read_chunks(source, offset, name, &spare, |chunk| {
                let sent = to_workers[n % to_workers.len()].send(chunk).is_ok();
                n += 1;
                sent
            })
        });
        let mut consumed = || -> Result<(), ReconcileError> {
            let mut n = 0usize;
            while let Ok(batch) = from_workers[n % from_workers.len()].recv() {
                let mut batch = batch.map_err(malformed)?;
                consume(&layout, &mut batch)?;
                // Gone only when the reader is done.
                let _ = give_back.send((batch.bytes, batch.parsed));
                n += 1;
            }
            Ok(())
        };
        let result = consumed();
        drop(from_workers);
        let read = reader.join().unwrap_or_else(|_| {
            Err(ReconcileError::Io {
                source_name: name.to_owned(),
                error: std::io::Error::other("the reading thread failed"),
            })
        });
        result.and(read)
    })?;
    Ok(layout)
}

/// Reconciles `day`: the gateway's rows (a statement-form source, e.g. a
/// `ledger export`) against each region's statement. A region without a
/// statement is not reconciled (its rows still count for clearing). Every
/// source is read in full before anything is reported: a malformed one fails
/// the whole run. Lines are parsed on as many threads as the machine has
/// cores (up to 4); matching runs on the calling thread, in file order.
pub fn reconcile<G: GatewaySource, S: BufRead + Send>(
    day: Date,
    regions: &Regions,
    mut earlier: Earlier<'_>,
    mut gateway: G,
    statements: Vec<(Admdvs, S)>,
) -> Result<Outcome, ReconcileError> {
    let mut outcome = Outcome {
        day: Some(day),
        ..Default::default()
    };
    let mut totals = Totals::default();
    let io = |name: &str| {
        let name = name.to_owned();
        move |error| ReconcileError::Io {
            source_name: name,
            error,
        }
    };

    // Index the gateway's rows.
    let start = gateway.stream_position().map_err(io("gateway"))?;
    let mut index = Index::default();
    let mut strays = Strays::default();
    stream(
        &mut gateway,
        "gateway",
        (day, &earlier.closed),
        regions,
        Role::Gateway,
        |_, batch| {
            totals.merge(std::mem::take(&mut batch.totals));
            outcome.late_rows += batch.late;
            merge_owed(&mut outcome.owed, std::mem::take(&mut batch.owed))?;
            for p in &batch.parsed {
                outcome.gateway_rows += 1;
                let pushed = index.push(Slot {
                    key: p.key,
                    digest: p.digest,
                    offset: p.offset,
                    check: p.check,
                    mask: p.mask,
                    flags: 0,
                    region: p.region,
                });
                if !pushed {
                    return Err(ReconcileError::Io {
                        source_name: "gateway".into(),
                        error: std::io::Error::other(format!(
                            "more than {} rows in a day",
                            index::MAX_ROWS
                        )),
                    });
                }
            }
            Ok(())
        },
    )?;
    let duplicates = index.seal();
    let mut rereader = Rereader::new(gateway, start)?;
    for number in duplicates {
        let slot = *index.get(number);
        let row = rereader.read(slot.offset)?;
        outcome.note(Discrepancy {
            class: Class::Duplicate,
            region: regions.list[usize::from(slot.region)].0,
            side: Some(Side::Gateway),
            gateway: Some(row),
            statement: None,
            fields: Vec::new(),
            late_of: None,
        });
    }

    // Stream each statement against the index.
    for (code, mut input) in statements {
        let name = code.to_string();
        let Some(own) = regions.index(code) else {
            return Err(ReconcileError::Malformed {
                source_name: name,
                error: StatementError {
                    line: 0,
                    column: 0,
                    field: None,
                    message: format!("{code} is not a configured region"),
                },
            });
        };
        let mut rows = 0u64;
        let mut only_in_region: HashSet<u64> = HashSet::new();
        let mut deferred: Vec<(u64, Row)> = Vec::new();
        let mut spans = Vec::new();
        let mut cursor = Cursor::default();
        stream(
            &mut input,
            &name,
            (day, &earlier.closed),
            regions,
            Role::Statement(own),
            |layout, batch| {
                totals.merge(std::mem::take(&mut batch.totals));
                outcome.late_rows += batch.late;
                for p in &batch.parsed {
                    rows += 1;
                    // The owned row, parsed again from its line: only for the few rows reported.
                    let mut unquoted = String::new();
                    let mut owned = || -> Result<Row, ReconcileError> {
                        layout
                            .parse(
                                &batch.bytes[p.start..p.end],
                                p.line,
                                &mut spans,
                                &mut unquoted,
                            )
                            .ok()
                            .flatten()
                            .map(|r| r.to_row())
                            .ok_or_else(|| ReconcileError::Io {
                                source_name: code.to_string(),
                                error: std::io::Error::other("a parsed row no longer parses"),
                            })
                    };
                    let found = cursor.find(&index, p.key, p.check);
                    match found.map(|number| index.get_mut(number)) {
                        Some(slot) if slot.flags & REGION_SEEN != 0 => outcome.note(Discrepancy {
                            class: Class::Duplicate,
                            region: code,
                            side: Some(Side::Region),
                            gateway: None,
                            statement: Some(owned()?),
                            fields: Vec::new(),
                            late_of: None,
                        }),
                        Some(slot) => {
                            slot.flags |= REGION_SEEN | MATCHED;
                            if slot.mask & AMOUNTS == 0 {
                                // An outcome the gateway never learned, matched: its
                                // totals are taken as the region states them.
                                let region_row = owned()?;
                                let gateway_row = rereader.read(slot.offset)?;
                                totals.get(code, &gateway_row.as_ref()).0.forget_unknown();
                                totals
                                    .get(code, &region_row.as_ref())
                                    .0
                                    .add(&region_row.as_ref())?;
                            }
                            let same = if slot.mask == p.mask {
                                slot.digest == p.digest
                            } else {
                                let row = owned()?;
                                digest(&row.as_ref(), Some(slot.mask)) == (slot.mask, slot.digest)
                            };
                            if !same {
                                deferred.push((slot.offset, owned()?));
                            }
                        }
                        None if !only_in_region.insert(p.key) => outcome.note(Discrepancy {
                            class: Class::Duplicate,
                            region: code,
                            side: Some(Side::Region),
                            gateway: None,
                            statement: Some(owned()?),
                            fields: Vec::new(),
                            late_of: None,
                        }),
                        None => {
                            let row = owned()?;
                            if row.setl_time.date() != day {
                                strays.add(Side::Region, code, row);
                                continue;
                            }
                            let class = if p.undo {
                                Class::StateDiffers
                            } else {
                                Class::OnlyInRegion
                            };
                            outcome.note(Discrepancy {
                                class,
                                region: code,
                                side: None,
                                gateway: None,
                                statement: Some(row),
                                fields: Vec::new(),
                                late_of: None,
                            });
                        }
                    }
                }
                if deferred.len() >= DEFERRED_BATCH {
                    compare_deferred(&mut outcome, &mut rereader, code, &mut deferred)?;
                }
                Ok(())
            },
        )?;
        compare_deferred(&mut outcome, &mut rereader, code, &mut deferred)?;
        outcome
            .statements
            .push(StatementInfo { region: code, rows });
    }
    // What the gateway has and no statement matched.
    let reconciled: HashSet<usize> = outcome
        .statements
        .iter()
        .filter_map(|s| regions.index(s.region))
        .collect();
    let unmatched: Vec<(u64, u8)> = index
        .iter()
        .filter(|slot| slot.flags & (MATCHED | DUPLICATE) == 0)
        .filter(|slot| reconciled.contains(&usize::from(slot.region)))
        .map(|slot| (slot.offset, slot.region))
        .collect();
    for (offset, region) in unmatched {
        let row = rereader.read(offset)?;
        let undo = row.state.is_undo();
        if row.medfee_sumamt.is_none() && row.fund_pay_sumamt.is_none() {
            // An outcome the gateway never learned. If it reversed it and the
            // region has no trace of either half, nothing happened.
            let partner = index
                .find(key(&row.as_ref(), !undo).0)
                .map(|number| index.get(number));
            let untraced = partner.is_some_and(|p| p.flags & MATCHED == 0);
            if untraced || (undo && partner.is_none()) {
                // Nor in the totals.
                let code = regions.list[usize::from(region)].0;
                totals.get(code, &row.as_ref()).0.forget_unknown();
                continue;
            }
        }
        let code = regions.list[usize::from(region)].0;
        if row.setl_time.date() != day {
            strays.add(Side::Gateway, code, row);
            continue;
        }
        let class = if undo {
            Class::StateDiffers
        } else {
            Class::OnlyInGateway
        };
        outcome.note(Discrepancy {
            class,
            region: code,
            side: None,
            gateway: Some(row),
            statement: None,
            fields: Vec::new(),
            late_of: None,
        });
    }
    strays.resolve(&mut outcome, &mut totals, &mut earlier)?;
    outcome.totals = totals.into_map();
    outcome
        .discrepancies
        .sort_by_cached_key(|d| (d.region, d.class, sort_key(d)));
    Ok(outcome)
}

/// Late rows that found no partner among the day's rows, by their own day,
/// region and side.
#[derive(Default)]
struct Strays(BTreeMap<(Date, Admdvs, Side), Vec<Row>>);

impl Strays {
    fn add(&mut self, side: Side, region: Admdvs, row: Row) {
        self.0
            .entry((row.setl_time.date(), region, side))
            .or_default()
            .push(row);
    }

    /// Looks each stray up on its own day's other side: found, the two are
    /// compared here and the partner counts in this day's totals beside it
    /// (not for clearing: its money was cleared with its own day); not
    /// found, it is reported as a row on one side only.
    fn resolve(
        self,
        outcome: &mut Outcome,
        totals: &mut Totals,
        earlier: &mut Earlier<'_>,
    ) -> Result<(), ReconcileError> {
        for ((date, code, side), rows) in self.0 {
            let other = match side {
                Side::Gateway => Side::Region,
                Side::Region => Side::Gateway,
            };
            let name = match other {
                Side::Gateway => format!("gateway {date}"),
                Side::Region => format!("{code} {date}"),
            };
            let source =
                (earlier.lookup)(date, other, code).map_err(|error| ReconcileError::Io {
                    source_name: name.clone(),
                    error,
                })?;
            let wanted: HashSet<(u64, u32)> = rows
                .iter()
                .map(|r| key(&r.as_ref(), r.state.is_undo()))
                .collect();
            let mut partners: HashMap<(u64, u32), Row> = HashMap::new();
            if let Some(bytes) = source {
                let malformed = |error| ReconcileError::Malformed {
                    source_name: name.clone(),
                    error,
                };
                let mut reader = Reader::new(&bytes[..]).map_err(malformed)?;
                while let Some(row) = reader.next_row().map_err(malformed)? {
                    let k = key(&row.as_ref(), row.state.is_undo());
                    if wanted.contains(&k) {
                        partners.entry(k).or_insert(row);
                    }
                }
            }
            for row in rows {
                let k = key(&row.as_ref(), row.state.is_undo());
                let Some(partner) = partners.remove(&k) else {
                    let class = match (row.state.is_undo(), side) {
                        (true, _) => Class::StateDiffers,
                        (false, Side::Gateway) => Class::OnlyInGateway,
                        (false, Side::Region) => Class::OnlyInRegion,
                    };
                    let (gateway, statement) = match side {
                        Side::Gateway => (Some(row), None),
                        Side::Region => (None, Some(row)),
                    };
                    outcome.note(Discrepancy {
                        class,
                        region: code,
                        side: None,
                        gateway,
                        statement,
                        fields: Vec::new(),
                        late_of: None,
                    });
                    continue;
                };
                let (gateway, statement) = match side {
                    Side::Gateway => (row, partner),
                    Side::Region => (partner, row),
                };
                let unknown = gateway.medfee_sumamt.is_none() && gateway.fund_pay_sumamt.is_none();
                match (side, unknown) {
                    // An outcome the gateway never learned, matched: its
                    // totals are taken as the region states them.
                    (Side::Gateway, true) => {
                        totals.get(code, &gateway.as_ref()).0.forget_unknown();
                        totals
                            .get(code, &statement.as_ref())
                            .0
                            .add(&statement.as_ref())?;
                    }
                    (Side::Gateway, false) => {}
                    (Side::Region, true) => {
                        totals
                            .get(code, &statement.as_ref())
                            .0
                            .add(&statement.as_ref())?;
                    }
                    (Side::Region, false) => {
                        totals
                            .get(code, &gateway.as_ref())
                            .0
                            .add(&gateway.as_ref())?;
                    }
                }
                if side == Side::Gateway {
                    totals
                        .get(code, &statement.as_ref())
                        .1
                        .add(&statement.as_ref())?;
                }
                if compare(outcome, code, gateway, statement) {
                    outcome.late_matched += 1;
                }
            }
        }
        Ok(())
    }
}

fn merge_owed(
    into: &mut BTreeMap<(usize, usize), Owed>,
    from: BTreeMap<(usize, usize), Owed>,
) -> Result<(), ReconcileError> {
    for (pair, owed) in from {
        let sum = into.entry(pair).or_default();
        sum.count += owed.count;
        sum.fund_pay_sumamt = sum
            .fund_pay_sumamt
            .checked_add(owed.fund_pay_sumamt)
            .ok_or(ReconcileError::Overflow)?;
        sum.acct_pay = sum
            .acct_pay
            .checked_add(owed.acct_pay)
            .ok_or(ReconcileError::Overflow)?;
    }
    Ok(())
}

fn sort_key(d: &Discrepancy) -> (String, String) {
    d.row().map_or_else(Default::default, |r| {
        (r.setl_time.to_string(), r.msgid.clone().unwrap_or_default())
    })
}

/// Totals per group, looked up without allocating (groups are few). Each
/// group is found by its [`Code`]s, compared as integers, not strings.
#[derive(Default)]
struct Totals {
    groups: Vec<(GroupKey, Group, (Sums, Sums))>,
}

/// A group's region and codes as compared.
type GroupKey = (Admdvs, Code, Code);

/// A code of up to 7 bytes and its length in one word; a longer one is
/// compared as text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Code {
    Short(u64),
    Long,
}

impl Code {
    fn of(text: &str) -> Code {
        let bytes = text.as_bytes();
        if bytes.len() > 7 {
            return Code::Long;
        }
        Code::Short(tail(bytes, bytes) | (bytes.len() as u64) << 56)
    }
}

impl Totals {
    fn get(&mut self, region: Admdvs, row: &RowRef<'_>) -> &mut (Sums, Sums) {
        let insutype = row.insutype.unwrap_or_default();
        let clr_type = row.clr_type.unwrap_or_default();
        let key = (region, Code::of(insutype), Code::of(clr_type));
        let found = self.groups.iter().position(|(k, g, _)| {
            *k == key
                && (key.1 != Code::Long || g.insutype == insutype)
                && (key.2 != Code::Long || g.clr_type == clr_type)
        });
        let at = found.unwrap_or_else(|| {
            let group = Group {
                region,
                insutype: insutype.to_owned(),
                clr_type: clr_type.to_owned(),
            };
            self.groups.push((key, group, Default::default()));
            self.groups.len() - 1
        });
        &mut self.groups[at].2
    }

    fn merge(&mut self, other: Totals) {
        for (key, group, (g, r)) in other.groups {
            let at = match self.groups.iter().position(|(_, mine, _)| *mine == group) {
                Some(at) => at,
                None => {
                    self.groups.push((key, group, Default::default()));
                    self.groups.len() - 1
                }
            };
            let sums = &mut self.groups[at].2;
            sums.0.merge(&g);
            sums.1.merge(&r);
        }
    }

    fn into_map(self) -> BTreeMap<Group, (Sums, Sums)> {
        self.groups
            .into_iter()
            .filter(|(_, _, (g, r))| g.count > 0 || r.count > 0)
            .map(|(_, group, sums)| (group, sums))
            .collect()
    }
}

/// Adds what a row of a person insured in `insured` and treated in
/// `treatment` (configured regions) makes the one owe the other.
fn add_owed(
    owed: &mut BTreeMap<(usize, usize), Owed>,
    insured: usize,
    treatment: Option<usize>,
    row: &RowRef<'_>,
) -> Result<(), ReconcileError> {
    let Some(treatment) = treatment else {
        return Ok(());
    };
    if treatment == insured {
        return Ok(());
    }
    let owed = owed.entry((insured, treatment)).or_default();
    let (Some(fund), Some(acct)) = (
        plus(owed.fund_pay_sumamt, row.fund_pay_sumamt),
        plus(owed.acct_pay, row.acct_pay),
    ) else {
        return Err(ReconcileError::Overflow);
    };
    owed.count += 1;
    (owed.fund_pay_sumamt, owed.acct_pay) = (fund, acct);
    Ok(())
}

fn compare_deferred<G: GatewaySource>(
    outcome: &mut Outcome,
    rereader: &mut Rereader<G>,
    region: Admdvs,
    deferred: &mut Vec<(u64, Row)>,
) -> Result<(), ReconcileError> {
    deferred.sort_unstable_by_key(|(offset, _)| *offset);
    for (offset, statement) in deferred.drain(..) {
        let gateway = rereader.read(offset)?;
        compare(outcome, region, gateway, statement);
    }
    Ok(())
}

/// Compares the two sides' rows of one key field by field and notes what
/// differs; whether they agree.
fn compare(outcome: &mut Outcome, region: Admdvs, gateway: Row, statement: Row) -> bool {
    let fields = differences(&gateway, &statement);
    if fields.is_empty() {
        return true;
    }
    outcome.note(Discrepancy {
        class: class_of(&fields),
        region,
        side: None,
        gateway: Some(gateway),
        statement: Some(statement),
        fields,
        late_of: None,
    });
    false
}

/// Reads single gateway rows back by offset.
struct Rereader<G> {
    source: G,
    start: u64,
    header: String,
}

fn gateway_io(error: std::io::Error) -> ReconcileError {
    ReconcileError::Io {
        source_name: "gateway".into(),
        error,
    }
}

impl<G: GatewaySource> Rereader<G> {
    fn new(mut source: G, start: u64) -> Result<Rereader<G>, ReconcileError> {
        source.seek(SeekFrom::Start(start)).map_err(gateway_io)?;
        let mut header = String::new();
        source.read_line(&mut header).map_err(gateway_io)?;
        Ok(Rereader {
            source,
            start,
            header,
        })
    }

    fn read(&mut self, offset: u64) -> Result<Row, ReconcileError> {
        self.source
            .seek(SeekFrom::Start(self.start + offset))
            .map_err(gateway_io)?;
        let mut text = self.header.clone();
        self.source.read_line(&mut text).map_err(gateway_io)?;
        let malformed = |error| ReconcileError::Malformed {
            source_name: "gateway".into(),
            error,
        };
        match Reader::new(text.as_bytes()).map_err(malformed)?.next_row() {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err(gateway_io(std::io::Error::other(
                "a row vanished from the gateway's source",
            ))),
            Err(error) => Err(malformed(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use contracts::statement::{RowState, Writer};
    use std::io::Cursor;

    #[test]
    fn groups_are_told_apart_by_every_byte_of_their_codes() {
        // Short codes, codes of 7 and 8 bytes sharing a prefix, a code that
        // differs from another only by a trailing NUL, and absent codes.
        let codes: [Option<&str>; 8] = [
            Some("310"),
            Some("3100000"),
            Some("31000000"),
            Some("31000001"),
            Some("310\0"),
            Some(""),
            None,
            Some("310000000000000000000"),
        ];
        let mut totals = Totals::default();
        let mut expected = BTreeMap::new();
        for (i, insutype) in codes.iter().enumerate() {
            for (j, clr_type) in codes.iter().enumerate() {
                for region in ["110000", "120000"] {
                    let mut row = settled(0, "130000", 100);
                    row.insutype = insutype.map(str::to_owned);
                    row.clr_type = clr_type.map(str::to_owned);
                    let region = Admdvs::parse(region).unwrap();
                    let n = (i * codes.len() + j + 1) as u64;
                    for _ in 0..n {
                        totals.get(region, &row.as_ref()).0.count += 1;
                    }
                    let group = Group {
                        region,
                        insutype: insutype.unwrap_or_default().to_owned(),
                        clr_type: clr_type.unwrap_or_default().to_owned(),
                    };
                    // An absent code is the empty one.
                    *expected.entry(group).or_insert(0) += n;
                }
            }
        }
        let counted: BTreeMap<Group, u64> = totals
            .into_map()
            .into_iter()
            .map(|(group, (g, _))| (group, g.count))
            .collect();
        assert_eq!(counted, expected);
    }

    #[test]
    fn a_tail_is_its_bytes_as_a_little_endian_word() {
        let bytes: Vec<u8> = (1..=40u8).map(|b| b.wrapping_mul(37) ^ 0x80).collect();
        for len in 0..=bytes.len() {
            let field = &bytes[..len];
            let rest = &field[len - len % 8..];
            if rest.is_empty() {
                continue;
            }
            let by_bytes = rest
                .iter()
                .rev()
                .fold(0u64, |w, &byte| (w << 8) | u64::from(byte));
            assert_eq!(tail(field, rest), by_bytes, "{len} bytes");
        }
    }

    fn regions() -> Regions {
        Regions::new(
            [("110000", "北京"), ("120000", "天津"), ("130000", "河北")]
                .into_iter()
                .map(|(c, n)| (Admdvs::parse(c).unwrap(), n.to_owned()))
                .collect(),
        )
    }

    fn day() -> Date {
        Date::parse("2026-11-26").unwrap()
    }

    /// A settlement of `fen` (fund 60%, account 10%, cash the rest) by a
    /// Beijing hospital for a person insured in `insured`.
    fn settled(n: u32, insured: &str, fen: i64) -> Row {
        let fund = fen * 6 / 10;
        let acct = fen / 10;
        Row {
            setl_id: Some(format!("S{n}")),
            msgid: Some(format!("M{n}")),
            omsgid: None,
            mdtrt_id: Some(format!("D{n}")),
            fixmedins_code: "H11000000001".into(),
            insuplc_admdvs: Admdvs::parse(insured).unwrap(),
            mdtrtarea_admvs: Admdvs::parse("110000").unwrap(),
            insutype: Some("310".into()),
            med_type: Some("11".into()),
            clr_type: Some("11".into()),
            setl_time: DateTime::parse(&format!("2026-11-26 09:{:02}:00", n % 60)).unwrap(),
            medfee_sumamt: Money::from_fen(fen),
            fund_pay_sumamt: Money::from_fen(fund),
            acct_pay: Money::from_fen(acct),
            psn_cash_pay: Money::from_fen(fen - fund - acct),
            state: RowState::Settled,
        }
    }

    fn undo(of: &Row, state: RowState, n: u32) -> Row {
        let neg = |m: Option<Money>| m.map(Money::negated);
        Row {
            msgid: Some(format!("C{n}")),
            omsgid: of.msgid.clone(),
            setl_time: DateTime::parse("2026-11-26 15:00:00").unwrap(),
            medfee_sumamt: neg(of.medfee_sumamt),
            fund_pay_sumamt: neg(of.fund_pay_sumamt),
            acct_pay: neg(of.acct_pay),
            psn_cash_pay: neg(of.psn_cash_pay),
            state,
            ..of.clone()
        }
    }

    fn unknown(mut row: Row) -> Row {
        row.setl_id = None;
        row.medfee_sumamt = None;
        row.fund_pay_sumamt = None;
        row.acct_pay = None;
        row.psn_cash_pay = None;
        row
    }

    fn csv(rows: &[Row]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new()).unwrap();
        for r in rows {
            w.write(r).unwrap();
        }
        w.finish().unwrap()
    }

    fn run(gateway: &[Row], statements: &[(&str, Vec<Row>)]) -> Outcome {
        reconcile(
            day(),
            &regions(),
            Earlier::none(),
            Cursor::new(csv(gateway)),
            statements
                .iter()
                .map(|(code, rows)| (Admdvs::parse(code).unwrap(), Cursor::new(csv(rows))))
                .collect(),
        )
        .unwrap()
    }

    fn classes(outcome: &Outcome) -> Vec<(Class, Option<String>)> {
        outcome
            .discrepancies
            .iter()
            .map(|d| (d.class, d.row().and_then(|r| r.msgid.clone())))
            .collect()
    }

    /// A row of the closed day before [`day`] (the 25th).
    fn of_the_25th(mut row: Row) -> Row {
        let time = row
            .setl_time
            .to_string()
            .replace("2026-11-26", "2026-11-25");
        row.setl_time = DateTime::parse(&time).unwrap();
        row
    }

    #[test]
    fn late_rows_of_a_closed_day_are_adjustments_matched_here_or_on_their_own_day() {
        let yesterday = Date::parse("2026-11-25").unwrap();
        // On the 25th (closed): the gateway had L1 and the region lacked it;
        // the region had L2, which the gateway only learned after the close.
        let l1 = of_the_25th(settled(1, "130100", 10_000));
        let l2 = of_the_25th(settled(2, "130100", 20_000));
        // L3: late on both sides, matched among the 26th's rows. L4: late in
        // the region only, and nowhere in the gateway. L5: late in the
        // gateway, with a different amount on the 25th's statement.
        let l3 = of_the_25th(settled(3, "130100", 30_000));
        let l4 = of_the_25th(settled(4, "130100", 40_000));
        let l5 = of_the_25th(settled(5, "130100", 50_000));
        let mut l5_region = l5.clone();
        l5_region.medfee_sumamt = Money::from_fen(50_100);
        let today = settled(6, "130100", 6_000);
        let gateway_25th = csv(std::slice::from_ref(&l1));
        let region_25th = csv(&[l2.clone(), l5_region.clone()]);
        let mut asked = Vec::new();
        let earlier = Earlier {
            closed: [yesterday].into_iter().collect(),
            lookup: Box::new(|date, side, region| {
                asked.push((date, side, region));
                Ok(match side {
                    Side::Gateway => Some(gateway_25th.clone()),
                    Side::Region => Some(region_25th.clone()),
                })
            }),
        };
        let outcome = reconcile(
            day(),
            &regions(),
            earlier,
            Cursor::new(csv(&[l2.clone(), l3.clone(), l5.clone(), today.clone()])),
            vec![(
                Admdvs::parse("130000").unwrap(),
                Cursor::new(csv(&[l1, l3, l4, today])),
            )],
        )
        .unwrap();
        // Read: L2, L3, L5 on the gateway's side, L1, L3, L4 on the region's.
        assert_eq!(outcome.late_rows, 6);
        // L1 and L2 found their partners on the 25th; L3 matched here.
        assert_eq!(outcome.late_matched, 2);
        let found: Vec<_> = outcome
            .discrepancies
            .iter()
            .map(|d| (d.class, d.row().and_then(|r| r.msgid.clone()), d.late_of))
            .collect();
        assert_eq!(
            found,
            vec![
                (Class::OnlyInRegion, Some("M4".into()), Some(yesterday)),
                (Class::AmountDiffers, Some("M5".into()), Some(yesterday)),
            ]
        );
        assert!(outcome.discrepancies[0]
            .detail()
            .contains("late row of the closed day 2026-11-25"));
        assert_eq!(
            outcome.discrepancies[1].fields[0].difference,
            Money::from_fen(100)
        );
        // Totals count each late row beside its partner: both sides hold
        // L1, L2, L3, L5 (the region's L5 at its own amount), L4 the region only, and today's.
        let (g, r) = outcome.totals.values().next().unwrap();
        assert_eq!(g.count, 5);
        assert_eq!(r.count, 6);
        let fen = |m: Money| m.fen();
        assert_eq!(
            fen(g.medfee_sumamt),
            10_000 + 20_000 + 30_000 + 50_000 + 6_000
        );
        assert_eq!(
            fen(r.medfee_sumamt),
            10_000 + 20_000 + 30_000 + 40_000 + 50_100 + 6_000
        );
        // Clearing takes only what the gateway carries this day (L2, L3, L5
        // and today's): L1 was cleared with the 25th.
        assert_eq!(
            outcome.owed[&(2, 0)].total(),
            Money::from_fen((20_000 + 30_000 + 50_000 + 6_000) * 7 / 10)
        );
    }

    #[test]
    fn a_row_of_an_open_earlier_day_is_refused() {
        let late = of_the_25th(settled(1, "130100", 10_000));
        let error = reconcile(
            day(),
            &regions(),
            Earlier::none(),
            Cursor::new(csv(&[])),
            vec![(Admdvs::parse("130000").unwrap(), Cursor::new(csv(&[late])))],
        )
        .unwrap_err();
        assert!(
            error.to_string().ends_with(
                "setl_time 2026-11-25 09:01:00 is not on the clearing day 2026-11-26; \
                 2026-11-25 is still open: its rows go with its own statement"
            ),
            "{error}"
        );
    }

    #[test]
    fn identical_sides_match() {
        let a = settled(1, "130100", 10_000);
        let b = settled(2, "120000", 25_050);
        let c = undo(&a, RowState::Cancelled, 3);
        let he = vec![a.clone(), c.clone()];
        let tj = vec![b.clone()];
        let outcome = run(
            &[a, b, c],
            &[("130000", he), ("120000", tj), ("110000", vec![])],
        );
        assert!(outcome.all_matched(), "{:?}", outcome.discrepancies);
        assert_eq!(outcome.gateway_rows, 3);
        // Hebei's cancel nets out; Tianjin owes Beijing the fund and account shares.
        let owed = &outcome.owed;
        assert_eq!(owed[&(2, 0)].total(), Money::from_fen(0));
        assert_eq!(owed[&(1, 0)].total(), Money::from_fen(15_030 + 2_505));
    }

    #[test]
    fn every_class_is_found() {
        let only_gateway = settled(1, "130100", 1_000);
        let only_region = settled(2, "130100", 2_000);
        let amount = settled(3, "130100", 3_000);
        let mut amount_region = amount.clone();
        amount_region.fund_pay_sumamt = Money::from_fen(1_801);
        amount_region.psn_cash_pay = Money::from_fen(899);
        let cancelled = settled(4, "130100", 4_000);
        let cancel = undo(&cancelled, RowState::Cancelled, 40);
        let reversed_there = undo(&cancelled, RowState::Reversed, 40);
        let undone_here_only = settled(5, "130100", 5_000);
        let undo_here_only = undo(&undone_here_only, RowState::Cancelled, 50);
        let field = settled(6, "130100", 6_000);
        let mut field_region = field.clone();
        field_region.setl_id = Some("S6-other".into());
        let dup = settled(7, "130100", 7_000);
        let gateway = vec![
            only_gateway,
            amount.clone(),
            cancelled.clone(),
            cancel,
            undone_here_only.clone(),
            undo_here_only,
            field,
            dup.clone(),
        ];
        let region = vec![
            only_region,
            amount_region,
            cancelled,
            reversed_there,
            undone_here_only,
            field_region,
            dup.clone(),
            dup,
        ];
        let outcome = run(&gateway, &[("130000", region)]);
        let mut found = classes(&outcome);
        found.sort();
        let m = |s: &str| Some(s.to_owned());
        assert_eq!(
            found,
            vec![
                (Class::OnlyInGateway, m("M1")),
                (Class::OnlyInRegion, m("M2")),
                (Class::AmountDiffers, m("M3")),
                (Class::StateDiffers, m("C40")),
                (Class::StateDiffers, m("C50")),
                (Class::FieldDiffers, m("M6")),
                (Class::Duplicate, m("M7")),
            ]
        );
        let amount = outcome
            .discrepancies
            .iter()
            .find(|d| d.class == Class::AmountDiffers)
            .unwrap();
        let fields: Vec<(&str, Option<i64>)> = amount
            .fields
            .iter()
            .map(|f| (f.field, f.difference.map(Money::fen)))
            .collect();
        assert_eq!(
            fields,
            vec![("fund_pay_sumamt", Some(1)), ("psn_cash_pay", Some(-1))]
        );
        assert!(!outcome.all_matched());
        // Totals disagree for Hebei's group.
        let (g, r) = outcome.totals.values().next().unwrap();
        assert!(!g.agrees(r));
    }

    #[test]
    fn lost_answers_match_without_amounts() {
        // The platform committed, the answer was lost, the gateway reversed it.
        let committed = settled(1, "120000", 9_900);
        let reversal = undo(&committed, RowState::Reversed, 9);
        let gateway_settle = unknown(committed.clone());
        let mut gateway_reversal = unknown(reversal.clone());
        gateway_reversal.msgid = None;
        // The platform never committed the other one: no trace there.
        let never = unknown(settled(2, "120000", 1_000));
        let mut never_reversal = unknown(undo(&settled(2, "120000", 1_000), RowState::Reversed, 8));
        never_reversal.msgid = None;
        let outcome = run(
            &[gateway_settle, gateway_reversal, never, never_reversal],
            &[("120000", vec![committed, reversal])],
        );
        assert!(
            outcome.discrepancies.is_empty(),
            "{:?}",
            outcome.discrepancies
        );
        // Totals too: the matched unknown outcome counts as the region states
        // it, the untraced one not at all.
        assert!(outcome.all_matched(), "{:?}", outcome.totals);
    }

    #[test]
    fn a_reversal_the_region_missed_is_a_state_difference() {
        let committed = settled(1, "120000", 9_900);
        let gateway = [
            unknown(committed.clone()),
            unknown(undo(&committed, RowState::Reversed, 9)),
        ];
        let outcome = run(&gateway, &[("120000", vec![committed])]);
        assert_eq!(
            classes(&outcome),
            vec![(Class::StateDiffers, Some("C9".into()))]
        );
    }

    #[test]
    fn regions_without_statements_are_not_reconciled_but_cleared() {
        let a = settled(1, "130100", 10_000);
        let outcome = run(&[a], &[]);
        assert!(outcome.discrepancies.is_empty());
        assert_eq!(outcome.owed[&(2, 0)].total(), Money::from_fen(7_000));
    }

    #[test]
    fn foreign_rows_and_other_days_are_refused_with_line_and_column() {
        let a = settled(1, "130100", 10_000);
        let mut other_day = settled(2, "130100", 1);
        other_day.setl_time = DateTime::parse("2026-11-27 00:00:00").unwrap();
        let error = reconcile(
            day(),
            &regions(),
            Earlier::none(),
            Cursor::new(csv(std::slice::from_ref(&a))),
            vec![(
                Admdvs::parse("130000").unwrap(),
                Cursor::new(csv(&[a.clone(), other_day])),
            )],
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "130000: line 3, column 11: setl_time 2026-11-27 00:00:00 is not on the clearing day 2026-11-26"
        );
        let error = reconcile(
            day(),
            &regions(),
            Earlier::none(),
            Cursor::new(csv(std::slice::from_ref(&a))),
            vec![(Admdvs::parse("120000").unwrap(), Cursor::new(csv(&[a])))],
        )
        .unwrap_err();
        assert!(error.to_string().contains("line 2, column 6"), "{error}");
    }

    /// `count` settlements in Hebei, msgids `M00000000` on, amounts rising.
    fn numbered(count: u32) -> Vec<Row> {
        (0..count)
            .map(|n| {
                let mut row = settled(n, "130100", 10_000 + i64::from(n));
                row.msgid = Some(format!("M{n:08}"));
                row
            })
            .collect()
    }

    /// The row with one fen more paid from the personal account.
    fn one_fen_more(row: &mut Row) {
        row.acct_pay = row
            .acct_pay
            .map(|m| m.checked_add(Money::from_fen(1).unwrap()).unwrap());
    }

    /// The gateway's slot for a region's row is looked for just after the
    /// last one matched, then in the table: the result must not depend on
    /// the statement's order, only the speed.
    #[test]
    fn the_statements_order_does_not_change_the_result() {
        let rows = numbered(5_000);
        let mut region = rows.clone();
        one_fen_more(&mut region[4_000]);
        region.remove(7);
        region.push(region[10].clone());
        let in_order = run(&rows, &[("130000", region.clone())]);
        region.reverse();
        let reversed = run(&rows, &[("130000", region)]);
        let m = |s: &str| Some(s.to_owned());
        let expected = vec![
            (Class::OnlyInGateway, m("M00000007")),
            (Class::AmountDiffers, m("M00004000")),
            (Class::Duplicate, m("M00000011")),
        ];
        assert_eq!(classes(&in_order), expected);
        assert_eq!(classes(&reversed), expected);
        assert_eq!(in_order.totals, reversed.totals);
    }

    #[test]
    fn many_chunks_keep_order_offsets_and_line_numbers() {
        // About 4 MB: several chunks for the parsing threads.
        let rows = numbered(20_000);
        let mut region = rows.clone();
        one_fen_more(&mut region[15_000]);
        region.remove(7);
        let outcome = run(&rows, &[("130000", region.clone())]);
        let found: Vec<(Class, Option<String>)> = classes(&outcome);
        assert_eq!(
            found,
            vec![
                (Class::OnlyInGateway, Some("M00000007".into())),
                (Class::AmountDiffers, Some("M00015000".into())),
            ]
        );
        // The reported rows were read back whole from their offsets.
        assert_eq!(outcome.discrepancies[0].gateway.as_ref(), Some(&rows[7]));
        assert_eq!(outcome.gateway_rows, 20_000);
        // A malformed line deep in the file is named by its number.
        let mut text = String::from_utf8(csv(&region)).unwrap();
        let line = text.lines().nth(17_000).unwrap().to_owned();
        text = text.replacen(&line, &line.replace(",settled", ",paid"), 1);
        let error = reconcile(
            day(),
            &regions(),
            Earlier::none(),
            Cursor::new(csv(&rows)),
            vec![(
                Admdvs::parse("130000").unwrap(),
                Cursor::new(text.into_bytes()),
            )],
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("130000: line 17001, column 16:"),
            "{error}"
        );
    }
}
#[cfg(test)]
mod keys {
    #![allow(clippy::unwrap_used)]
    /// Message ids differ in a digit or two; their keys must not collide
    /// (a plain multiply–rotate hash did, once in a few thousand).
    #[test]
    fn similar_keys_do_not_collide() {
        use super::*;
        let mut seen = std::collections::HashMap::new();
        for n in 0..200_000u32 {
            let msgid = format!("M{n:08}");
            let row = RowRef {
                setl_id: None,
                msgid: Some(&msgid),
                omsgid: None,
                mdtrt_id: None,
                fixmedins_code: "H11000000001",
                insuplc_admdvs: Admdvs::parse("130100").unwrap(),
                mdtrtarea_admvs: Admdvs::parse("110000").unwrap(),
                insutype: None,
                med_type: None,
                clr_type: None,
                setl_time: contracts::DateTime::parse("2026-11-26 09:00:00").unwrap(),
                medfee_sumamt: None,
                fund_pay_sumamt: None,
                acct_pay: None,
                psn_cash_pay: None,
                state: contracts::statement::RowState::Settled,
            };
            let (k, _) = key(&row, false);
            if let Some(other) = seen.insert(k, msgid.clone()) {
                panic!("{msgid} collides with {other}");
            }
        }
    }
}
