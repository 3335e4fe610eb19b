//! Visits and stays: outpatient registration (2201/2202), visit upload (2203),
//! admission (2401/2404), discharge (2402/2405), and the diagnoses they carry.

use crate::codes::{Insutype, MdtrtCertType, MedType};
use crate::record::Secret;
use crate::time::{Date, DateTime};

crate::record! {
    /// 2201 input data: an outpatient registration (门诊挂号).
    pub struct OutpatientRegistration {
        /// Person number (人员编号).
        psn_no: req String,
        /// Insurance type (险种类型).
        insutype: req Insutype,
        /// Start time (开始时间).
        begntime: req DateTime,
        /// Credential type (就诊凭证类型).
        mdtrt_cert_type: req MdtrtCertType,
        /// Credential number (就诊凭证编号): personal data.
        mdtrt_cert_no: req Secret,
        /// The hospital's outpatient or inpatient number (住院/门诊号).
        ipt_otp_no: req String,
        /// Attending doctor's code (医师编码).
        atddr_no: opt String,
        /// Doctor's name (医师姓名).
        dr_name: opt Secret,
        /// Department code (科室编码).
        dept_code: opt String,
        /// Department name (科室名称).
        dept_name: opt String,
        /// Specialty (科别).
        caty: opt String,
    }
}

crate::record! {
    /// 2201 input.
    pub struct OutpatientRegistrationInput {
        /// The registration.
        data: rec OutpatientRegistration,
    }
}

crate::record! {
    /// The ids a platform gives a new visit or stay (2201 and 2401 output data).
    pub struct VisitIds {
        /// Visit id (就诊ID), 9 to 30 characters depending on the region.
        mdtrt_id: req String,
        /// Person number.
        psn_no: req String,
        /// The hospital's outpatient or inpatient number.
        ipt_otp_no: opt String,
    }
}

crate::record! {
    /// 2201 and 2401 output.
    pub struct VisitIdsOutput {
        /// The new visit's ids.
        data: rec VisitIds,
    }
}

crate::record! {
    /// Names a visit or stay to cancel (2202, 2404, 2405 input data).
    pub struct VisitRef {
        /// Person number.
        psn_no: req String,
        /// Visit id.
        mdtrt_id: req String,
        /// The hospital's outpatient or inpatient number.
        ipt_otp_no: opt String,
    }
}

crate::record! {
    /// 2202, 2404 and 2405 input.
    pub struct VisitRefInput {
        /// The visit.
        data: rec VisitRef,
    }
}

crate::record! {
    /// One diagnosis (诊断信息). Names of diseases are personal data.
    pub struct Diagnosis {
        /// Visit id.
        mdtrt_id: opt String,
        /// Person number.
        psn_no: opt String,
        /// Diagnosis type (诊断类别).
        diag_type: req String,
        /// Main-diagnosis flag (主诊断标志).
        maindiag_flag: opt String,
        /// Order (诊断排序号).
        diag_srt_no: req i64,
        /// Diagnosis code (诊断代码), ICD-10.
        diag_code: req String,
        /// Diagnosis name (诊断名称): personal data.
        diag_name: req Secret,
        /// Condition at admission (入院病情).
        adm_cond: opt String,
        /// Diagnosing department (诊断科室).
        diag_dept: opt String,
        /// Diagnosing doctor's code (诊断医生编码).
        dise_dor_no: opt String,
        /// Diagnosing doctor's name (诊断医生姓名).
        dise_dor_name: opt Secret,
        /// Diagnosis time (诊断时间).
        diag_time: opt DateTime,
        /// Valid flag (有效标志).
        vali_flag: opt String,
    }
}

crate::record! {
    /// 2203 input mdtrtinfo: the visit's clinical summary.
    pub struct OutpatientVisit {
        /// Visit id.
        mdtrt_id: req String,
        /// Person number.
        psn_no: req String,
        /// Kind of care (医疗类别).
        med_type: req MedType,
        /// Start time.
        begntime: req DateTime,
        /// Main complaint (主要病情描述): personal data.
        main_cond_dscr: opt Secret,
        /// Disease code (病种编码), e.g. a chronic disease.
        dise_codg: opt String,
        /// Disease name (病种名称): personal data.
        dise_name: opt Secret,
        /// Family-planning type (计划生育手术类别).
        birctrl_type: opt String,
        /// Family-planning date (计划生育手术或生育日期).
        birctrl_matn_date: opt Date,
    }
}

crate::record! {
    /// 2203 input.
    pub struct OutpatientVisitInput {
        /// The visit.
        mdtrtinfo: rec OutpatientVisit,
        /// Its diagnoses.
        diseinfo: list Diagnosis,
    }
}

crate::record! {
    /// 2401 input mdtrtinfo: an admission (入院办理).
    pub struct Admission {
        /// Person number.
        psn_no: req String,
        /// Insurance type.
        insutype: req Insutype,
        /// Contact's name (联系人姓名): personal data.
        coner_name: opt Secret,
        /// Telephone (联系电话): personal data.
        tel: opt Secret,
        /// Admission time (开始时间).
        begntime: req DateTime,
        /// Credential type.
        mdtrt_cert_type: req MdtrtCertType,
        /// Credential number: personal data.
        mdtrt_cert_no: req Secret,
        /// Kind of care: 21 ordinary inpatient, or another inpatient kind.
        med_type: req MedType,
        /// Inpatient number (住院号).
        ipt_no: req String,
        /// Medical record number (病历号).
        medrcdno: opt String,
        /// Attending doctor's code (主治医生编码).
        atddr_no: req String,
        /// Chief doctor's name (主诊医师姓名).
        chfpdr_name: opt Secret,
        /// Admission diagnosis (入院诊断描述): personal data.
        adm_diag_dscr: opt Secret,
        /// Admitting department code (入院科室编码).
        adm_dept_codg: req String,
        /// Admitting department name (入院科室名称).
        adm_dept_name: req String,
        /// Bed (入院床位).
        adm_bed: opt String,
        /// Main diagnosis code (住院主诊断代码).
        dscg_maindiag_code: req String,
        /// Main diagnosis name (住院主诊断名称): personal data.
        dscg_maindiag_name: req Secret,
        /// Main condition (主要病情描述): personal data.
        main_cond_dscr: opt Secret,
        /// Disease code (病种编码).
        dise_codg: opt String,
        /// Disease name (病种名称): personal data.
        dise_name: opt Secret,
        /// Operation code (手术操作代码).
        oprn_oprt_code: opt String,
        /// Operation name (手术操作名称): personal data.
        oprn_oprt_name: opt Secret,
        /// Maternity type (生育类别).
        matn_type: opt String,
        /// Family-planning type.
        birctrl_type: opt String,
        /// Family-planning date.
        birctrl_matn_date: opt Date,
        /// Disease type (病种类型).
        dise_type_code: opt String,
    }
}

crate::record! {
    /// 2401 input.
    pub struct AdmissionInput {
        /// The admission.
        mdtrtinfo: rec Admission,
        /// Admission diagnoses.
        diseinfo: list Diagnosis,
    }
}

crate::record! {
    /// 2402 input dscginfo: a discharge (出院办理).
    pub struct Discharge {
        /// Visit id.
        mdtrt_id: req String,
        /// Person number.
        psn_no: req String,
        /// Insurance type.
        insutype: opt Insutype,
        /// Discharge time (结束时间).
        endtime: req DateTime,
        /// Disease code.
        dise_codg: opt String,
        /// Disease name: personal data.
        dise_name: opt Secret,
        /// Operation code.
        oprn_oprt_code: opt String,
        /// Operation name: personal data.
        oprn_oprt_name: opt Secret,
        /// Maternity type.
        matn_type: opt String,
        /// Family-planning type.
        birctrl_type: opt String,
        /// Complication flag (并发症标志).
        cop_flag: opt String,
        /// Discharging department code (出院科室编码).
        dscg_dept_codg: opt String,
        /// Discharging department name (出院科室名称).
        dscg_dept_name: opt String,
        /// Discharge bed (出院床位).
        dscg_bed: opt String,
        /// Way of discharge (离院方式).
        dscg_way: opt String,
        /// Date of death (死亡日期).
        die_date: opt Date,
    }
}

crate::record! {
    /// 2402 input.
    pub struct DischargeInput {
        /// The discharge.
        dscginfo: rec Discharge,
        /// Discharge diagnoses.
        diseinfo: list Diagnosis,
    }
}
