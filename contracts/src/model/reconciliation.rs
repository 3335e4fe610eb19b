//! Daily reconciliation between an institution and a platform: totals (3201)
//! and details (3202).

use crate::codes::{ClrType, Insutype};
use crate::money::Money;
use crate::time::Date;

crate::record! {
    /// 3201 input data: an institution's totals for a period (对总账).
    pub struct TotalsCheck {
        /// Insurance type.
        insutype: req Insutype,
        /// Clearing type.
        clr_type: req ClrType,
        /// Settling agency (结算经办机构).
        setl_optins: req String,
        /// First day.
        stmt_begndate: req Date,
        /// Last day.
        stmt_enddate: req Date,
        /// Total medical fees.
        medfee_sumamt: req Money,
        /// Total fund payments.
        fund_pay_sumamt: req Money,
        /// Total personal-account payments.
        acct_pay: req Money,
        /// Number of settlements (定点医药机构结算笔数).
        fixmedins_setl_cnt: req i64,
        /// Refund flag (退费结算标志).
        refd_setl_flag: opt String,
    }
}

crate::record! {
    /// 3201 input.
    pub struct TotalsCheckInput {
        /// The totals.
        data: rec TotalsCheck,
    }
}

crate::record! {
    /// The platform's verdict on a totals check.
    pub struct TotalsResult {
        /// Settling agency.
        setl_optins: opt String,
        /// Result (对账结果): 0 balanced, 1 not balanced.
        stmt_rslt: req String,
        /// Explanation (对账结果说明).
        stmt_rslt_dscr: opt String,
    }
}

crate::record! {
    /// 3201 output.
    pub struct TotalsCheckOutput {
        /// The verdict.
        stmtinfo: rec TotalsResult,
    }
}

crate::record! {
    /// 3202 input data: the institution's detail check (对明细账).
    pub struct DetailCheck {
        /// Settling agency.
        setl_optins: req String,
        /// The uploaded detail file's query number (文件查询号), from 9101.
        file_qury_no: opt String,
        /// First day.
        stmt_begndate: req Date,
        /// Last day.
        stmt_enddate: req Date,
        /// Total medical fees.
        medfee_sumamt: req Money,
        /// Total fund payments.
        fund_pay_sumamt: req Money,
        /// Total cash payments.
        cash_payamt: req Money,
        /// Number of settlements.
        fixmedins_setl_cnt: req i64,
    }
}

crate::record! {
    /// 3202 input.
    pub struct DetailCheckInput {
        /// The check.
        data: rec DetailCheck,
    }
}

crate::record! {
    /// One difference found by a detail check.
    pub struct DetailDifference {
        /// Person number.
        psn_no: opt String,
        /// Visit id.
        mdtrt_id: opt String,
        /// Settlement id.
        setl_id: opt String,
        /// Message id of the settlement.
        msgid: opt String,
        /// Result: 0 agrees, 1 platform only, 2 institution only, 3 amounts differ.
        stmt_rslt: req String,
        /// Refund flag.
        refd_setl_flag: opt String,
        /// Note.
        memo: opt String,
        /// Total medical fees.
        medfee_sumamt: opt Money,
        /// Fund payments.
        fund_pay_sumamt: opt Money,
        /// Personal-account payments.
        acct_pay: opt Money,
    }
}

crate::record! {
    /// 3202 output: the differences, inline rather than as a file download.
    pub struct DetailCheckOutput {
        /// The differences.
        fileinfo: list DetailDifference,
    }
}
