//! Fee detail upload and its cancel: 2204/2205 (outpatient), 2301/2302 (inpatient).

use crate::money::{Money, Price, Quantity, Ratio};
use crate::record::Secret;
use crate::time::DateTime;

crate::record! {
    /// One fee line (费用明细).
    pub struct FeeDetail {
        /// Line serial number (费用明细流水号), unique within the visit.
        feedetl_sn: req String,
        /// Visit id: required in 2204 and 2301; a pharmacy purchase has none.
        mdtrt_id: opt String,
        /// Person number.
        psn_no: req String,
        /// Charge batch number (收费批次号).
        chrg_bchno: req String,
        /// Disease code (病种编码).
        dise_codg: opt String,
        /// Prescription number (处方号).
        rxno: opt String,
        /// Circulated-prescription flag (外购处方标志).
        rx_circ_flag: opt String,
        /// When the fee arose (费用发生时间).
        fee_ocur_time: req DateTime,
        /// National catalogue code (医疗目录编码).
        med_list_codg: req String,
        /// The hospital's own catalogue code (医药机构目录编码).
        medins_list_codg: req String,
        /// Line total (明细项目费用总额) = quantity × unit price, to the fen.
        det_item_fee_sumamt: req Money,
        /// Quantity (数量); negative for a reversed line.
        cnt: req Quantity,
        /// Unit price (单价).
        pric: req Price,
        /// Single dose (单次剂量描述).
        sin_dos_dscr: opt String,
        /// Frequency (使用频次描述).
        used_frqu_dscr: opt String,
        /// Days (周期天数).
        prd_days: opt Quantity,
        /// Route (用药途径描述).
        medc_way_dscr: opt String,
        /// Billing department code (开单科室编码).
        bilg_dept_codg: opt String,
        /// Billing department name (开单科室名称).
        bilg_dept_name: opt String,
        /// Billing doctor code (开单医生编码).
        bilg_dr_codg: opt String,
        /// Billing doctor name (开单医师姓名).
        bilg_dr_name: opt Secret,
        /// Hospital-approved flag (医院审批标志).
        hosp_appr_flag: opt String,
    }
}

crate::record! {
    /// 2204, 2301 input; also the drug lines of a pharmacy settlement.
    pub struct FeeUploadInput {
        /// The lines.
        feedetail: list FeeDetail,
    }
}

crate::record! {
    /// The platform's classification of one fee line (2204/2301 output result).
    pub struct FeeResult {
        /// Line serial number.
        feedetl_sn: req String,
        /// Line total.
        det_item_fee_sumamt: opt Money,
        /// Quantity.
        cnt: opt Quantity,
        /// Unit price.
        pric: opt Price,
        /// Price ceiling (定价上限金额).
        pric_uplmt_amt: opt Price,
        /// Self-pay ratio (自付比例).
        selfpay_prop: opt Ratio,
        /// Wholly self-paid (全自费金额).
        fulamt_ownpay_amt: opt Money,
        /// Over the price limit (超限价金额).
        overlmt_amt: opt Money,
        /// Pre-self-paid (先行自付金额).
        preselfpay_amt: opt Money,
        /// In scope (符合政策范围金额).
        inscp_scp_amt: opt Money,
        /// Charge item level (收费项目等级).
        chrgitm_lv: opt String,
        /// Charge item type (医疗收费项目类别).
        med_chrgitm_type: opt String,
        /// Essential-drug flag (基本药物标志).
        bas_medn_flag: opt String,
        /// Negotiated-drug flag (医保谈判药品标志).
        hi_nego_drug_flag: opt String,
        /// Children's drug flag (儿童用药标志).
        chld_medc_flag: opt String,
        /// Special-item flag (目录特项标志).
        list_sp_item_flag: opt String,
        /// Restricted-use flag (限制使用标志).
        lmt_used_flag: opt String,
        /// Direct-reimbursement flag (直报标志).
        drt_reim_flag: opt String,
        /// Note (备注).
        memo: opt String,
    }
}

crate::record! {
    /// 2204, 2301 output.
    pub struct FeeUploadOutput {
        /// One classification per uploaded line.
        result: list FeeResult,
    }
}

crate::record! {
    /// Names fee lines to withdraw (2205, 2302 input data).
    pub struct FeeCancel {
        /// Line serial number; `0000` withdraws every line of the visit.
        feedetl_sn: opt String,
        /// Visit id.
        mdtrt_id: req String,
        /// Person number.
        psn_no: req String,
        /// Charge batch number.
        chrg_bchno: opt String,
    }
}

crate::record! {
    /// 2205, 2302 input.
    pub struct FeeCancelInput {
        /// What to withdraw.
        data: rec FeeCancel,
    }
}
