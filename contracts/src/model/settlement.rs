//! Pre-settlement, settlement and their cancels: outpatient (2206/2207/2208),
//! inpatient (2303/2304/2305), pharmacy (2101/2102/2103).

use crate::codes::{ClrType, Insutype, MdtrtCertType, MedType, PsnCertType};
use crate::model::fee::FeeDetail;
use crate::money::{Age, Money, Ratio};
use crate::record::Secret;
use crate::time::{Date, DateTime};

crate::record! {
    /// A (pre-)settlement request's data (2206/2207, 2303/2304, 2101/2102).
    pub struct SettleRequest {
        /// Person number.
        psn_no: req String,
        /// Credential type.
        mdtrt_cert_type: req MdtrtCertType,
        /// Credential number: personal data.
        mdtrt_cert_no: req Secret,
        /// Kind of care (outpatient and pharmacy; inpatient stays carry it from admission).
        med_type: opt MedType,
        /// Total medical fees (医疗费总额).
        medfee_sumamt: req Money,
        /// Settlement way (个人结算方式): 01 by item, 02 by fixed amount.
        psn_setlway: req String,
        /// Visit id (pharmacy purchases may leave it empty).
        mdtrt_id: opt String,
        /// Charge batch number (outpatient, pharmacy).
        chrg_bchno: opt String,
        /// Insurance type.
        insutype: opt Insutype,
        /// Whether to use the personal account (个人账户使用标志): 0 or 1.
        acct_used_flag: req String,
        /// Mid-stay settlement flag (中途结算标志), inpatient.
        mid_setl_flag: opt String,
        /// Invoice number (发票号).
        invono: opt String,
        /// Wholly self-paid (全自费金额).
        fulamt_ownpay_amt: opt Money,
        /// Over the price limit (超限价金额).
        overlmt_selfpay: opt Money,
        /// Pre-self-paid (先行自付金额).
        preselfpay_amt: opt Money,
        /// In scope (符合政策范围金额).
        inscp_scp_amt: opt Money,
    }
}

crate::record! {
    /// 2206/2207, 2303/2304 input.
    pub struct SettleInput {
        /// The request.
        data: rec SettleRequest,
    }
}

crate::record! {
    /// 2101/2102 input: a pharmacy purchase with its drug lines.
    pub struct PharmacySettleInput {
        /// The request.
        data: rec SettleRequest,
        /// The drugs bought.
        feedetail: list FeeDetail,
    }
}

crate::record! {
    /// Names a settlement to cancel (2208, 2305, 2103 input data).
    pub struct SettlementRef {
        /// Settlement id (结算ID).
        setl_id: req String,
        /// Visit id.
        mdtrt_id: req String,
        /// Person number.
        psn_no: req String,
    }
}

crate::record! {
    /// 2208, 2305, 2103 input.
    pub struct SettlementCancelInput {
        /// The settlement.
        data: rec SettlementRef,
    }
}

crate::record! {
    /// The split of a settlement (结算信息). Negative in every part for a cancel.
    pub struct SetlInfo {
        /// Visit id.
        mdtrt_id: opt String,
        /// Settlement id (结算ID); absent on a pre-settlement.
        setl_id: opt String,
        /// Person number.
        psn_no: opt String,
        /// Name: personal data.
        psn_name: opt Secret,
        /// Certificate type.
        psn_cert_type: opt PsnCertType,
        /// Certificate number: personal data.
        certno: opt Secret,
        /// Sex.
        gend: opt String,
        /// Ethnicity.
        naty: opt String,
        /// Birth date.
        brdy: opt Date,
        /// Age.
        age: opt Age,
        /// Insurance type.
        insutype: opt Insutype,
        /// Person type (人员类别).
        psn_type: opt String,
        /// Civil-servant flag.
        cvlserv_flag: opt String,
        /// Settlement time (结算时间).
        setl_time: opt DateTime,
        /// Credential type.
        mdtrt_cert_type: opt MdtrtCertType,
        /// Kind of care.
        med_type: opt MedType,
        /// Total medical fees (医疗费总额).
        medfee_sumamt: opt Money,
        /// Wholly self-paid (全自费金额).
        fulamt_ownpay_amt: opt Money,
        /// Over the price limit (超限价自费费用).
        overlmt_selfpay: opt Money,
        /// Pre-self-paid (先行自付金额).
        preselfpay_amt: opt Money,
        /// In scope (符合政策范围金额).
        inscp_scp_amt: opt Money,
        /// Deductible applied (实际支付起付线).
        act_pay_dedc: opt Money,
        /// Basic pooled fund (基本医疗保险统筹基金支出).
        hifp_pay: opt Money,
        /// Pooled-fund self-pay ratio (基本医疗保险统筹基金支付比例).
        pool_prop_selfpay: opt Ratio,
        /// Civil-servant subsidy (公务员医疗补助资金支出).
        cvlserv_pay: opt Money,
        /// Employer supplement (企业补充医疗保险基金支出).
        hifes_pay: opt Money,
        /// Critical-illness insurance (居民大病保险资金支出).
        hifmi_pay: opt Money,
        /// Employee large-amount supplement (职工大额医疗费用补助基金支出).
        hifob_pay: opt Money,
        /// Medical aid (医疗救助基金支出).
        maf_pay: opt Money,
        /// Other funds (其他支出).
        oth_pay: opt Money,
        /// Hospital-day or other special fund (where a platform sends it; counted in the fund total).
        hifdm_pay: opt Money,
        /// All funds (基金支付总额).
        fund_pay_sumamt: opt Money,
        /// The person's part (个人负担总金额) = personal account + cash.
        psn_part_amt: opt Money,
        /// Personal account (个人账户支出).
        acct_pay: opt Money,
        /// Cash (个人现金支出).
        psn_cash_pay: opt Money,
        /// Hospital-borne (医院负担金额).
        hosp_part_amt: opt Money,
        /// Account balance after (余额).
        balc: opt Money,
        /// Family mutual-aid account (个人账户共济支付金额).
        acct_mulaid_pay: opt Money,
        /// The institution's settlement id (医药机构结算ID).
        medins_setl_id: opt String,
        /// Clearing agency (清算经办机构).
        clr_optins: opt String,
        /// Clearing way (清算方式).
        clr_way: opt String,
        /// Clearing type (清算类别).
        clr_type: opt ClrType,
    }
}

crate::record! {
    /// One payer of a settlement (结算基金分项). Lists funds, and also the
    /// personal account and the hospital-borne part, so it does not sum to the fund total.
    pub struct SetlDetail {
        /// Payer type (基金支付类型), e.g. 310100 pooled fund, 310200 personal account.
        fund_pay_type: req String,
        /// In scope (符合政策范围金额).
        inscp_scp_amt: opt Money,
        /// Payable within limits (本次可支付限额金额).
        crt_payb_lmt_amt: opt Money,
        /// Paid (基金支付金额).
        fund_payamt: opt Money,
        /// Payer name (基金支付类型名称).
        fund_pay_type_name: opt String,
        /// How it was computed (结算过程信息).
        setl_proc_info: opt String,
    }
}

crate::record! {
    /// The answer of a (pre-)settlement or its cancel.
    pub struct SettlementOutput {
        /// The split.
        setlinfo: rec SetlInfo,
        /// The payers.
        setldetail: list SetlDetail,
    }
}
