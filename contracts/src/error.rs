//! The error catalogue: every refusal the gateway can give, with a stable
//! code, a message in Chinese and in English, and an HTTP status. Dialects
//! turn a [`Refusal`] into an answer in the caller's own format; metrics label
//! refusals by [`ErrorCode::slug`]. Codes never change meaning once published.

use std::fmt;

macro_rules! catalogue {
    ( $( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $slug:literal, $status:literal, $zh:literal, $en:literal; )* ) => {
        /// A refusal class. See the table in `contracts/errors.md`.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The stable number, also sent as the national `infcode`.
            pub fn number(self) -> u16 {
                match self { $( ErrorCode::$variant => $code, )* }
            }
            /// A stable snake_case name, used in metrics and logs.
            pub fn slug(self) -> &'static str {
                match self { $( ErrorCode::$variant => $slug, )* }
            }
            /// The HTTP status that fits.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }
            /// Message for the counter, in Chinese.
            pub fn message_zh(self) -> &'static str {
                match self { $( ErrorCode::$variant => $zh, )* }
            }
            /// Message in English.
            pub fn message_en(self) -> &'static str {
                match self { $( ErrorCode::$variant => $en, )* }
            }
            /// From the stable number.
            pub fn from_number(number: u16) -> Option<ErrorCode> {
                match number { $( $code => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

catalogue! {
    /// The bytes are not a message of the dialect (bad JSON or XML, wrong structure).
    Malformed = 1001, "malformed", 400, "报文格式错误", "malformed message";
    /// The bytes do not match the declared or required character encoding.
    WrongEncoding = 1002, "wrong_encoding", 400, "报文字符编码错误", "wrong character encoding";
    /// Nested deeper than the dialect allows.
    TooDeep = 1003, "too_deep", 400, "报文嵌套层级过深", "message nested too deeply";
    /// More list items, attributes or extra keys than allowed.
    TooMany = 1004, "too_many_items", 400, "报文明细条目过多", "too many items in message";
    /// DOCTYPE, entity declarations or processing constructs a message may not hold.
    ForbiddenConstruct = 1005, "forbidden_construct", 400, "报文含有禁止的结构", "forbidden construct in message";
    /// The same field given twice.
    DuplicateField = 1006, "duplicate_field", 400, "报文字段重复", "duplicated field";
    /// A transaction number the gateway does not know.
    UnknownTransaction = 1010, "unknown_transaction", 400, "不支持的交易编号", "unknown transaction";
    /// A required field is absent or empty.
    MissingField = 1011, "missing_field", 400, "缺少必填字段", "missing required field";
    /// A field's value is not of its kind (amount, time, code, text).
    InvalidValue = 1012, "invalid_value", 400, "字段值不合法", "invalid field value";
    /// A dialect the gateway does not speak.
    UnknownDialect = 1013, "unknown_dialect", 404, "不支持的报文格式", "unknown dialect";
    /// Amounts that do not balance to the fen.
    Unbalanced = 2001, "unbalanced", 400, "金额不平衡", "amounts do not balance";
    /// A region code outside the regions this gateway serves.
    UnknownRegion = 2002, "unknown_region", 400, "未知的医保区划", "unknown insurance region";
    /// A fee line whose total is not quantity times price, or lines that repeat a serial number.
    FeeLineMismatch = 2003, "fee_line_mismatch", 400, "费用明细金额不符", "fee line does not add up";
    /// A resident ID number whose check character is wrong.
    InvalidIdNumber = 2004, "invalid_id_number", 400, "身份证号码校验失败", "invalid ID number";
    /// A field combination the transaction does not allow.
    InvalidRequest = 2005, "invalid_request", 400, "交易参数不合法", "invalid request";
    /// The client certificate maps to no configured institution.
    UnknownCaller = 3001, "unknown_caller", 403, "调用方身份未登记", "caller not registered";
    /// The message names another institution than the caller.
    InstitutionMismatch = 3002, "institution_mismatch", 403, "报文机构与调用方身份不符", "institution does not match caller";
    /// The message names a treatment region other than the caller's.
    RegionMismatch = 3003, "region_mismatch", 403, "就医地与调用方所在区划不符", "treatment region does not match caller";
    /// The caller's role may not use this interface.
    RoleNotAllowed = 3004, "role_not_allowed", 403, "调用方角色无此权限", "role not allowed";
    /// A supervision rule in refuse mode stopped the request.
    SupervisionRefused = 3005, "supervision_refused", 403, "触发跨区域监管规则，交易被拒绝", "refused by a supervision rule";
    /// No such path or record.
    NotFound = 4004, "not_found", 404, "资源不存在", "not found";
    /// Wrong HTTP method for the path.
    MethodNotAllowed = 4005, "method_not_allowed", 405, "请求方法不允许", "method not allowed";
    /// The client was too slow sending its request.
    RequestTimeout = 4008, "request_timeout", 408, "请求发送超时", "request timed out";
    /// The same msgid is still being processed.
    InFlight = 4009, "in_flight", 409, "同一报文正在处理中", "same message still in flight";
    /// The msgid was already used for a different message.
    MsgidReused = 4010, "msgid_reused", 409, "报文ID已被其他报文使用", "message id reused for another message";
    /// The clearing day is closed.
    DayClosed = 4011, "day_closed", 409, "清算日已关闭", "clearing day is closed";
    /// The body exceeds the size limit.
    TooLarge = 4013, "too_large", 413, "报文过大", "message too large";
    /// The caller or the insured region's platform is over its rate.
    RateLimited = 4029, "rate_limited", 429, "请求过于频繁，请稍后重试", "rate limited, retry later";
    /// The gateway sheds load.
    Overloaded = 5003, "overloaded", 503, "网关繁忙，请稍后重试", "gateway overloaded, retry later";
    /// The ledger cannot journal: nothing is forwarded.
    LedgerUnavailable = 5004, "ledger_unavailable", 503, "结算日志不可用，暂停结算", "ledger unavailable, settlements paused";
    /// The insured region's platform could not be reached.
    UpstreamUnreachable = 5020, "upstream_unreachable", 502, "参保地平台无法连接", "insured region's platform unreachable";
    /// The platform's answer could not be understood.
    UpstreamBadAnswer = 5021, "upstream_bad_answer", 502, "参保地平台应答无法解析", "insured region's platform answered badly";
    /// The platform did not answer in time; settlements are reversed by the gateway.
    UpstreamTimeout = 5040, "upstream_timeout", 504, "参保地平台应答超时", "insured region's platform timed out";
    /// A bug in the gateway.
    Internal = 5000, "internal", 500, "网关内部错误", "internal error";
}

impl ErrorCode {
    /// `E1011`.
    pub fn label(self) -> String {
        format!("E{}", self.number())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E{} {}", self.number(), self.slug())
    }
}

/// A refusal: a catalogue code and a detail that names the field or rule.
/// The detail never holds personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[E{}] {} / {}: {detail}", code.number(), code.message_zh(), code.message_en())]
pub struct Refusal {
    /// The class.
    pub code: ErrorCode,
    /// What exactly: a field path, a rule, a limit.
    pub detail: String,
}

impl Refusal {
    /// A refusal with a detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Refusal {
        Refusal {
            code,
            detail: detail.into(),
        }
    }

    /// The text for the national `err_msg`: code, Chinese, English, detail.
    pub fn err_msg(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_codes_and_slugs_are_unique_and_round_trip() {
        let numbers: HashSet<u16> = ErrorCode::ALL.iter().map(|c| c.number()).collect();
        let slugs: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.slug()).collect();
        assert_eq!(numbers.len(), ErrorCode::ALL.len());
        assert_eq!(slugs.len(), ErrorCode::ALL.len());
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_number(code.number()), Some(code));
            assert!((400..600).contains(&code.http_status()));
            assert!(!code.message_zh().is_empty() && !code.message_en().is_empty());
        }
    }

    #[test]
    fn refusal_text_names_code_and_detail() {
        let r = Refusal::new(ErrorCode::MissingField, "input.data.psn_no");
        assert_eq!(
            r.err_msg(),
            "[E1011] 缺少必填字段 / missing required field: input.data.psn_no"
        );
    }
}
