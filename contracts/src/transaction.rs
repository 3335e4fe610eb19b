//! The table of transactions: each national `infno`, what it carries in and
//! out, and how the gateway must treat it. One table, read by every part of
//! the gateway (dialects, validation, journal, routing, timeouts).

use crate::model::{
    clearing::*, fee::*, filing::*, person::*, reconciliation::*, reversal::*, settlement::*,
    visit::*,
};
use crate::record::{Record, RecordType};
use std::fmt;

/// What a transaction does to money and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Reads only, or computes without committing (lookups, pre-settlements, checks).
    Query,
    /// Creates or changes clinical state (registration, uploads, admission, filings).
    Record,
    /// Commits a settlement and returns its `setl_id`.
    Settle,
    /// Cancels a settlement by its `setl_id`.
    CancelSettlement,
    /// Reverses an earlier call by its msgid (2601).
    Reverse,
    /// Clearing between platforms (3260–3262).
    Clearing,
}

/// Who may send a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// A hospital or pharmacy (or a platform acting for one).
    Institution,
    /// A regional platform only.
    Platform,
}

/// How long a platform may take: a lookup is short, an inpatient settlement long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pace {
    /// Lookups, registrations, cancels of small things.
    Short,
    /// Uploads and outpatient or pharmacy (pre-)settlements.
    Medium,
    /// Inpatient (pre-)settlements and clearing.
    Long,
}

/// How the gateway treats one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    /// What it does.
    pub effect: Effect,
    /// Journalled before forwarding and before answering (settlement-affecting, or creates ids).
    pub journalled: bool,
    /// May be undone by a 2601 reversal naming its msgid.
    pub reversible: bool,
    /// Who may send it.
    pub sender: Sender,
    /// Its timeout class.
    pub pace: Pace,
}

macro_rules! transactions {
    (
        $(
            $(#[doc = $doc:literal])*
            $variant:ident = $code:literal, $zh:literal, $en:literal,
            $input:ident => $output:ident,
            $effect:ident, journal: $journal:literal, reversible: $reversible:literal, $sender:ident, $pace:ident;
        )*
    ) => {
        /// A national transaction number (交易编号).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Infno {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Infno {
            /// Every transaction, in the order of the table.
            pub const ALL: &'static [Infno] = &[$(Infno::$variant),*];

            /// The four-digit code.
            pub fn code(self) -> &'static str {
                match self { $( Infno::$variant => $code, )* }
            }

            /// From the four-digit code.
            pub fn from_code(code: &str) -> Option<Infno> {
                match code { $( $code => Some(Infno::$variant), )* _ => None }
            }

            /// Chinese name.
            pub fn name_zh(self) -> &'static str {
                match self { $( Infno::$variant => $zh, )* }
            }

            /// English name.
            pub fn name_en(self) -> &'static str {
                match self { $( Infno::$variant => $en, )* }
            }

            /// How the gateway treats it.
            pub fn traits(self) -> Traits {
                match self {
                    $( Infno::$variant => Traits {
                        effect: Effect::$effect,
                        journalled: $journal,
                        reversible: $reversible,
                        sender: Sender::$sender,
                        pace: Pace::$pace,
                    }, )*
                }
            }

            /// The schema of its input.
            pub fn input_schema(self) -> &'static crate::record::Schema {
                match self { $( Infno::$variant => <$input as RecordType>::static_schema(), )* }
            }

            /// The schema of its output.
            pub fn output_schema(self) -> &'static crate::record::Schema {
                match self { $( Infno::$variant => <$output as RecordType>::static_schema(), )* }
            }
        }

        /// The `input` of a request, by transaction.
        // A body is built once per message and moved a handful of times; boxing
        // each variant would cost an allocation for nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum RequestBody {
            $( $(#[doc = $doc])* $variant($input), )*
        }

        impl RequestBody {
            /// An empty body for a transaction, to be filled by a decoder.
            pub fn empty(infno: Infno) -> RequestBody {
                match infno { $( Infno::$variant => RequestBody::$variant(<$input>::default()), )* }
            }
            /// Its transaction.
            pub fn infno(&self) -> Infno {
                match self { $( RequestBody::$variant(_) => Infno::$variant, )* }
            }
            /// The body as a generic record.
            pub fn record(&self) -> &dyn Record {
                match self { $( RequestBody::$variant(r) => r, )* }
            }
            /// The body as a generic record, for writing.
            pub fn record_mut(&mut self) -> &mut dyn Record {
                match self { $( RequestBody::$variant(r) => r, )* }
            }
        }

        /// The `output` of an answer, by transaction.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnswerBody {
            $( $(#[doc = $doc])* $variant($output), )*
        }

        impl AnswerBody {
            /// An empty body for a transaction, to be filled by a decoder.
            pub fn empty(infno: Infno) -> AnswerBody {
                match infno { $( Infno::$variant => AnswerBody::$variant(<$output>::default()), )* }
            }
            /// Its transaction.
            pub fn infno(&self) -> Infno {
                match self { $( AnswerBody::$variant(_) => Infno::$variant, )* }
            }
            /// The body as a generic record.
            pub fn record(&self) -> &dyn Record {
                match self { $( AnswerBody::$variant(r) => r, )* }
            }
            /// The body as a generic record, for writing.
            pub fn record_mut(&mut self) -> &mut dyn Record {
                match self { $( AnswerBody::$variant(r) => r, )* }
            }
        }
    };
}

transactions! {
    /// 1101 person lookup (人员信息获取).
    PersonLookup = "1101", "人员信息获取", "person lookup",
        PersonLookupInput => PersonLookupOutput, Query, journal: false, reversible: false, Institution, Short;
    /// 2201 outpatient registration (门诊挂号).
    OutpatientRegister = "2201", "门诊挂号", "outpatient registration",
        OutpatientRegistrationInput => VisitIdsOutput, Record, journal: true, reversible: false, Institution, Short;
    /// 2202 outpatient registration cancel (门诊挂号撤销).
    OutpatientRegisterCancel = "2202", "门诊挂号撤销", "outpatient registration cancel",
        VisitRefInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2203 outpatient visit upload (门诊就诊信息上传).
    OutpatientVisitUpload = "2203", "门诊就诊信息上传", "outpatient visit upload",
        OutpatientVisitInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2204 outpatient fee detail upload (门诊费用明细信息上传).
    OutpatientFeeUpload = "2204", "门诊费用明细信息上传", "outpatient fee upload",
        FeeUploadInput => FeeUploadOutput, Record, journal: false, reversible: false, Institution, Medium;
    /// 2205 outpatient fee detail cancel (门诊费用明细信息撤销).
    OutpatientFeeCancel = "2205", "门诊费用明细信息撤销", "outpatient fee cancel",
        FeeCancelInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2206 outpatient pre-settlement (门诊预结算).
    OutpatientPreSettle = "2206", "门诊预结算", "outpatient pre-settlement",
        SettleInput => SettlementOutput, Query, journal: false, reversible: false, Institution, Medium;
    /// 2207 outpatient settlement (门诊结算).
    OutpatientSettle = "2207", "门诊结算", "outpatient settlement",
        SettleInput => SettlementOutput, Settle, journal: true, reversible: true, Institution, Medium;
    /// 2208 outpatient settlement cancel (门诊结算撤销).
    OutpatientSettleCancel = "2208", "门诊结算撤销", "outpatient settlement cancel",
        SettlementCancelInput => SettlementOutput, CancelSettlement, journal: true, reversible: true, Institution, Medium;
    /// 2301 inpatient fee detail upload (住院费用明细信息上传).
    InpatientFeeUpload = "2301", "住院费用明细信息上传", "inpatient fee upload",
        FeeUploadInput => FeeUploadOutput, Record, journal: false, reversible: false, Institution, Medium;
    /// 2302 inpatient fee detail cancel (住院费用明细信息撤销).
    InpatientFeeCancel = "2302", "住院费用明细信息撤销", "inpatient fee cancel",
        FeeCancelInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2303 inpatient pre-settlement (住院预结算).
    InpatientPreSettle = "2303", "住院预结算", "inpatient pre-settlement",
        SettleInput => SettlementOutput, Query, journal: false, reversible: false, Institution, Long;
    /// 2304 inpatient settlement (住院结算).
    InpatientSettle = "2304", "住院结算", "inpatient settlement",
        SettleInput => SettlementOutput, Settle, journal: true, reversible: true, Institution, Long;
    /// 2305 inpatient settlement cancel (住院结算撤销).
    InpatientSettleCancel = "2305", "住院结算撤销", "inpatient settlement cancel",
        SettlementCancelInput => SettlementOutput, CancelSettlement, journal: true, reversible: true, Institution, Long;
    /// 2401 admission (入院办理).
    Admission = "2401", "入院办理", "admission",
        AdmissionInput => VisitIdsOutput, Record, journal: true, reversible: true, Institution, Short;
    /// 2402 discharge (出院办理).
    Discharge = "2402", "出院办理", "discharge",
        DischargeInput => Acknowledgement, Record, journal: true, reversible: false, Institution, Short;
    /// 2404 admission cancel (入院办理撤销).
    AdmissionCancel = "2404", "入院办理撤销", "admission cancel",
        VisitRefInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2405 discharge cancel (出院撤销).
    DischargeCancel = "2405", "出院撤销", "discharge cancel",
        VisitRefInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2101 pharmacy pre-settlement (药店预结算).
    PharmacyPreSettle = "2101", "药店预结算", "pharmacy pre-settlement",
        PharmacySettleInput => SettlementOutput, Query, journal: false, reversible: false, Institution, Medium;
    /// 2102 pharmacy settlement (药店结算).
    PharmacySettle = "2102", "药店结算", "pharmacy settlement",
        PharmacySettleInput => SettlementOutput, Settle, journal: true, reversible: true, Institution, Medium;
    /// 2103 pharmacy settlement cancel (药店结算撤销).
    PharmacySettleCancel = "2103", "药店结算撤销", "pharmacy settlement cancel",
        SettlementCancelInput => SettlementOutput, CancelSettlement, journal: true, reversible: true, Institution, Medium;
    /// 2501 referral filing (转院备案).
    ReferralFiling = "2501", "转院备案", "referral filing",
        ReferralFilingInput => FilingOutput, Record, journal: false, reversible: false, Institution, Short;
    /// 2502 referral filing cancel (转院备案撤销).
    ReferralFilingCancel = "2502", "转院备案撤销", "referral filing cancel",
        FilingCancelInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2503 chronic or special-disease filing (人员慢特病备案).
    ChronicFiling = "2503", "人员慢特病备案", "chronic disease filing",
        ChronicFilingInput => FilingOutput, Record, journal: false, reversible: false, Institution, Short;
    /// 2504 chronic or special-disease filing cancel (人员慢特病备案撤销).
    ChronicFilingCancel = "2504", "人员慢特病备案撤销", "chronic disease filing cancel",
        FilingCancelInput => Acknowledgement, Record, journal: false, reversible: false, Institution, Short;
    /// 2601 reversal (冲正交易).
    Reversal = "2601", "冲正交易", "reversal",
        ReversalInput => Acknowledgement, Reverse, journal: true, reversible: false, Institution, Medium;
    /// 3201 totals reconciliation (医药机构费用结算对总账).
    TotalsCheck = "3201", "医药机构费用结算对总账", "totals reconciliation",
        TotalsCheckInput => TotalsCheckOutput, Query, journal: false, reversible: false, Institution, Long;
    /// 3202 detail reconciliation (医药机构费用结算对明细账).
    DetailCheck = "3202", "医药机构费用结算对明细账", "detail reconciliation",
        DetailCheckInput => DetailCheckOutput, Query, journal: false, reversible: false, Institution, Long;
    /// 3260 clearing detail fetch (清算明细查询).
    ClearingFetch = "3260", "清算明细查询", "clearing detail fetch",
        ClearingQueryInput => ClearingPage, Clearing, journal: false, reversible: false, Platform, Long;
    /// 3261 clearing detail confirm (清算明细确认).
    ClearingConfirm = "3261", "清算明细确认", "clearing detail confirm",
        ClearingVerdictInput => Acknowledgement, Clearing, journal: false, reversible: false, Platform, Long;
    /// 3262 clearing confirmation roll-back (清算明细确认回退).
    ClearingRollback = "3262", "清算明细确认回退", "clearing confirmation roll-back",
        ClearingVerdictInput => Acknowledgement, Clearing, journal: false, reversible: false, Platform, Long;
}

impl fmt::Display for Infno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Infno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_to_itself() {
        for &infno in Infno::ALL {
            assert_eq!(Infno::from_code(infno.code()), Some(infno));
            assert_eq!(RequestBody::empty(infno).infno(), infno);
            assert_eq!(AnswerBody::empty(infno).infno(), infno);
        }
        assert_eq!(Infno::ALL.len(), 31);
    }

    #[test]
    fn reversible_transactions_are_those_2601_names() {
        let reversible: Vec<&str> = Infno::ALL
            .iter()
            .filter(|i| i.traits().reversible)
            .map(|i| i.code())
            .collect();
        assert_eq!(
            reversible,
            ["2207", "2208", "2304", "2305", "2401", "2102", "2103"]
        );
        assert!(Infno::ALL
            .iter()
            .filter(|i| i.traits().reversible)
            .all(|i| i.traits().journalled));
    }
}
