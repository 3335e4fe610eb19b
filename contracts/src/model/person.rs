//! 1101 person lookup (人员信息获取).

use crate::codes::{Insutype, MdtrtCertType, PsnCertType};
use crate::money::{Age, Money};
use crate::record::{Region, Secret};
use crate::time::{Date, DateTime};

crate::record! {
    /// 1101 input: how the person presented themselves.
    pub struct PersonQuery {
        /// Credential type (就诊凭证类型): 01 e-voucher, 02 ID card, 03 social-security card.
        mdtrt_cert_type: req MdtrtCertType,
        /// Credential number (就诊凭证编号): personal data.
        mdtrt_cert_no: req Secret,
        /// Card serial number (卡识别码).
        card_sn: opt String,
        /// Start time (开始时间).
        begntime: opt DateTime,
        /// Certificate type (人员证件类型).
        psn_cert_type: opt PsnCertType,
        /// Certificate number (证件号码): personal data.
        certno: opt Secret,
        /// Name (人员姓名): personal data.
        psn_name: opt Secret,
    }
}

crate::record! {
    /// 1101 input.
    pub struct PersonLookupInput {
        /// The query.
        data: rec PersonQuery,
    }
}

crate::record! {
    /// A person's basic information (基本信息).
    pub struct BaseInfo {
        /// Person number (人员编号).
        psn_no: req String,
        /// Certificate type.
        psn_cert_type: opt PsnCertType,
        /// Certificate number: personal data.
        certno: opt Secret,
        /// Name: personal data.
        psn_name: opt Secret,
        /// Sex (性别).
        gend: opt String,
        /// Ethnicity (民族).
        naty: opt String,
        /// Birth date (出生日期).
        brdy: opt Date,
        /// Age (年龄).
        age: opt Age,
    }
}

crate::record! {
    /// One insurance the person holds (参保信息).
    pub struct InsuInfo {
        /// Personal-account balance (余额).
        balc: opt Money,
        /// Insurance type (险种类型).
        insutype: req Insutype,
        /// Person type (人员类别).
        psn_type: opt String,
        /// Insurance status (人员参保状态).
        psn_insu_stas: opt String,
        /// Date insured (个人参保日期).
        psn_insu_date: opt Date,
        /// Date suspended (暂停参保日期).
        paus_insu_date: opt Date,
        /// Civil-servant flag (公务员标志).
        cvlserv_flag: opt String,
        /// Insured region (参保地医保区划).
        insuplc_admdvs: opt Region,
        /// Employer name (单位名称).
        emp_name: opt String,
    }
}

crate::record! {
    /// A special identity (身份信息), e.g. a disability grade.
    pub struct IdetInfo {
        /// Identity type (人员身份类别).
        psn_idet_type: req String,
        /// Person type level (人员类别等级).
        psn_type_lv: opt String,
        /// Note (备注).
        memo: opt String,
        /// Start (开始时间).
        begntime: opt DateTime,
        /// End (结束时间).
        endtime: opt DateTime,
    }
}

crate::record! {
    /// 1101 output.
    pub struct PersonLookupOutput {
        /// Basic information.
        baseinfo: optrec BaseInfo,
        /// Insurances held.
        insuinfo: list InsuInfo,
        /// Special identities.
        idetinfo: list IdetInfo,
    }
}
