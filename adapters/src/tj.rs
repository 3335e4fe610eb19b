//! The Tianjin dialect (`tj`): XML in GB18030, its own element names, dates
//! `yyyyMMddHHmmss`, amounts in yuan, its own code tables for insurance type
//! and kind of care. Specified in `contracts/dialects/tj.md` and `tj.xsd`.
//!
//! Everything but the tables below is the shared codec of [`crate::xml`]:
//! scalars are child elements, lists are a wrapper element holding one
//! `<ROW>` per item, the envelope's fields sit in the root element.

use crate::xml::{
    Charset, Clock, CodeTable, Frame, MoneyUnit, NameCache, Placement, WireName, XmlDialect,
};
use contracts::record::{CodeSet, Schema};

/// The Tianjin XML dialect.
pub struct Tj;

/// Prefix of an element name made by the fallback rule: a field with no
/// entry in [`NAMES`] is written `N_` followed by its national name.
pub const FALLBACK_PREFIX: &str = "N_";

macro_rules! names {
    ( $( $national:literal => $tj:literal, $zh:literal; )* ) => {
        /// Every national field name with its tj element name and the Chinese
        /// name it abbreviates (the initials of its pinyin): one table for
        /// every record, so a tj name means the same field wherever it occurs.
        pub const NAMES: &[(&str, &str, &str)] = &[ $( ($national, $tj, $zh), )* ];

        /// The tj element name of a national field name.
        pub fn tj_name(national: &str) -> Option<&'static str> {
            match national {
                $( $national => Some($tj), )*
                _ => None,
            }
        }

        /// The national field name of a tj element name.
        pub fn national_name(tj: &str) -> Option<&'static str> {
            match tj {
                $( $tj => Some($national), )*
                _ => None,
            }
        }
    };
}

names! {
    "acct_mulaid_pay" => "GRZHGJZF", "个人账户共济支付金额";
    "acct_pay" => "GRZHZF", "个人账户支出";
    "acct_used_flag" => "GRZHSYBZ", "个人账户使用标志";
    "act_pay_dedc" => "SJZFQFX", "实际支付起付线";
    "addr" => "DZ", "地址";
    "adm_bed" => "RYCW", "入院床位";
    "adm_cond" => "RYBQ", "入院病情";
    "adm_dept_codg" => "RYKSBM", "入院科室编码";
    "adm_dept_name" => "RYKSMC", "入院科室名称";
    "adm_diag_dscr" => "RYZDMS", "入院诊断描述";
    "age" => "NL", "年龄";
    "atddr_no" => "ZZYSBM", "主治医生编码";
    "balc" => "YE", "余额";
    "bas_medn_flag" => "JBYWBZ", "基本药物标志";
    "baseinfo" => "JBXX", "基本信息";
    "begndate" => "KSRQ", "开始日期";
    "begntime" => "KSSJ", "开始时间";
    "bilg_dept_codg" => "KDKSBM", "开单科室编码";
    "bilg_dept_name" => "KDKSMC", "开单科室名称";
    "bilg_dr_codg" => "KDYSBM", "开单医生编码";
    "bilg_dr_name" => "KDYSXM", "开单医师姓名";
    "birctrl_matn_date" => "JHSYRQ", "计划生育手术或生育日期";
    "birctrl_type" => "JHSYLB", "计划生育手术类别";
    "brdy" => "CSRQ", "出生日期";
    "cainfo" => "SZQM", "数字签名信息";
    "card_sn" => "KXLH", "卡序列号（卡识别码）";
    "cash_payamt" => "XJZFZE", "现金支付总额";
    "caty" => "KB", "科别";
    "certno" => "ZJHM", "证件号码";
    "chfpdr_name" => "ZZYSXM", "主诊医师姓名";
    "chld_medc_flag" => "ETYYBZ", "儿童用药标志";
    "chrg_bchno" => "SFPCH", "收费批次号";
    "chrgitm_lv" => "SFXMDJ", "收费项目等级";
    "clr_date" => "QSRQ", "清算日期";
    "clr_optins" => "QSJBJG", "清算经办机构";
    "clr_type" => "QSLB", "清算类别";
    "clr_way" => "QSFS", "清算方式";
    "cnfm_flag" => "QRBZ", "确认标志";
    "cnt" => "SL", "数量";
    "coner_name" => "LXRXM", "联系人姓名";
    "cop_flag" => "BFZBZ", "并发症标志";
    "crt_payb_lmt_amt" => "BCKZFXE", "本次可支付限额金额";
    "cvlserv_flag" => "GWYBZ", "公务员标志";
    "cvlserv_pay" => "GWYBZZF", "公务员医疗补助资金支出";
    "data" => "SJ", "数据";
    "dept_code" => "KSBM", "科室编码";
    "dept_name" => "KSMC", "科室名称";
    "det_item_fee_sumamt" => "MXXMFYZE", "明细项目费用总额";
    "dev_no" => "SBBH", "设备编号";
    "dev_safe_info" => "SBAQXX", "设备安全信息";
    "diag_code" => "ZDDM", "诊断代码";
    "diag_dept" => "ZDKS", "诊断科室";
    "diag_dr_codg" => "JDYSBM", "鉴定（诊断）医师编码";
    "diag_dr_name" => "JDYSXM", "鉴定（诊断）医师姓名";
    "diag_name" => "ZDMC", "诊断名称";
    "diag_srt_no" => "ZDPXH", "诊断排序号";
    "diag_time" => "ZDSJ", "诊断时间";
    "diag_type" => "ZDLB", "诊断类别";
    "die_date" => "SWRQ", "死亡日期";
    "dise_codg" => "BZBM", "病种编码";
    "dise_cond_dscr" => "JBBQMS", "疾病病情描述";
    "dise_dor_name" => "ZDYSXM", "诊断医生姓名";
    "dise_dor_no" => "ZDYSBM", "诊断医生编码";
    "dise_name" => "BZMC", "病种名称";
    "dise_type_code" => "BZLX", "病种类型";
    "diseinfo" => "ZDXX", "诊断信息";
    "dr_name" => "YSXM", "医师姓名";
    "drt_reim_flag" => "ZBBZ", "直报标志";
    "dscg_bed" => "CYCW", "出院床位";
    "dscg_dept_codg" => "CYKSBM", "出院科室编码";
    "dscg_dept_name" => "CYKSMC", "出院科室名称";
    "dscg_maindiag_code" => "ZYZZDDM", "住院主诊断代码";
    "dscg_maindiag_name" => "ZYZZDMC", "住院主诊断名称";
    "dscg_way" => "LYFS", "离院方式";
    "dscginfo" => "CYXX", "出院信息";
    "emp_name" => "DWMC", "单位名称";
    "enddate" => "ZZRQ", "终止日期";
    "endtime" => "ZZSJ", "终止时间";
    "err_msg" => "CWXX", "错误信息";
    "fee_ocur_time" => "FYFSSJ", "费用发生时间";
    "feedetail" => "FYMX", "费用明细";
    "feedetl_sn" => "FYMXLSH", "费用明细流水号";
    "file_qury_no" => "WJCXH", "文件查询号";
    "fileinfo" => "DZCY", "对账差异";
    "fixmedins_code" => "DDJGBH", "定点医药机构编号";
    "fixmedins_name" => "DDJGMC", "定点医药机构名称";
    "fixmedins_setl_cnt" => "DDJGJSBS", "定点医药机构结算笔数";
    "fulamt_ownpay_amt" => "QZFJE", "全自费金额";
    "fund_pay_sumamt" => "JJZFZE", "基金支付总额";
    "fund_pay_type" => "JJZFLX", "基金支付类型";
    "fund_pay_type_name" => "JJZFLXMC", "基金支付类型名称";
    "fund_payamt" => "JJZFJE", "基金支付金额";
    "gend" => "XB", "性别";
    "hi_nego_drug_flag" => "YBTPYPBZ", "医保谈判药品标志";
    "hifdm_pay" => "TSJJZF", "特殊基金支出";
    "hifes_pay" => "QYBCZF", "企业补充医疗保险基金支出";
    "hifmi_pay" => "JMDBZF", "居民大病保险资金支出";
    "hifob_pay" => "ZGDEZF", "职工大额医疗费用补助基金支出";
    "hifp_pay" => "TCJJZF", "基本医疗保险统筹基金支出";
    "hosp_agre_refl_flag" => "YYTYZHYBZ", "医院同意转院标志";
    "hosp_appr_flag" => "YYSPBZ", "医院审批标志";
    "hosp_ide_date" => "YYJDRQ", "医院鉴定日期";
    "hosp_part_amt" => "YYFDJE", "医院负担金额";
    "ide_fixmedins_name" => "JDJGMC", "鉴定定点医药机构名称";
    "ide_fixmedins_no" => "JDJGBH", "鉴定定点医药机构编号";
    "idetinfo" => "SFXX", "身份信息";
    "inf_refmsgid" => "JSFBWID", "接收方报文ID";
    "inf_time" => "JYSJ", "交易时间";
    "infcode" => "JYZTM", "交易状态码";
    "infver" => "JKBBH", "接口版本号";
    "inscp_scp_amt" => "FHZCFWJE", "符合政策范围金额";
    "insu_optins" => "CBJG", "参保机构";
    "insuinfo" => "CBXX", "参保信息";
    "insuplc_admdvs" => "CBDQH", "参保地医保区划";
    "insutype" => "XZLX", "险种类型";
    "invono" => "FPH", "发票号";
    "ipt_no" => "ZYH", "住院号";
    "ipt_otp_no" => "MZZYH", "门诊/住院号";
    "list_sp_item_flag" => "MLTXBZ", "目录特项标志";
    "lmt_used_flag" => "XZSYBZ", "限制使用标志";
    "maf_pay" => "YLJZZF", "医疗救助基金支出";
    "main_cond_dscr" => "ZYBQMS", "主要病情描述";
    "maindiag_flag" => "ZZDBZ", "主诊断标志";
    "matn_type" => "SYLB", "生育类别";
    "mdtrt_cert_no" => "JZPZBH", "就诊凭证编号";
    "mdtrt_cert_type" => "JZPZLX", "就诊凭证类型";
    "mdtrt_id" => "JZID", "就诊ID";
    "mdtrt_setl_time" => "JZJSSJ", "就诊结算时间";
    "mdtrtarea_admdvs" => "JYDXZQH", "就医地行政区划";
    "mdtrtarea_admvs" => "JYDQH", "就医地医保区划";
    "mdtrtinfo" => "JZXX", "就诊信息";
    "med_chrgitm_type" => "YLSFXMLB", "医疗收费项目类别";
    "med_list_codg" => "YLMLBM", "医疗目录编码";
    "med_type" => "YLLB", "医疗类别";
    "medc_way_dscr" => "YYTJMS", "用药途径描述";
    "medfee_sumamt" => "YLFZE", "医疗费总额";
    "medins_list_codg" => "JGMLBM", "医药机构目录编码";
    "medins_setl_id" => "JGJSID", "医药机构结算ID";
    "medrcdno" => "BLH", "病历号";
    "memo" => "BZ", "备注";
    "mid_setl_flag" => "ZTJSBZ", "中途结算标志";
    "msgid" => "BWID", "发送方报文ID";
    "naty" => "MZ", "民族";
    "oinfno" => "YJYBH", "原交易编号";
    "omsgid" => "YBWID", "原发送方报文ID";
    "oprn_oprt_code" => "SSCZDM", "手术操作代码";
    "oprn_oprt_name" => "SSCZMC", "手术操作名称";
    "opsp_dise_code" => "MTBZDM", "门慢门特病种目录代码";
    "opsp_dise_name" => "MTBZMC", "门慢门特病种名称";
    "opter" => "JBR", "经办人";
    "opter_name" => "JBRXM", "经办人姓名";
    "opter_type" => "JBRLB", "经办人类别";
    "optins_pay_sumamt" => "JBJGZFZE", "经办机构支付总额";
    "oth_pay" => "QTZF", "其他支出";
    "overlmt_amt" => "CXJJE", "超限价金额";
    "overlmt_selfpay" => "CXJZF", "超限价自费费用";
    "page_num" => "YM", "页码";
    "page_size" => "MYTS", "每页条数";
    "paus_insu_date" => "ZTCBRQ", "暂停参保日期";
    "pool_prop_selfpay" => "TCZFBL", "统筹基金自付比例";
    "prd_days" => "ZQTS", "周期天数";
    "preselfpay_amt" => "XXZFJE", "先行自付金额";
    "pric" => "DJ", "单价";
    "pric_uplmt_amt" => "DJSXJE", "定价上限金额";
    "psn_cash_pay" => "GRXJZF", "个人现金支出";
    "psn_cert_type" => "ZJLX", "人员证件类型";
    "psn_idet_type" => "SFLB", "人员身份类别";
    "psn_insu_date" => "CBRQ", "个人参保日期";
    "psn_insu_stas" => "CBZT", "人员参保状态";
    "psn_name" => "XM", "人员姓名";
    "psn_no" => "GRBH", "人员编号";
    "psn_part_amt" => "GRFDZE", "个人负担总金额";
    "psn_setlway" => "GRJSFS", "个人结算方式";
    "psn_type" => "RYLB", "人员类别";
    "psn_type_lv" => "RYLBDJ", "人员类别等级";
    "recer_sys_code" => "JSFXTDM", "接收方系统代码";
    "recordcounts" => "ZJLS", "总记录数";
    "refd_setl_flag" => "TFJSBZ", "退费结算标志";
    "refl_date" => "ZHYRQ", "转院日期";
    "refl_opnn" => "ZHYYJ", "转院意见";
    "refl_rea" => "ZHYYY", "转院原因";
    "refl_type" => "ZHYLX", "转院类型";
    "reflin_medins_name" => "ZWJGMC", "转往定点医药机构名称";
    "reflin_medins_no" => "ZWJGBH", "转往定点医药机构编号";
    "refmsg_time" => "JSBWSJ", "接收报文时间";
    "respond_time" => "XYBWSJ", "响应报文时间";
    "result" => "MXJG", "明细结果";
    "rx_circ_flag" => "WGCFBZ", "外购处方标志";
    "rxno" => "CFH", "处方号";
    "selfpay_prop" => "ZFBL", "自付比例";
    "serv_code" => "FWDM", "服务代码";
    "serv_sign" => "FWQM", "服务签名";
    "setl_id" => "JSID", "结算ID";
    "setl_optins" => "JSJBJG", "结算经办机构";
    "setl_proc_info" => "JSGCXX", "结算过程信息";
    "setl_time" => "JSSJ", "结算时间";
    "setldetail" => "JJFX", "结算基金分项";
    "setlinfo" => "JSXX", "结算信息";
    "sign_no" => "QDLSH", "签到流水号";
    "signtype" => "QMLX", "签名类型";
    "sin_dos_dscr" => "DCJLMS", "单次剂量描述";
    "stmt_begndate" => "DZKSRQ", "对账开始日期";
    "stmt_enddate" => "DZZZRQ", "对账终止日期";
    "stmt_rslt" => "DZJG", "对账结果";
    "stmt_rslt_dscr" => "DZJGSM", "对账结果说明";
    "stmtinfo" => "DZXX", "对账信息";
    "tel" => "LXDH", "联系电话";
    "trt_dcla_detl_sn" => "DYSBLSH", "待遇申报明细流水号";
    "trt_month" => "DYYF", "待遇月份";
    "trt_year" => "DYND", "待遇年度";
    "used_frqu_dscr" => "SYPCMS", "使用频次描述";
    "vali_flag" => "YXBZ", "有效标志";
    "warn_msg" => "JGXX", "警告信息";
}

/// Insurance type (险种类型, `insutype`): national code, tj code.
pub const INSUTYPE: CodeTable = CodeTable {
    pairs: &[
        ("310", "ZG"),
        ("320", "GWY"),
        ("330", "DE"),
        ("340", "LG"),
        ("390", "JM"),
        ("392", "JMDB"),
    ],
};

/// Kind of care (医疗类别, `med_type`): national code, tj code.
pub const MED_TYPE: CodeTable = CodeTable {
    pairs: &[
        ("11", "PT"),
        ("12", "GH"),
        ("13", "JZ"),
        ("14", "MTB"),
        ("21", "ZY"),
        ("41", "YD"),
    ],
};

impl XmlDialect for Tj {
    const NAME: &'static str = "tj";
    const CHARSET: Charset = Charset::Gb18030;
    const PLACEMENT: Placement = Placement::Elements;
    const MONEY: MoneyUnit = MoneyUnit::Yuan;
    const CLOCK: Clock = Clock::Compact;
    const FRAME: Frame = Frame {
        request_root: "QQBW",
        answer_root: "YDBW",
        header: None,
        infno: "JYBH",
        input: "SRCS",
        output: "SCCS",
        list_item: Some("ROW"),
    };

    fn codes(set: CodeSet) -> Option<&'static CodeTable> {
        match set {
            CodeSet::Insutype => Some(&INSUTYPE),
            CodeSet::MedType => Some(&MED_TYPE),
            _ => None,
        }
    }

    fn wire_name(schema: &'static Schema, index: usize) -> WireName {
        let national = schema.fields.get(index).map_or("", |f| f.name);
        match tj_name(national) {
            Some(tj) => WireName::plain(tj),
            None => WireName {
                prefix: FALLBACK_PREFIX,
                name: national,
            },
        }
    }

    fn name_cache() -> &'static NameCache {
        static NAMES: NameCache = NameCache::new();
        &NAMES
    }

    fn field_index(schema: &'static Schema, wire: &str) -> Option<usize> {
        match national_name(wire) {
            Some(national) => schema.index_of(national),
            None => {
                let national = wire.strip_prefix(FALLBACK_PREFIX)?;
                // A field with a table name is known only by it.
                if tj_name(national).is_some() {
                    return None;
                }
                schema.index_of(national)
            }
        }
    }
}
