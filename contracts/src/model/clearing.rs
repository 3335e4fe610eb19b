//! Claims exchange between platforms for clearing: fetch (3260), confirm (3261)
//! and roll back (3262) the clearing detail of one's insured treated elsewhere.

use crate::money::Money;
use crate::record::{Region, Secret};
use crate::time::{Date, DateTime};

crate::record! {
    /// 3260 input data: which page of which period.
    pub struct ClearingQuery {
        /// Year of treatment (待遇年度); with `trt_month`, a month.
        trt_year: opt i64,
        /// Month of treatment.
        trt_month: opt i64,
        /// One clearing day instead of a month (this gateway's daily clearing).
        clr_date: opt Date,
        /// The treatment region to list (omitted: all).
        mdtrtarea_admvs: opt Region,
        /// Page, from 1.
        page_num: req i64,
        /// Rows per page, at most 100.
        page_size: req i64,
    }
}

crate::record! {
    /// 3260 input.
    pub struct ClearingQueryInput {
        /// The query.
        data: rec ClearingQuery,
    }
}

crate::record! {
    /// One settlement to clear (清算明细).
    pub struct ClearingRow {
        /// Certificate number: personal data.
        certno: opt Secret,
        /// Visit id.
        mdtrt_id: req String,
        /// Settlement id (结算流水号).
        setl_id: req String,
        /// Treatment region.
        mdtrtarea_admvs: opt Region,
        /// Settlement time (结算时间).
        mdtrt_setl_time: req DateTime,
        /// Total medical fees.
        medfee_sumamt: req Money,
        /// What the insured region pays (经办机构支付总额): funds and personal account.
        optins_pay_sumamt: req Money,
        /// Confirmation: 0 open, 1 confirmed, 2 disputed.
        cnfm_flag: opt String,
    }
}

crate::record! {
    /// 3260 output.
    pub struct ClearingPage {
        /// Rows in the whole period.
        recordcounts: opt i64,
        /// This page.
        data: list ClearingRow,
    }
}

crate::record! {
    /// A verdict on one clearing row (3261 confirm or dispute, 3262 roll back).
    pub struct ClearingVerdict {
        /// Settlement id.
        setl_id: req String,
        /// Visit id.
        mdtrt_id: opt String,
        /// 1 confirm, 2 dispute (3261); ignored by 3262.
        cnfm_flag: req String,
        /// Reason, for a dispute.
        memo: opt String,
    }
}

crate::record! {
    /// 3261, 3262 input.
    pub struct ClearingVerdictInput {
        /// At most 100 verdicts.
        data: list ClearingVerdict,
    }
}
