//! The sandbox platforms' policy engine: the split of a settlement as the
//! insured region's published policy computes it (参保地政策), from parameter
//! files in `deploy/sandbox/policy/` (one per province; Hebei with city
//! sections). `contracts/sandbox.md` explains the files and the sources.
//!
//! # What a settlement is split into
//!
//! The hospital classifies the fees with the treatment region's catalogue
//! (就医地目录) into wholly self-paid `F` (`fulamt_ownpay_amt`), over the
//! price limit `O` (`overlmt_selfpay`), pre-self-paid `P` (`preselfpay_amt`)
//! and in-scope `S` (`inscp_scp_amt`); the total is `F + O + P + S`. The
//! person always pays `F + O + P`; the funds pay only out of `S`.
//!
//! # Algorithm
//!
//! 1. **Benefit.** The insured region (`Person::insured`) selects the
//!    province file and, in Hebei, the city section (else the province
//!    default); the person's scheme selects `employee` or `resident`; the
//!    kind of care selects the benefit: med_type 11, 12, 13 → `outpatient`;
//!    41 → `outpatient` at the file's pharmacy level; 14 → `chronic` (only for
//!    a person with a chronic registration); 21 → `inpatient`.
//! 2. **Year.** Accumulators of another year are reset first (the account
//!    spending is kept: accounts carry over).
//! 3. **Terms** for the person on the settlement day. Every `variant` whose
//!    conditions hold (`retired`, `min_age`) applies, in file order; a later
//!    variant's value replaces an earlier one's. The deductible is the
//!    variant's or the benefit's, less `deductible_less` (not below 0); for
//!    the 2nd and later admission of the year the `later_*` rule applies. The
//!    ratio of each band at the institution's level (and owner, for Hebei
//!    三级) is the variant's `ratio` or the band's, plus `ratio_bonus`, less
//!    the filing cut (unfiled care outside provinces 11/12/13: `unfiled_cut`,
//!    or `unfiled_urgent_cut` for referral or emergency), clamped to 0..=1.
//!    The cap is the variant's or the benefit's at the level; `cap_major`
//!    replaces it for chronic care of a person registered for a major disease.
//! 4. **Deductible** `d` applied: outpatient and chronic care have a yearly
//!    deductible, of which the pool's `deductible_paid` is already borne;
//!    inpatient care bears the whole deductible of this admission. Applied
//!    deductible = min(S, what is still due) (`act_pay_dedc`).
//! 5. **Basic fund** (`hifp_pay`). The bands are measured on the year's
//!    cumulative in-scope amount of the pool (deductible parts included):
//!    this settlement's payable part `S − d` occupies the interval
//!    `[before + d, before + S)`, which the bands cut into pieces; above a
//!    last band with an `upto` the ratio is 0. Each piece pays
//!    `round_half_up(piece × ratio)`, in order, while the year's cap has room.
//!    A piece that would cross the cap pays exactly the room left; the
//!    expense that room covers is `ceil(room ÷ ratio)` (to the fen) and the
//!    rest of the piece, with every later piece, is **over the cap**.
//! 6. **Large-amount supplement** (`hifob_pay`, employees, inpatient and
//!    chronic care, where the file has one): `round_half_up(over × ratio)`,
//!    up to its own yearly cap.
//! 7. **Critical-illness insurance** (`hifmi_pay`, residents, inpatient and
//!    chronic care, where the file has one): the qualifying amount is
//!    `S − hifp_pay` (what the basic fund left to the person of the in-scope
//!    amount). Its bands are measured on the year's cumulative qualifying
//!    amount, starting at its deductible; each piece pays
//!    `round_half_up(piece × ratio)` while its yearly cap (if any) has room.
//! 8. **Civil-servant subsidy** (`cvlserv_pay`, civil servants, where the
//!    file has one): `round_half_up((S − d − hifp − hifob) × ratio)`.
//! 9. **The person** pays the rest: `psn_part_amt = medfee_sumamt −
//!    fund_pay_sumamt` (`hosp_part_amt` is 0). With `acct_used_flag = 1` an
//!    employee's account pays `min(psn_part_amt, balance)`; cash pays the
//!    rest; `balc` is the balance after.
//!
//! # Rounding
//!
//! All amounts are integer fen and ratios integer ten-thousandths
//! ([`Ratio`], four decimals). Each fund share of each piece is rounded half
//! up to the fen (`(fen × ratio + 5000) div 10000`); nothing else is rounded;
//! the person pays the remainder. Since no share exceeds the amount it is
//! taken from, the split always balances:
//! `medfee_sumamt = fund_pay_sumamt + psn_part_amt`,
//! `psn_part_amt = acct_pay + psn_cash_pay`,
//! `fund_pay_sumamt = hifp + cvlserv + hifes + hifmi + hifob + maf + oth`.
//!
//! `pool_prop_selfpay` is `1 −` the effective basic ratio at the point where
//! this settlement's payable part starts.

use crate::sandbox::population::{ymd, Person, Scheme};
use contracts::model::settlement::{SetlDetail, SetlInfo, SettleRequest};
use contracts::{Admdvs, ClrType, Date, Insutype, MedType, Money, Province, Ratio};
use serde::Deserialize;
use std::path::Path;

/// One in ten thousand: the unit of a [`Ratio`].
const WHOLE: i64 = 10_000;

// ---------------------------------------------------------------------------
// Visits, accumulators, splits
// ---------------------------------------------------------------------------

/// Hospital level (医院等级).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// 一级 and below (community, township).
    One,
    /// 二级.
    Two,
    /// 三级.
    Three,
}

impl Level {
    /// From 1, 2 or 3.
    pub fn from_number(number: i64) -> Option<Level> {
        match number {
            1 => Some(Level::One),
            2 => Some(Level::Two),
            3 => Some(Level::Three),
            _ => None,
        }
    }

    /// Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Level::One => "一级",
            Level::Two => "二级",
            Level::Three => "三级",
        }
    }
}

/// Who runs an institution; Hebei cities set different terms for
/// provincially run (省属) and city-run (市属) 三级 hospitals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// 省属: run by the province (or above).
    Provincial,
    /// 市属: run by the city (or below); the default.
    City,
}

/// Filing status of care (备案).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filing {
    /// Filed, or treated as filed.
    Filed,
    /// Not filed, but a referral or an emergency (the smaller cut).
    UnfiledUrgent,
    /// Not filed, other temporary care (the larger cut).
    Unfiled,
}

/// The kind of care a benefit covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Care {
    /// Ordinary outpatient and pharmacy purchases (yearly deductible).
    Outpatient,
    /// Chronic or special-disease outpatient (yearly deductible).
    Chronic,
    /// Inpatient (deductible per admission).
    Inpatient,
}

/// The fee breakdown of a settlement request; the total is their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fees {
    /// Wholly self-paid (全自费金额).
    pub fulamt_ownpay_amt: Money,
    /// Over the price limit (超限价金额).
    pub overlmt_selfpay: Money,
    /// Pre-self-paid (先行自付金额).
    pub preselfpay_amt: Money,
    /// In scope (符合政策范围金额).
    pub inscp_scp_amt: Money,
}

impl Fees {
    /// The breakdown of a settlement request: its four parts when all are
    /// given; when none is (pre-settlements usually leave them out), the
    /// whole `medfee_sumamt` counted in scope — a sandbox simplification;
    /// a caller that has the classified fee lines (2204/2301 results) should
    /// sum those instead. `None` when only some parts are given or the total
    /// is missing.
    pub fn from_request(request: &SettleRequest) -> Option<Fees> {
        let parts = [
            request.fulamt_ownpay_amt,
            request.overlmt_selfpay,
            request.preselfpay_amt,
            request.inscp_scp_amt,
        ];
        match parts {
            [Some(f), Some(o), Some(p), Some(s)] => Some(Fees {
                fulamt_ownpay_amt: f,
                overlmt_selfpay: o,
                preselfpay_amt: p,
                inscp_scp_amt: s,
            }),
            [None, None, None, None] => Some(Fees {
                inscp_scp_amt: request.medfee_sumamt?,
                ..Fees::default()
            }),
            _ => None,
        }
    }

    /// `medfee_sumamt`: the sum of the four parts, `None` on overflow.
    pub fn total(&self) -> Option<Money> {
        Money::sum([
            self.fulamt_ownpay_amt,
            self.overlmt_selfpay,
            self.preselfpay_amt,
            self.inscp_scp_amt,
        ])
    }
}

/// One settlement to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// Treatment region (就医地).
    pub treatment: Admdvs,
    /// Institution level (ignored for pharmacy purchases, which use the file's pharmacy level).
    pub level: Level,
    /// Institution owner (matters for Hebei 三级 only).
    pub owner: Owner,
    /// Kind of care.
    pub med_type: MedType,
    /// Fee breakdown.
    pub fees: Fees,
    /// `acct_used_flag = 1`: use the personal account.
    pub use_account: bool,
    /// Settlement day (decides the year, the age and retirement).
    pub setl_date: Date,
    /// Filing status (only matters outside provinces 11/12/13).
    pub filing: Filing,
}

/// A pool's totals for the year.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolToDate {
    /// Deductible borne this year (起付线累计).
    pub deductible_paid: Money,
    /// In-scope amount this year (政策范围内费用累计), the band yardstick.
    pub inscope: Money,
    /// Basic fund paid this year, against the cap.
    pub fund_paid: Money,
}

/// A person's year-to-date totals, kept by the caller between settlements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accumulators {
    /// The year these totals belong to (0: none yet).
    pub year: i32,
    /// Ordinary outpatient and pharmacy.
    pub outpatient: PoolToDate,
    /// Chronic or special-disease outpatient.
    pub chronic: PoolToDate,
    /// Inpatient.
    pub inpatient: PoolToDate,
    /// Admissions settled this year.
    pub admissions: u32,
    /// Large-amount supplement paid this year.
    pub large_amount_paid: Money,
    /// Critical-illness qualifying amount this year (its band yardstick).
    pub critical_base: Money,
    /// Critical-illness insurance paid this year.
    pub critical_paid: Money,
    /// Civil-servant subsidy paid this year.
    pub civil_servant_paid: Money,
    /// Personal account spent by the sandbox, all years (not reset yearly).
    pub account_used: Money,
}

impl Accumulators {
    /// The totals as they stand in `year`: unchanged for the same year,
    /// reset (except the account spending) for another.
    pub fn for_year(&self, year: i32) -> Accumulators {
        if self.year == year {
            *self
        } else {
            Accumulators {
                year,
                account_used: self.account_used,
                ..Accumulators::default()
            }
        }
    }

    /// The pool of a kind of care.
    pub fn pool(&self, care: Care) -> &PoolToDate {
        match care {
            Care::Outpatient => &self.outpatient,
            Care::Chronic => &self.chronic,
            Care::Inpatient => &self.inpatient,
        }
    }

    fn pool_mut(&mut self, care: Care) -> &mut PoolToDate {
        match care {
            Care::Outpatient => &mut self.outpatient,
            Care::Chronic => &mut self.chronic,
            Care::Inpatient => &mut self.inpatient,
        }
    }

    /// The account balance left of `opening` (never below 0).
    pub fn balance(&self, opening: Money) -> Money {
        opening
            .checked_sub(self.account_used)
            .filter(|b| *b > Money::ZERO)
            .unwrap_or(Money::ZERO)
    }

    /// Adds a settlement's contribution (after [`Accumulators::for_year`]).
    pub fn apply(&mut self, delta: &Delta) -> Option<()> {
        let pool = self.pool_mut(delta.care);
        pool.deductible_paid = pool.deductible_paid.checked_add(delta.deductible)?;
        pool.inscope = pool.inscope.checked_add(delta.inscope)?;
        pool.fund_paid = pool.fund_paid.checked_add(delta.fund)?;
        if delta.admission {
            self.admissions = self.admissions.checked_add(1)?;
        }
        self.large_amount_paid = self.large_amount_paid.checked_add(delta.large_amount)?;
        self.critical_base = self.critical_base.checked_add(delta.critical_base)?;
        self.critical_paid = self.critical_paid.checked_add(delta.critical)?;
        self.civil_servant_paid = self.civil_servant_paid.checked_add(delta.civil_servant)?;
        self.account_used = self.account_used.checked_add(delta.account)?;
        Some(())
    }

    /// Takes a cancelled or reversed settlement's contribution back out.
    /// A contribution of another year only gives its account spending back
    /// (that year's totals are closed). Never goes below zero.
    pub fn revert(&mut self, delta: &Delta) {
        fn less(a: Money, b: Money) -> Money {
            a.checked_sub(b)
                .filter(|m| *m >= Money::ZERO)
                .unwrap_or(Money::ZERO)
        }
        self.account_used = less(self.account_used, delta.account);
        if delta.year != self.year {
            return;
        }
        let pool = self.pool_mut(delta.care);
        pool.deductible_paid = less(pool.deductible_paid, delta.deductible);
        pool.inscope = less(pool.inscope, delta.inscope);
        pool.fund_paid = less(pool.fund_paid, delta.fund);
        if delta.admission {
            self.admissions = self.admissions.saturating_sub(1);
        }
        self.large_amount_paid = less(self.large_amount_paid, delta.large_amount);
        self.critical_base = less(self.critical_base, delta.critical_base);
        self.critical_paid = less(self.critical_paid, delta.critical);
        self.civil_servant_paid = less(self.civil_servant_paid, delta.civil_servant);
    }
}

/// What one settlement adds to the accumulators; keep it with the
/// settlement so a cancel or reversal can take it back ([`Accumulators::revert`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    /// The year settled in.
    pub year: i32,
    /// The pool.
    pub care: Care,
    /// Deductible borne.
    pub deductible: Money,
    /// In-scope amount.
    pub inscope: Money,
    /// Basic fund paid.
    pub fund: Money,
    /// Whether this was an admission.
    pub admission: bool,
    /// Large-amount supplement paid.
    pub large_amount: Money,
    /// Critical-illness qualifying amount.
    pub critical_base: Money,
    /// Critical-illness insurance paid.
    pub critical: Money,
    /// Civil-servant subsidy paid.
    pub civil_servant: Money,
    /// Personal account paid.
    pub account: Money,
}

/// One payer row of `setldetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundLine {
    /// `fund_pay_type`, e.g. 310100.
    pub fund_pay_type: &'static str,
    /// `fund_pay_type_name`.
    pub name: &'static str,
    /// In-scope amount the payer worked on.
    pub inscp_scp_amt: Money,
    /// What the payer could still pay this year before this settlement (`None`: no cap).
    pub limit: Option<Money>,
    /// Paid.
    pub paid: Money,
    /// How it was computed (`setl_proc_info`).
    pub process: String,
}

/// The computed split of one settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Insurance type.
    pub insutype: Insutype,
    /// Kind of care.
    pub med_type: MedType,
    /// Clearing type: 11 outpatient and chronic, 21 inpatient, 41 pharmacy.
    pub clr_type: ClrType,
    /// 医疗费总额.
    pub medfee_sumamt: Money,
    /// 全自费金额.
    pub fulamt_ownpay_amt: Money,
    /// 超限价自费费用.
    pub overlmt_selfpay: Money,
    /// 先行自付金额.
    pub preselfpay_amt: Money,
    /// 符合政策范围金额.
    pub inscp_scp_amt: Money,
    /// 实际支付起付线.
    pub act_pay_dedc: Money,
    /// 基本医疗保险统筹基金支出.
    pub hifp_pay: Money,
    /// Pooled-fund self-pay ratio: 1 − the effective basic ratio.
    pub pool_prop_selfpay: Ratio,
    /// 公务员医疗补助资金支出.
    pub cvlserv_pay: Money,
    /// 企业补充医疗保险基金支出 (always 0 here).
    pub hifes_pay: Money,
    /// 居民大病保险资金支出.
    pub hifmi_pay: Money,
    /// 职工大额医疗费用补助基金支出.
    pub hifob_pay: Money,
    /// 医疗救助基金支出 (always 0 here).
    pub maf_pay: Money,
    /// 其他支出 (always 0 here).
    pub oth_pay: Money,
    /// 基金支付总额.
    pub fund_pay_sumamt: Money,
    /// 个人负担总金额.
    pub psn_part_amt: Money,
    /// 个人账户支出.
    pub acct_pay: Money,
    /// 个人现金支出.
    pub psn_cash_pay: Money,
    /// 医院负担金额 (always 0 here).
    pub hosp_part_amt: Money,
    /// Account balance after.
    pub balc: Money,
    /// The payers (`setldetail`).
    pub lines: Vec<FundLine>,
}

impl Split {
    /// Writes the amounts, `pool_prop_selfpay`, `insutype`, `med_type` and
    /// `clr_type` into a settlement answer. The caller sets `setl_id`, the
    /// ids, times and the person's fields ([`Person::fill_setlinfo`]).
    pub fn fill_setlinfo(&self, info: &mut SetlInfo) {
        info.insutype = Some(self.insutype.clone());
        info.med_type = Some(self.med_type.clone());
        info.clr_type = Some(self.clr_type.clone());
        info.medfee_sumamt = Some(self.medfee_sumamt);
        info.fulamt_ownpay_amt = Some(self.fulamt_ownpay_amt);
        info.overlmt_selfpay = Some(self.overlmt_selfpay);
        info.preselfpay_amt = Some(self.preselfpay_amt);
        info.inscp_scp_amt = Some(self.inscp_scp_amt);
        info.act_pay_dedc = Some(self.act_pay_dedc);
        info.hifp_pay = Some(self.hifp_pay);
        info.pool_prop_selfpay = Some(self.pool_prop_selfpay);
        info.cvlserv_pay = Some(self.cvlserv_pay);
        info.hifes_pay = Some(self.hifes_pay);
        info.hifmi_pay = Some(self.hifmi_pay);
        info.hifob_pay = Some(self.hifob_pay);
        info.maf_pay = Some(self.maf_pay);
        info.oth_pay = Some(self.oth_pay);
        info.fund_pay_sumamt = Some(self.fund_pay_sumamt);
        info.psn_part_amt = Some(self.psn_part_amt);
        info.acct_pay = Some(self.acct_pay);
        info.psn_cash_pay = Some(self.psn_cash_pay);
        info.hosp_part_amt = Some(self.hosp_part_amt);
        info.balc = Some(self.balc);
    }

    /// The payer rows (`setldetail`): the basic fund always, other funds and
    /// the personal account when they paid something.
    pub fn setldetail(&self) -> Vec<SetlDetail> {
        self.lines
            .iter()
            .map(|line| SetlDetail {
                fund_pay_type: Some(line.fund_pay_type.to_owned()),
                inscp_scp_amt: Some(line.inscp_scp_amt),
                crt_payb_lmt_amt: line.limit,
                fund_payamt: Some(line.paid),
                fund_pay_type_name: Some(line.name.to_owned()),
                setl_proc_info: Some(line.process.clone()),
                ..SetlDetail::default()
            })
            .collect()
    }

    /// The split of the cancel of this settlement (2208, 2305, 2103): every
    /// amount negated, `balc` the balance after the account is refunded.
    pub fn cancelled(&self) -> Split {
        let mut lines = self.lines.clone();
        for line in &mut lines {
            line.inscp_scp_amt = line.inscp_scp_amt.negated();
            line.paid = line.paid.negated();
        }
        Split {
            insutype: self.insutype.clone(),
            med_type: self.med_type.clone(),
            clr_type: self.clr_type.clone(),
            medfee_sumamt: self.medfee_sumamt.negated(),
            fulamt_ownpay_amt: self.fulamt_ownpay_amt.negated(),
            overlmt_selfpay: self.overlmt_selfpay.negated(),
            preselfpay_amt: self.preselfpay_amt.negated(),
            inscp_scp_amt: self.inscp_scp_amt.negated(),
            act_pay_dedc: self.act_pay_dedc.negated(),
            hifp_pay: self.hifp_pay.negated(),
            pool_prop_selfpay: self.pool_prop_selfpay,
            cvlserv_pay: self.cvlserv_pay.negated(),
            hifes_pay: self.hifes_pay.negated(),
            hifmi_pay: self.hifmi_pay.negated(),
            hifob_pay: self.hifob_pay.negated(),
            maf_pay: self.maf_pay.negated(),
            oth_pay: self.oth_pay.negated(),
            fund_pay_sumamt: self.fund_pay_sumamt.negated(),
            psn_part_amt: self.psn_part_amt.negated(),
            acct_pay: self.acct_pay.negated(),
            psn_cash_pay: self.psn_cash_pay.negated(),
            hosp_part_amt: self.hosp_part_amt.negated(),
            balc: self.balc.checked_add(self.acct_pay).unwrap_or(self.balc),
            lines,
        }
    }
}

/// The result of [`Policies::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The split.
    pub split: Split,
    /// The accumulators after this settlement (persist them on settlement,
    /// not on pre-settlement).
    pub after: Accumulators,
    /// What this settlement added (keep it to revert a cancel or reversal).
    pub delta: Delta,
}

/// Why a settlement cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// The insured region is not one the sandbox has a policy for.
    #[error("no sandbox policy for insured region {0}")]
    UnknownRegion(Admdvs),
    /// A kind of care the sandbox does not settle.
    #[error("med_type {0} is not settled by the sandbox")]
    UnsupportedMedType(String),
    /// Chronic outpatient care for a person without a registration.
    #[error("the person has no chronic or special-disease registration (门诊慢特病登记)")]
    NotRegistered,
    /// A fee part below zero.
    #[error("{0} is negative")]
    NegativeFee(&'static str),
    /// An amount beyond the range of money.
    #[error("amount out of range")]
    Overflow,
}

// ---------------------------------------------------------------------------
// Parameters (typed, validated)
// ---------------------------------------------------------------------------

/// How sure a parameter is (see `shared/reference/settlement-rules.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Encoded in a public open-source policy data set citing the document.
    Repo,
    /// Remembered or chosen for the sandbox, unconfirmed.
    Mem,
}

/// Where a section's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The source named in the file.
    pub source: String,
    /// Its confidence.
    pub confidence: Confidence,
    /// A note, e.g. how a range was narrowed to one value.
    pub note: Option<String>,
}

/// A value for each hospital level (三级 split by owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByLevel<T> {
    /// 一级 and below.
    pub one: T,
    /// 二级.
    pub two: T,
    /// 三级 run by the city (or any 三级 where the file does not split them).
    pub three_city: T,
    /// 三级 run by the province.
    pub three_provincial: T,
}

impl<T: Copy> ByLevel<T> {
    /// The value at a level and owner.
    pub fn at(&self, level: Level, owner: Owner) -> T {
        match (level, owner) {
            (Level::One, _) => self.one,
            (Level::Two, _) => self.two,
            (Level::Three, Owner::City) => self.three_city,
            (Level::Three, Owner::Provincial) => self.three_provincial,
        }
    }

    /// Every level's value: 一级, 二级, 三级 市属, 三级 省属.
    pub fn values(&self) -> [T; 4] {
        [self.one, self.two, self.three_city, self.three_provincial]
    }
}

/// The deductible of the 2nd and later admissions of a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaterAdmissions {
    /// As the first.
    Same,
    /// A fixed deductible by level (less any `deductible_less`).
    Fixed(ByLevel<Money>),
    /// A share of the first admission's deductible, rounded half up.
    Share(Ratio),
    /// Each later admission `step` lower than the one before, not below
    /// `floor` (nor above the first).
    Step {
        /// Reduction per admission.
        step: Money,
        /// Lowest deductible.
        floor: Money,
    },
}

/// A band of the ratio table, up to a cumulative amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// Upper end of the band (cumulative yearly amount); `None`: no end.
    pub upto: Option<Money>,
    /// Ratio by level.
    pub ratio: ByLevel<Ratio>,
}

/// Terms for some of the people a benefit covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Applies only to people retired (true) or in service (false).
    pub retired: Option<bool>,
    /// Applies only from this age (full years on the settlement day).
    pub min_age: Option<u32>,
    /// Replaces the deductible.
    pub deductible: Option<ByLevel<Money>>,
    /// Lowers the deductible by this much.
    pub deductible_less: Option<Money>,
    /// Replaces the ratio (single-band benefits only).
    pub ratio: Option<ByLevel<Ratio>>,
    /// Adds to every band's ratio.
    pub ratio_bonus: Option<Ratio>,
    /// Replaces the cap.
    pub cap: Option<ByLevel<Money>>,
    /// Source.
    pub provenance: Provenance,
}

/// The basic fund's terms for one kind of care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Benefit {
    /// Deductible (yearly for outpatient and chronic care; the first admission's for inpatient care).
    pub deductible: ByLevel<Money>,
    /// Later admissions (inpatient only).
    pub later: LaterAdmissions,
    /// Ratio bands, in order.
    pub bands: Vec<Band>,
    /// Yearly cap on the basic fund's payment.
    pub cap: ByLevel<Money>,
    /// Cap for a person registered for a major chronic disease (chronic only).
    pub cap_major: Option<Money>,
    /// Variants by person.
    pub variants: Vec<Variant>,
    /// Source.
    pub provenance: Provenance,
}

/// The employees' large-amount supplement (职工大额医疗费用补助).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeAmount {
    /// Share of the in-scope amount over the basic cap it pays.
    pub ratio: Ratio,
    /// Yearly cap on its payment.
    pub cap: Money,
    /// Source.
    pub provenance: Provenance,
}

/// A band of the critical-illness table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlatBand {
    /// Upper end (cumulative qualifying amount); `None`: no end.
    pub upto: Option<Money>,
    /// Ratio.
    pub ratio: Ratio,
}

/// Residents' critical-illness insurance (城乡居民大病保险).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalIllness {
    /// Yearly deductible on the qualifying amount.
    pub deductible: Money,
    /// Bands above the deductible.
    pub bands: Vec<FlatBand>,
    /// Yearly cap on its payment, if any.
    pub cap: Option<Money>,
    /// Source.
    pub provenance: Provenance,
}

/// Civil servants' medical subsidy (公务员医疗补助).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CivilServant {
    /// Share of the in-scope co-payment above the deductible it pays.
    pub ratio: Ratio,
    /// Source.
    pub provenance: Provenance,
}

/// One scheme's policy in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemePolicy {
    /// Ordinary outpatient and pharmacy.
    pub outpatient: Benefit,
    /// Chronic or special-disease outpatient.
    pub chronic: Benefit,
    /// Inpatient.
    pub inpatient: Benefit,
    /// Large-amount supplement (employees), if any.
    pub large_amount: Option<LargeAmount>,
    /// Critical-illness insurance (residents), if any.
    pub critical_illness: Option<CriticalIllness>,
    /// Civil-servant subsidy (employees), if any.
    pub civil_servant: Option<CivilServant>,
}

impl SchemePolicy {
    /// The benefit for a kind of care.
    pub fn benefit(&self, care: Care) -> &Benefit {
        match care {
            Care::Outpatient => &self.outpatient,
            Care::Chronic => &self.chronic,
            Care::Inpatient => &self.inpatient,
        }
    }
}

/// Both schemes' policies in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPolicy {
    /// Employees (310).
    pub employee: SchemePolicy,
    /// Residents (390).
    pub resident: SchemePolicy,
}

/// A city's own policy (Hebei).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CityPolicy {
    /// Name.
    pub name: String,
    /// The divisions it covers (a city code covers its counties).
    pub admdvs: Vec<Admdvs>,
    /// Its policy.
    pub policy: LocalPolicy,
}

/// The ratio cuts for unfiled care outside Beijing–Tianjin–Hebei.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilingCuts {
    /// Cut for unfiled referral or emergency care.
    pub unfiled_urgent: Ratio,
    /// Cut for other unfiled care.
    pub unfiled: Ratio,
    /// Source.
    pub provenance: Provenance,
}

/// One province's parameter file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPolicy {
    /// Province.
    pub province: Province,
    /// Name.
    pub name: String,
    /// Filing cuts.
    pub filing: FilingCuts,
    /// The level pharmacy purchases are paid at.
    pub pharmacy_level: Level,
    /// Source of the pharmacy level.
    pub pharmacy_provenance: Provenance,
    /// The province's default (or only) policy.
    pub default: LocalPolicy,
    /// Cities with their own policy.
    pub cities: Vec<CityPolicy>,
}

impl RegionPolicy {
    /// The policy for people insured in `insured` (a city's, else the default).
    pub fn local(&self, insured: Admdvs) -> &LocalPolicy {
        self.cities
            .iter()
            .find(|city| city.admdvs.iter().any(|code| insured.within(*code)))
            .map(|city| &city.policy)
            .unwrap_or(&self.default)
    }
}

/// Why a parameter file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML of the expected shape.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message (names the line and key).
        message: String,
    },
    /// A value is out of bounds or missing.
    #[error("{file}: {key}: {problem}")]
    Invalid {
        /// The file.
        file: String,
        /// The key, as a TOML path.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The three provinces' policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// Beijing.
    pub beijing: RegionPolicy,
    /// Tianjin.
    pub tianjin: RegionPolicy,
    /// Hebei.
    pub hebei: RegionPolicy,
}

/// The files shipped in `deploy/sandbox/policy/`, embedded.
const BUILTIN_BEIJING: &str = include_str!("../../../deploy/sandbox/policy/beijing.toml");
const BUILTIN_TIANJIN: &str = include_str!("../../../deploy/sandbox/policy/tianjin.toml");
const BUILTIN_HEBEI: &str = include_str!("../../../deploy/sandbox/policy/hebei.toml");

/// Reads `beijing.toml`, `tianjin.toml` and `hebei.toml` from a directory.
pub fn load_dir(path: impl AsRef<Path>) -> Result<Policies, PolicyError> {
    let dir = path.as_ref();
    let read = |name: &str| {
        let file = dir.join(name);
        std::fs::read_to_string(&file).map_err(|source| PolicyError::Io {
            path: file.display().to_string(),
            source,
        })
    };
    Policies::parse(
        &read("beijing.toml")?,
        &read("tianjin.toml")?,
        &read("hebei.toml")?,
    )
}

impl Policies {
    /// The policies shipped with the gateway (embedded at build time).
    pub fn builtin() -> Result<Policies, PolicyError> {
        Policies::parse(BUILTIN_BEIJING, BUILTIN_TIANJIN, BUILTIN_HEBEI)
    }

    /// Parses and validates the three files' texts.
    pub fn parse(beijing: &str, tianjin: &str, hebei: &str) -> Result<Policies, PolicyError> {
        Ok(Policies {
            beijing: parse_region("beijing.toml", beijing, Province::Beijing)?,
            tianjin: parse_region("tianjin.toml", tianjin, Province::Tianjin)?,
            hebei: parse_region("hebei.toml", hebei, Province::Hebei)?,
        })
    }

    /// A province's file.
    pub fn region(&self, province: Province) -> &RegionPolicy {
        match province {
            Province::Beijing => &self.beijing,
            Province::Tianjin => &self.tianjin,
            Province::Hebei => &self.hebei,
        }
    }

    /// The policy for people insured in `insured`.
    pub fn local(&self, insured: Admdvs) -> Option<&LocalPolicy> {
        insured
            .province()
            .map(|province| self.region(province).local(insured))
    }

    /// Computes a settlement for `person` (insured where [`Person::insured`]
    /// says) with the year-to-date totals `before`. Pure: a pre-settlement
    /// discards the result; a settlement persists [`Settlement::after`].
    pub fn settle(
        &self,
        person: &Person,
        visit: &Visit,
        before: &Accumulators,
    ) -> Result<Settlement, SettleError> {
        let province = person
            .insured
            .province()
            .ok_or(SettleError::UnknownRegion(person.insured))?;
        let region = self.region(province);
        let local = region.local(person.insured);
        let scheme = match person.scheme {
            Scheme::Employee => &local.employee,
            Scheme::Resident => &local.resident,
        };
        let (care, level, owner, clr_type) = match &visit.med_type {
            MedType::Outpatient | MedType::OutpatientRegistration | MedType::Emergency => (
                Care::Outpatient,
                visit.level,
                visit.owner,
                ClrType::Outpatient,
            ),
            MedType::Pharmacy => (
                Care::Outpatient,
                region.pharmacy_level,
                Owner::City,
                ClrType::Pharmacy,
            ),
            MedType::ChronicOutpatient => {
                if !person.has_chronic_registration() {
                    return Err(SettleError::NotRegistered);
                }
                (Care::Chronic, visit.level, visit.owner, ClrType::Outpatient)
            }
            MedType::Inpatient => (
                Care::Inpatient,
                visit.level,
                visit.owner,
                ClrType::Inpatient,
            ),
            MedType::Other(code) => return Err(SettleError::UnsupportedMedType(code.to_string())),
        };
        compute(Inputs {
            person,
            visit,
            before,
            scheme,
            benefit: scheme.benefit(care),
            cuts: &region.filing,
            care,
            level,
            owner,
            clr_type,
        })
    }
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

struct Inputs<'a> {
    person: &'a Person,
    visit: &'a Visit,
    before: &'a Accumulators,
    scheme: &'a SchemePolicy,
    benefit: &'a Benefit,
    cuts: &'a FilingCuts,
    care: Care,
    level: Level,
    owner: Owner,
    clr_type: ClrType,
}

/// The terms that apply to one person and one visit.
struct Terms {
    deductible: Money,
    /// (upper end, effective ratio in ten-thousandths) per band.
    bands: Vec<(Option<i64>, i64)>,
    cap: Money,
}

fn fen(amount: Money) -> i64 {
    amount.fen()
}

fn money(fen: i64) -> Result<Money, SettleError> {
    Money::from_fen(fen).ok_or(SettleError::Overflow)
}

/// `round_half_up(amount × ratio)` for amount ≥ 0 and ratio in 0..=WHOLE.
fn share(amount: i64, ratio: i64) -> i64 {
    let product = i128::from(amount) * i128::from(ratio) + i128::from(WHOLE / 2);
    i64::try_from(product / i128::from(WHOLE)).unwrap_or(i64::MAX)
}

fn percent(ratio: i64) -> String {
    let mut text = String::new();
    let _ = contracts::money::write_scaled(&mut text, ratio, 2);
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}%")
}

fn terms(inputs: &Inputs<'_>, admissions_before: u32) -> Terms {
    let Inputs {
        person,
        visit,
        benefit,
        care,
        level,
        owner,
        ..
    } = inputs;
    let (level, owner) = (*level, *owner);
    let age = person.age_on(visit.setl_date);
    let retired = person.retired_on(visit.setl_date);
    let mut deductible = benefit.deductible;
    let mut deductible_less = Money::ZERO;
    let mut ratio: Option<ByLevel<Ratio>> = None;
    let mut bonus = 0i64;
    let mut cap = benefit.cap;
    for variant in &benefit.variants {
        let applies = variant.retired.is_none_or(|r| r == retired)
            && variant.min_age.is_none_or(|min| age >= min);
        if !applies {
            continue;
        }
        if let Some(d) = variant.deductible {
            deductible = d;
        }
        if let Some(less) = variant.deductible_less {
            deductible_less = less;
        }
        if let Some(r) = variant.ratio {
            ratio = Some(r);
        }
        if let Some(b) = variant.ratio_bonus {
            bonus = b.scaled();
        }
        if let Some(c) = variant.cap {
            cap = c;
        }
    }
    let less = |amount: Money| (fen(amount) - fen(deductible_less)).max(0);
    let first = less(deductible.at(level, owner));
    let mut deductible_fen = first;
    if *care == Care::Inpatient && admissions_before >= 1 {
        deductible_fen = match benefit.later {
            LaterAdmissions::Same => first,
            LaterAdmissions::Fixed(later) => less(later.at(level, owner)),
            LaterAdmissions::Share(part) => share(first, part.scaled()),
            LaterAdmissions::Step { step, floor } => {
                let steps = i64::from(admissions_before);
                let lowered = first.saturating_sub(fen(step).saturating_mul(steps));
                lowered.max(first.min(fen(floor)))
            }
        };
    }
    let cut = if visit.treatment.province().is_some() {
        0
    } else {
        match visit.filing {
            Filing::Filed => 0,
            Filing::UnfiledUrgent => inputs.cuts.unfiled_urgent.scaled(),
            Filing::Unfiled => inputs.cuts.unfiled.scaled(),
        }
    };
    let bands = benefit
        .bands
        .iter()
        .map(|band| {
            let base = ratio.unwrap_or(band.ratio).at(level, owner).scaled();
            (band.upto.map(fen), (base + bonus - cut).clamp(0, WHOLE))
        })
        .collect();
    let mut cap = cap.at(level, owner);
    if *care == Care::Chronic && person.has_major_chronic() {
        if let Some(major) = benefit.cap_major {
            cap = major;
        }
    }
    Terms {
        deductible: Money::from_fen(deductible_fen).unwrap_or(Money::ZERO),
        bands,
        cap,
    }
}

/// Cuts `[start, end)` by bands `(upper, ratio)` measured from 0; beyond a
/// bounded last band the ratio is 0.
fn pieces(start: i64, end: i64, bands: &[(Option<i64>, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut lower = 0i64;
    for &(upper, ratio) in bands {
        let upper = upper.unwrap_or(i64::MAX);
        let from = start.max(lower);
        let to = end.min(upper);
        if to > from {
            out.push((to - from, ratio));
        }
        lower = upper;
        if lower >= end {
            break;
        }
    }
    if lower < end {
        let from = start.max(lower);
        if end > from {
            out.push((end - from, 0));
        }
    }
    out
}

/// The ratio of the band containing `position`.
fn ratio_at(position: i64, bands: &[(Option<i64>, i64)]) -> i64 {
    bands
        .iter()
        .find(|(upper, _)| upper.is_none_or(|u| position < u))
        .map(|&(_, ratio)| ratio)
        .unwrap_or(0)
}

fn compute(inputs: Inputs<'_>) -> Result<Settlement, SettleError> {
    let Inputs {
        person,
        visit,
        scheme,
        care,
        ..
    } = &inputs;
    let care = *care;
    let fees = visit.fees;
    for (name, part) in [
        ("fulamt_ownpay_amt", fees.fulamt_ownpay_amt),
        ("overlmt_selfpay", fees.overlmt_selfpay),
        ("preselfpay_amt", fees.preselfpay_amt),
        ("inscp_scp_amt", fees.inscp_scp_amt),
    ] {
        if part < Money::ZERO {
            return Err(SettleError::NegativeFee(name));
        }
    }
    let total = fees.total().ok_or(SettleError::Overflow)?;
    let year = ymd(visit.setl_date).0;
    let acc = inputs.before.for_year(year);
    let pool = *acc.pool(care);
    let terms = terms(&inputs, acc.admissions);
    let scope = fen(fees.inscp_scp_amt);

    // Deductible.
    let due = match care {
        Care::Inpatient => fen(terms.deductible),
        Care::Outpatient | Care::Chronic => {
            (fen(terms.deductible) - fen(pool.deductible_paid)).max(0)
        }
    };
    let applied = scope.min(due);

    // Basic fund, band by band, within the cap.
    let start = fen(pool.inscope)
        .checked_add(applied)
        .ok_or(SettleError::Overflow)?;
    let end = fen(pool.inscope)
        .checked_add(scope)
        .ok_or(SettleError::Overflow)?;
    let limit = (fen(terms.cap) - fen(pool.fund_paid)).max(0);
    let mut room = limit;
    let mut basic = 0i64;
    let mut over = 0i64;
    for (piece, ratio) in pieces(start, end, &terms.bands) {
        if room == 0 {
            over += piece;
            continue;
        }
        let want = share(piece, ratio);
        if want <= room {
            basic += want;
            room -= want;
        } else {
            // want > room ≥ 1, so ratio > 0: the expense the room covers,
            // ceil(room ÷ ratio), to the fen.
            let ratio_wide = i128::from(ratio.max(1));
            let covered = (i128::from(room) * i128::from(WHOLE) + ratio_wide - 1) / ratio_wide;
            let covered = i64::try_from(covered).unwrap_or(piece).min(piece);
            basic += room;
            room = 0;
            over += piece - covered;
        }
    }
    let start_ratio = ratio_at(start, &terms.bands);

    // Large-amount supplement.
    let large_applies = person.scheme == Scheme::Employee && care != Care::Outpatient;
    let mut large = 0i64;
    let mut large_limit = None;
    if let (true, Some(supplement)) = (large_applies, &scheme.large_amount) {
        let left = (fen(supplement.cap) - fen(acc.large_amount_paid)).max(0);
        large_limit = Some(left);
        large = share(over, supplement.ratio.scaled()).min(left);
    }

    // Critical-illness insurance.
    let critical_applies = person.scheme == Scheme::Resident && care != Care::Outpatient;
    let mut critical = 0i64;
    let mut critical_base = 0i64;
    let mut critical_limit = None;
    if let (true, Some(ci)) = (critical_applies, &scheme.critical_illness) {
        critical_base = scope - basic;
        let from = fen(acc.critical_base);
        let to = from
            .checked_add(critical_base)
            .ok_or(SettleError::Overflow)?;
        let mut bands: Vec<(Option<i64>, i64)> = vec![(Some(fen(ci.deductible)), 0)];
        bands.extend(ci.bands.iter().map(|b| (b.upto.map(fen), b.ratio.scaled())));
        let mut left = ci.cap.map(|cap| (fen(cap) - fen(acc.critical_paid)).max(0));
        critical_limit = left;
        for (piece, ratio) in pieces(from, to, &bands) {
            let mut pays = share(piece, ratio);
            if let Some(room) = left.as_mut() {
                pays = pays.min(*room);
                *room -= pays;
            }
            critical += pays;
        }
    }

    // Civil-servant subsidy.
    let mut civil = 0i64;
    if let (true, Some(subsidy)) = (person.civil_servant, &scheme.civil_servant) {
        let copay = (scope - applied - basic - large).max(0);
        civil = share(copay, subsidy.ratio.scaled());
    }

    let funds = basic + large + critical + civil;
    let person_part = fen(total) - funds;
    let opening = if person.scheme == Scheme::Employee {
        person.account_balance
    } else {
        Money::ZERO
    };
    let available = fen(acc.balance(opening));
    let account = if visit.use_account && person.scheme == Scheme::Employee {
        person_part.min(available)
    } else {
        0
    };

    // Payer rows.
    let basic_line = match person.scheme {
        Scheme::Employee => ("310100", "职工基本医疗保险统筹基金"),
        Scheme::Resident => ("390100", "城乡居民基本医疗保险基金"),
    };
    let mut lines = vec![FundLine {
        fund_pay_type: basic_line.0,
        name: basic_line.1,
        inscp_scp_amt: fees.inscp_scp_amt,
        limit: Some(money(limit)?),
        paid: money(basic)?,
        process: format!(
            "起付线{}，本次{}；{}{}；年度限额{}",
            terms.deductible,
            money(applied)?,
            inputs.level.name_zh(),
            percent(start_ratio),
            terms.cap
        ),
    }];
    if large > 0 {
        lines.push(FundLine {
            fund_pay_type: "330100",
            name: "职工大额医疗费用补助基金",
            inscp_scp_amt: money(over)?,
            limit: large_limit.map(money).transpose()?,
            paid: money(large)?,
            process: format!("超统筹限额{}", money(over)?),
        });
    }
    if critical > 0 {
        lines.push(FundLine {
            fund_pay_type: "390200",
            name: "城乡居民大病医疗保险资金",
            inscp_scp_amt: money(critical_base)?,
            limit: critical_limit.map(money).transpose()?,
            paid: money(critical)?,
            process: format!(
                "大病保险合规累计{}",
                money(fen(acc.critical_base) + critical_base)?
            ),
        });
    }
    if civil > 0 {
        lines.push(FundLine {
            fund_pay_type: "320100",
            name: "公务员医疗补助资金",
            inscp_scp_amt: fees.inscp_scp_amt,
            limit: None,
            paid: money(civil)?,
            process: String::new(),
        });
    }
    if account > 0 {
        lines.push(FundLine {
            fund_pay_type: "310200",
            name: "职工基本医疗保险个人账户",
            inscp_scp_amt: Money::ZERO,
            limit: Some(money(available)?),
            paid: money(account)?,
            process: String::new(),
        });
    }

    let delta = Delta {
        year,
        care,
        deductible: money(applied)?,
        inscope: fees.inscp_scp_amt,
        fund: money(basic)?,
        admission: care == Care::Inpatient,
        large_amount: money(large)?,
        critical_base: money(critical_base)?,
        critical: money(critical)?,
        civil_servant: money(civil)?,
        account: money(account)?,
    };
    let mut after = acc;
    after.apply(&delta).ok_or(SettleError::Overflow)?;
    let split = Split {
        insutype: person.insutype.clone(),
        med_type: visit.med_type.clone(),
        clr_type: inputs.clr_type.clone(),
        medfee_sumamt: total,
        fulamt_ownpay_amt: fees.fulamt_ownpay_amt,
        overlmt_selfpay: fees.overlmt_selfpay,
        preselfpay_amt: fees.preselfpay_amt,
        inscp_scp_amt: fees.inscp_scp_amt,
        act_pay_dedc: money(applied)?,
        hifp_pay: money(basic)?,
        pool_prop_selfpay: Ratio::from_scaled(WHOLE - start_ratio).unwrap_or_default(),
        cvlserv_pay: money(civil)?,
        hifes_pay: Money::ZERO,
        hifmi_pay: money(critical)?,
        hifob_pay: money(large)?,
        maf_pay: Money::ZERO,
        oth_pay: Money::ZERO,
        fund_pay_sumamt: money(funds)?,
        psn_part_amt: money(person_part)?,
        acct_pay: money(account)?,
        psn_cash_pay: money(person_part - account)?,
        hosp_part_amt: Money::ZERO,
        balc: money(available - account)?,
        lines,
    };
    Ok(Settlement {
        split,
        after,
        delta,
    })
}

// ---------------------------------------------------------------------------
// The files: raw shapes and their validation
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    region: String,
    name: String,
    filing: RawFiling,
    pharmacy: RawPharmacy,
    employee: RawEmployee,
    resident: RawResident,
    #[serde(default)]
    city: Vec<RawCity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCity {
    name: String,
    admdvs: Vec<String>,
    employee: RawEmployee,
    resident: RawResident,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiling {
    unfiled_urgent_cut: String,
    unfiled_cut: String,
    source: String,
    confidence: Confidence,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPharmacy {
    level: i64,
    source: String,
    confidence: Confidence,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmployee {
    outpatient: RawBenefit,
    chronic: RawBenefit,
    inpatient: RawBenefit,
    large_amount: Option<RawLargeAmount>,
    civil_servant: Option<RawCivilServant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResident {
    outpatient: RawBenefit,
    chronic: RawBenefit,
    inpatient: RawBenefit,
    critical_illness: Option<RawCritical>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeveled {
    all: Option<String>,
    level1: Option<String>,
    level2: Option<String>,
    level3: Option<String>,
    level3_provincial: Option<String>,
    level3_city: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBenefit {
    deductible: RawLeveled,
    later_deductible: Option<RawLeveled>,
    later_share: Option<String>,
    later_step: Option<String>,
    later_floor: Option<String>,
    ratio: Option<RawLeveled>,
    band: Option<Vec<RawBand>>,
    cap: RawLeveled,
    cap_major: Option<String>,
    #[serde(default)]
    variant: Vec<RawVariant>,
    source: String,
    confidence: Confidence,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBand {
    upto: Option<String>,
    ratio: RawLeveled,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    retired: Option<bool>,
    min_age: Option<u32>,
    deductible: Option<RawLeveled>,
    deductible_less: Option<String>,
    ratio: Option<RawLeveled>,
    ratio_bonus: Option<String>,
    cap: Option<RawLeveled>,
    source: String,
    confidence: Confidence,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLargeAmount {
    ratio: String,
    cap: String,
    source: String,
    confidence: Confidence,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCritical {
    deductible: String,
    ratio: Option<String>,
    band: Option<Vec<RawFlatBand>>,
    cap: Option<String>,
    source: String,
    confidence: Confidence,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlatBand {
    upto: Option<String>,
    ratio: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCivilServant {
    ratio: String,
    source: String,
    confidence: Confidence,
    note: Option<String>,
}

/// Validation context: the file name, for errors.
struct Check<'a> {
    file: &'a str,
}

impl Check<'_> {
    fn fail<T>(&self, key: &str, problem: impl Into<String>) -> Result<T, PolicyError> {
        Err(PolicyError::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
        })
    }

    /// Yuan text, at least zero.
    fn amount(&self, key: &str, text: &str) -> Result<Money, PolicyError> {
        match Money::parse_yuan(text) {
            Ok(m) if m >= Money::ZERO => Ok(m),
            Ok(m) => self.fail(key, format!("{m} is negative")),
            Err(e) => self.fail(key, format!("{text:?} is not a yuan amount: {e}")),
        }
    }

    /// Yuan text, above zero.
    fn cap(&self, key: &str, text: &str) -> Result<Money, PolicyError> {
        let m = self.amount(key, text)?;
        if m == Money::ZERO {
            return self.fail(key, "a cap must be above zero");
        }
        Ok(m)
    }

    /// Ratio text within 0..=1.
    fn ratio(&self, key: &str, text: &str) -> Result<Ratio, PolicyError> {
        match Ratio::parse(text) {
            Ok(r) if (0..=WHOLE).contains(&r.scaled()) => Ok(r),
            Ok(r) => self.fail(key, format!("{r} is outside 0..=1")),
            Err(e) => self.fail(key, format!("{text:?} is not a ratio: {e}")),
        }
    }

    fn provenance(
        &self,
        key: &str,
        source: &str,
        confidence: Confidence,
        note: &Option<String>,
    ) -> Result<Provenance, PolicyError> {
        if source.trim().is_empty() {
            return self.fail(&format!("{key}.source"), "every section names its source");
        }
        Ok(Provenance {
            source: source.to_owned(),
            confidence,
            note: note.clone(),
        })
    }

    fn leveled<T: Copy>(
        &self,
        key: &str,
        raw: &RawLeveled,
        parse: impl Fn(&str, &str) -> Result<T, PolicyError>,
    ) -> Result<ByLevel<T>, PolicyError> {
        let value = |name: &str, text: &Option<String>| -> Result<Option<T>, PolicyError> {
            text.as_deref()
                .map(|t| parse(&format!("{key}.{name}"), t))
                .transpose()
        };
        let all = value("all", &raw.all)?;
        let level3 = value("level3", &raw.level3)?.or(all);
        let pick = |name: &str, own: Option<T>, fallback: Option<T>| {
            match own.or(fallback) {
            Some(v) => Ok(v),
            None => self.fail(
                &format!("{key}.{name}"),
                "missing: give `all`, or every level (level1, level2, and level3 or both level3_provincial and level3_city)",
            ),
        }
        };
        Ok(ByLevel {
            one: pick("level1", value("level1", &raw.level1)?, all)?,
            two: pick("level2", value("level2", &raw.level2)?, all)?,
            three_city: pick(
                "level3_city",
                value("level3_city", &raw.level3_city)?,
                level3,
            )?,
            three_provincial: pick(
                "level3_provincial",
                value("level3_provincial", &raw.level3_provincial)?,
                level3,
            )?,
        })
    }

    fn amounts(&self, key: &str, raw: &RawLeveled) -> Result<ByLevel<Money>, PolicyError> {
        self.leveled(key, raw, |k, t| self.amount(k, t))
    }

    fn caps(&self, key: &str, raw: &RawLeveled) -> Result<ByLevel<Money>, PolicyError> {
        self.leveled(key, raw, |k, t| self.cap(k, t))
    }

    fn ratios(&self, key: &str, raw: &RawLeveled) -> Result<ByLevel<Ratio>, PolicyError> {
        self.leveled(key, raw, |k, t| self.ratio(k, t))
    }

    fn benefit(&self, key: &str, raw: &RawBenefit, care: Care) -> Result<Benefit, PolicyError> {
        let deductible = self.amounts(&format!("{key}.deductible"), &raw.deductible)?;
        let later_given = [
            raw.later_deductible.is_some(),
            raw.later_share.is_some(),
            raw.later_step.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if later_given > 0 && care != Care::Inpatient {
            return self.fail(
                &format!("{key}.later_*"),
                "later-admission rules belong to inpatient care only",
            );
        }
        if later_given > 1 {
            return self.fail(
                &format!("{key}.later_*"),
                "give one of later_deductible, later_share, later_step",
            );
        }
        if raw.later_floor.is_some() && raw.later_step.is_none() {
            return self.fail(&format!("{key}.later_floor"), "goes with later_step");
        }
        let later = if let Some(d) = &raw.later_deductible {
            LaterAdmissions::Fixed(self.amounts(&format!("{key}.later_deductible"), d)?)
        } else if let Some(s) = &raw.later_share {
            LaterAdmissions::Share(self.ratio(&format!("{key}.later_share"), s)?)
        } else if let Some(step) = &raw.later_step {
            let floor = match &raw.later_floor {
                Some(f) => self.amount(&format!("{key}.later_floor"), f)?,
                None => Money::ZERO,
            };
            LaterAdmissions::Step {
                step: self.amount(&format!("{key}.later_step"), step)?,
                floor,
            }
        } else {
            LaterAdmissions::Same
        };
        let bands = match (&raw.ratio, &raw.band) {
            (Some(r), None) => vec![Band {
                upto: None,
                ratio: self.ratios(&format!("{key}.ratio"), r)?,
            }],
            (None, Some(list)) if !list.is_empty() => {
                let mut bands = Vec::new();
                let mut previous = Money::ZERO;
                for (index, band) in list.iter().enumerate() {
                    let band_key = format!("{key}.band[{index}]");
                    let upto = match &band.upto {
                        Some(u) => {
                            let u = self.cap(&format!("{band_key}.upto"), u)?;
                            if u <= previous {
                                return self.fail(&format!("{band_key}.upto"), "bands must rise");
                            }
                            previous = u;
                            Some(u)
                        }
                        None if index + 1 < list.len() => {
                            return self.fail(
                                &format!("{band_key}.upto"),
                                "only the last band may be open-ended",
                            );
                        }
                        None => None,
                    };
                    bands.push(Band {
                        upto,
                        ratio: self.ratios(&format!("{band_key}.ratio"), &band.ratio)?,
                    });
                }
                bands
            }
            _ => return self.fail(key, "give either `ratio` or one or more `[[band]]`"),
        };
        let cap = self.caps(&format!("{key}.cap"), &raw.cap)?;
        let cap_major = match &raw.cap_major {
            Some(_) if care != Care::Chronic => {
                return self.fail(&format!("{key}.cap_major"), "belongs to chronic care only")
            }
            Some(c) => Some(self.cap(&format!("{key}.cap_major"), c)?),
            None => None,
        };
        let mut variants = Vec::new();
        for (index, v) in raw.variant.iter().enumerate() {
            let vkey = format!("{key}.variant[{index}]");
            if v.retired.is_none() && v.min_age.is_none() {
                return self.fail(&vkey, "a variant needs a condition (retired, min_age)");
            }
            if v.ratio.is_some() && bands.len() > 1 {
                return self.fail(
                    &format!("{vkey}.ratio"),
                    "a ratio replaces a single-band benefit's only; use ratio_bonus",
                );
            }
            variants.push(Variant {
                retired: v.retired,
                min_age: v.min_age,
                deductible: v
                    .deductible
                    .as_ref()
                    .map(|d| self.amounts(&format!("{vkey}.deductible"), d))
                    .transpose()?,
                deductible_less: v
                    .deductible_less
                    .as_deref()
                    .map(|d| self.amount(&format!("{vkey}.deductible_less"), d))
                    .transpose()?,
                ratio: v
                    .ratio
                    .as_ref()
                    .map(|r| self.ratios(&format!("{vkey}.ratio"), r))
                    .transpose()?,
                ratio_bonus: v
                    .ratio_bonus
                    .as_deref()
                    .map(|r| self.ratio(&format!("{vkey}.ratio_bonus"), r))
                    .transpose()?,
                cap: v
                    .cap
                    .as_ref()
                    .map(|c| self.caps(&format!("{vkey}.cap"), c))
                    .transpose()?,
                provenance: self.provenance(&vkey, &v.source, v.confidence, &v.note)?,
            });
        }
        Ok(Benefit {
            deductible,
            later,
            bands,
            cap,
            cap_major,
            variants,
            provenance: self.provenance(key, &raw.source, raw.confidence, &raw.note)?,
        })
    }

    fn employee(&self, key: &str, raw: &RawEmployee) -> Result<SchemePolicy, PolicyError> {
        let large_amount = match &raw.large_amount {
            Some(l) => {
                let k = format!("{key}.large_amount");
                Some(LargeAmount {
                    ratio: self.ratio(&format!("{k}.ratio"), &l.ratio)?,
                    cap: self.cap(&format!("{k}.cap"), &l.cap)?,
                    provenance: self.provenance(&k, &l.source, l.confidence, &l.note)?,
                })
            }
            None => None,
        };
        let civil_servant = match &raw.civil_servant {
            Some(c) => {
                let k = format!("{key}.civil_servant");
                Some(CivilServant {
                    ratio: self.ratio(&format!("{k}.ratio"), &c.ratio)?,
                    provenance: self.provenance(&k, &c.source, c.confidence, &c.note)?,
                })
            }
            None => None,
        };
        Ok(SchemePolicy {
            outpatient: self.benefit(
                &format!("{key}.outpatient"),
                &raw.outpatient,
                Care::Outpatient,
            )?,
            chronic: self.benefit(&format!("{key}.chronic"), &raw.chronic, Care::Chronic)?,
            inpatient: self.benefit(
                &format!("{key}.inpatient"),
                &raw.inpatient,
                Care::Inpatient,
            )?,
            large_amount,
            critical_illness: None,
            civil_servant,
        })
    }

    fn resident(&self, key: &str, raw: &RawResident) -> Result<SchemePolicy, PolicyError> {
        let critical_illness = match &raw.critical_illness {
            Some(c) => {
                let k = format!("{key}.critical_illness");
                let bands = match (&c.ratio, &c.band) {
                    (Some(r), None) => vec![FlatBand {
                        upto: None,
                        ratio: self.ratio(&format!("{k}.ratio"), r)?,
                    }],
                    (None, Some(list)) if !list.is_empty() => {
                        let deductible = self.amount(&format!("{k}.deductible"), &c.deductible)?;
                        let mut previous = deductible;
                        let mut bands = Vec::new();
                        for (index, band) in list.iter().enumerate() {
                            let band_key = format!("{k}.band[{index}]");
                            let upto = match &band.upto {
                                Some(u) => {
                                    let u = self.cap(&format!("{band_key}.upto"), u)?;
                                    if u <= previous {
                                        return self.fail(
                                            &format!("{band_key}.upto"),
                                            "bands must rise, from above the deductible",
                                        );
                                    }
                                    previous = u;
                                    Some(u)
                                }
                                None if index + 1 < list.len() => {
                                    return self.fail(
                                        &format!("{band_key}.upto"),
                                        "only the last band may be open-ended",
                                    );
                                }
                                None => None,
                            };
                            bands.push(FlatBand {
                                upto,
                                ratio: self.ratio(&format!("{band_key}.ratio"), &band.ratio)?,
                            });
                        }
                        bands
                    }
                    _ => return self.fail(&k, "give either `ratio` or one or more `[[band]]`"),
                };
                Some(CriticalIllness {
                    deductible: self.amount(&format!("{k}.deductible"), &c.deductible)?,
                    bands,
                    cap: c
                        .cap
                        .as_deref()
                        .map(|cap| self.cap(&format!("{k}.cap"), cap))
                        .transpose()?,
                    provenance: self.provenance(&k, &c.source, c.confidence, &c.note)?,
                })
            }
            None => None,
        };
        Ok(SchemePolicy {
            outpatient: self.benefit(
                &format!("{key}.outpatient"),
                &raw.outpatient,
                Care::Outpatient,
            )?,
            chronic: self.benefit(&format!("{key}.chronic"), &raw.chronic, Care::Chronic)?,
            inpatient: self.benefit(
                &format!("{key}.inpatient"),
                &raw.inpatient,
                Care::Inpatient,
            )?,
            large_amount: None,
            critical_illness,
            civil_servant: None,
        })
    }
}

fn parse_region(file: &str, text: &str, province: Province) -> Result<RegionPolicy, PolicyError> {
    let raw: RawRegion = toml::from_str(text).map_err(|e| PolicyError::Syntax {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    let check = Check { file };
    match Admdvs::parse(&raw.region) {
        Ok(code) if code == province.admdvs() => {}
        _ => {
            return check.fail(
                "region",
                format!(
                    "{:?} is not {} ({})",
                    raw.region,
                    province.admdvs(),
                    province.name_zh()
                ),
            )
        }
    }
    let filing = FilingCuts {
        unfiled_urgent: check.ratio("filing.unfiled_urgent_cut", &raw.filing.unfiled_urgent_cut)?,
        unfiled: check.ratio("filing.unfiled_cut", &raw.filing.unfiled_cut)?,
        provenance: check.provenance(
            "filing",
            &raw.filing.source,
            raw.filing.confidence,
            &raw.filing.note,
        )?,
    };
    let Some(pharmacy_level) = Level::from_number(raw.pharmacy.level) else {
        return check.fail("pharmacy.level", "1, 2 or 3");
    };
    let pharmacy_provenance = check.provenance(
        "pharmacy",
        &raw.pharmacy.source,
        raw.pharmacy.confidence,
        &raw.pharmacy.note,
    )?;
    let default = LocalPolicy {
        employee: check.employee("employee", &raw.employee)?,
        resident: check.resident("resident", &raw.resident)?,
    };
    let mut cities = Vec::new();
    for (index, city) in raw.city.iter().enumerate() {
        let key = format!("city[{index}]");
        if city.admdvs.is_empty() {
            return check.fail(&format!("{key}.admdvs"), "name at least one division");
        }
        let mut codes = Vec::new();
        for (i, code) in city.admdvs.iter().enumerate() {
            match Admdvs::parse(code) {
                Ok(c) if c.within(province.admdvs()) && c.specificity() >= 4 => codes.push(c),
                _ => {
                    return check.fail(
                        &format!("{key}.admdvs[{i}]"),
                        format!("{code:?} is not a city or county of {}", province.name_zh()),
                    )
                }
            }
        }
        cities.push(CityPolicy {
            name: city.name.clone(),
            admdvs: codes,
            policy: LocalPolicy {
                employee: check.employee(&format!("{key}.employee"), &city.employee)?,
                resident: check.resident(&format!("{key}.resident"), &city.resident)?,
            },
        });
    }
    Ok(RegionPolicy {
        province,
        name: raw.name,
        filing,
        pharmacy_level,
        pharmacy_provenance,
        default,
        cities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_follow_the_bands() {
        let bands = [(Some(100), 9000), (Some(300), 8000), (None, 7000)];
        assert_eq!(
            pieces(50, 400, &bands),
            vec![(50, 9000), (200, 8000), (100, 7000)]
        );
        assert_eq!(pieces(150, 160, &bands), vec![(10, 8000)]);
        assert_eq!(pieces(10, 10, &bands), Vec::<(i64, i64)>::new());
        let bounded = [(Some(100), 5000)];
        assert_eq!(pieces(50, 150, &bounded), vec![(50, 5000), (50, 0)]);
        assert_eq!(ratio_at(100, &bands), 8000);
        assert_eq!(ratio_at(1000, &bounded), 0);
    }

    #[test]
    fn shares_round_half_up() {
        assert_eq!(share(1, 5000), 1); // 0.5 fen → 1
        assert_eq!(share(1, 4999), 0);
        assert_eq!(share(333, 8500), 283); // 283.05
        assert_eq!(share(12345, 10000), 12345);
        assert_eq!(share(12345, 0), 0);
    }

    #[test]
    fn fees_from_a_request() {
        let money = |t: &str| Money::parse_yuan(t).ok();
        let mut request = SettleRequest {
            medfee_sumamt: money("100.20"),
            ..SettleRequest::default()
        };
        let whole = Fees::from_request(&request);
        assert_eq!(whole.map(|f| f.inscp_scp_amt), money("100.20"));
        request.preselfpay_amt = money("5.04");
        assert_eq!(Fees::from_request(&request), None);
        request.fulamt_ownpay_amt = money("0");
        request.overlmt_selfpay = money("0");
        request.inscp_scp_amt = money("95.16");
        let parts = Fees::from_request(&request);
        assert_eq!(parts.and_then(|f| f.total()), money("100.20"));
    }

    #[test]
    fn the_shipped_files_load() {
        let policies = Policies::builtin();
        assert!(policies.is_ok(), "{:?}", policies.err());
    }

    #[test]
    fn errors_name_the_key() {
        let broken = BUILTIN_BEIJING.replacen("level2 = \"0.70\"", "level2 = \"1.70\"", 1);
        let err = Policies::parse(&broken, BUILTIN_TIANJIN, BUILTIN_HEBEI).err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("employee.outpatient.ratio.level2"), "{text}");
        assert!(text.contains("outside 0..=1"), "{text}");
    }
}
