//! The envelope every message travels in.

use crate::record::{Region, Secret, Stamp};
use crate::time::DateTime;

crate::record! {
    /// The fields every request carries around its `input`, other than `infno`
    /// (which the [`crate::Request`] holds as the body's type).
    pub struct RequestEnvelope {
        /// Sender's message id (发送方报文ID): institution code + `yyyyMMddHHmmss` + sequence.
        msgid: req String,
        /// Treatment region (就医地医保区划).
        mdtrtarea_admvs: req Region,
        /// Insured region (参保地医保区划): decides the route.
        insuplc_admdvs: req Region,
        /// Receiving system code (接收方系统代码), e.g. `YBXT`.
        recer_sys_code: opt String,
        /// Device number (设备编号).
        dev_no: opt String,
        /// Device security information (设备安全信息).
        dev_safe_info: opt String,
        /// Digital signature (数字签名信息).
        cainfo: opt String,
        /// Signature type (签名类型).
        signtype: opt String,
        /// Interface version (接口版本号).
        infver: opt String,
        /// Operator type (经办人类别).
        opter_type: opt String,
        /// Operator id (经办人).
        opter: opt String,
        /// Operator name (经办人姓名): personal data.
        opter_name: opt Secret,
        /// Time of the call (交易时间).
        inf_time: opt DateTime,
        /// Designated institution code (定点医药机构编号).
        fixmedins_code: req String,
        /// Designated institution name (定点医药机构名称).
        fixmedins_name: opt String,
        /// Sign-in number (交易签到流水号).
        sign_no: opt String,
        /// Service code.
        serv_code: opt String,
        /// Service sign.
        serv_sign: opt String,
    }
}

crate::record! {
    /// The fields every answer carries around its `output`.
    pub struct AnswerEnvelope {
        /// Result code (交易状态码): 0 success, anything else failure.
        infcode: req i64,
        /// The platform's id for the call (接收方报文ID).
        inf_refmsgid: opt String,
        /// When the platform received the call (接收报文时间).
        refmsg_time: opt Stamp,
        /// When the platform answered (响应报文时间).
        respond_time: opt Stamp,
        /// Error message (错误信息).
        err_msg: opt String,
        /// Warning message (警告信息).
        warn_msg: opt String,
        /// Digital signature.
        cainfo: opt String,
        /// Signature type.
        signtype: opt String,
    }
}

impl AnswerEnvelope {
    /// Whether the platform reports success.
    pub fn is_success(&self) -> bool {
        self.infcode == Some(0)
    }
}
