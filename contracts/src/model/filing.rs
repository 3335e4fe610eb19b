//! Filings (备案): referral (2501/2502) and chronic or special disease (2503/2504).

use crate::codes::Insutype;
use crate::record::{Region, Secret};
use crate::time::Date;

crate::record! {
    /// 2501 input data: a referral filing (转院备案).
    pub struct ReferralFiling {
        /// Person number.
        psn_no: req String,
        /// Insurance type.
        insutype: req Insutype,
        /// Telephone: personal data.
        tel: opt Secret,
        /// Address: personal data.
        addr: opt Secret,
        /// Insuring agency (参保机构).
        insu_optins: opt String,
        /// Diagnosis code.
        diag_code: req String,
        /// Diagnosis name: personal data.
        diag_name: req Secret,
        /// Condition (疾病病情描述): personal data.
        dise_cond_dscr: opt Secret,
        /// Receiving institution code (转往定点医药机构编号).
        reflin_medins_no: req String,
        /// Receiving institution name.
        reflin_medins_name: opt String,
        /// Treatment region (就医地行政区划).
        mdtrtarea_admdvs: req Region,
        /// Hospital agrees to the referral (医院同意转院标志).
        hosp_agre_refl_flag: opt String,
        /// Referral type (转院类型).
        refl_type: opt String,
        /// Referral date (转院日期).
        refl_date: opt Date,
        /// Reason (转院原因): personal data.
        refl_rea: opt Secret,
        /// Opinion (转院意见).
        refl_opnn: opt String,
        /// Valid from (开始日期).
        begndate: req Date,
        /// Valid to (结束日期).
        enddate: opt Date,
    }
}

crate::record! {
    /// 2501 input.
    pub struct ReferralFilingInput {
        /// The filing.
        data: rec ReferralFiling,
    }
}

crate::record! {
    /// 2503 input data: a chronic or special-disease filing (门诊慢特病备案).
    pub struct ChronicFiling {
        /// Person number.
        psn_no: req String,
        /// Insurance type.
        insutype: req Insutype,
        /// Chronic disease code (门慢门特病种目录代码).
        opsp_dise_code: req String,
        /// Chronic disease name: personal data.
        opsp_dise_name: req Secret,
        /// Telephone: personal data.
        tel: opt Secret,
        /// Address: personal data.
        addr: opt Secret,
        /// Insuring agency.
        insu_optins: opt String,
        /// Certifying institution code (鉴定定点医药机构编号).
        ide_fixmedins_no: opt String,
        /// Certifying institution name.
        ide_fixmedins_name: opt String,
        /// Certification date (医院鉴定日期).
        hosp_ide_date: opt Date,
        /// Diagnosing doctor code.
        diag_dr_codg: opt String,
        /// Diagnosing doctor name.
        diag_dr_name: opt Secret,
        /// Valid from.
        begndate: req Date,
        /// Valid to.
        enddate: opt Date,
    }
}

crate::record! {
    /// 2503 input.
    pub struct ChronicFilingInput {
        /// The filing.
        data: rec ChronicFiling,
    }
}

crate::record! {
    /// The filing id a platform gives (2501/2503 output data).
    pub struct FilingId {
        /// Filing serial number (待遇申报明细流水号).
        trt_dcla_detl_sn: req String,
    }
}

crate::record! {
    /// 2501/2503 output.
    pub struct FilingOutput {
        /// The id.
        data: rec FilingId,
    }
}

crate::record! {
    /// 2502/2504 input data: withdraws a filing.
    pub struct FilingCancel {
        /// Filing serial number.
        trt_dcla_detl_sn: req String,
        /// Person number.
        psn_no: req String,
        /// Note.
        memo: opt String,
    }
}

crate::record! {
    /// 2502/2504 input.
    pub struct FilingCancelInput {
        /// The filing.
        data: rec FilingCancel,
    }
}
