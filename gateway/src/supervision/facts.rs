//! What supervision takes from a message: the few facts its rules need,
//! with the person turned into a keyed hash at once. The ID number never
//! leaves this file: it goes into the HMAC and nowhere else.

use contracts::model::fee::FeeDetail;
use contracts::{Answer, AnswerBody, DateTime, Money, Request, RequestBody};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 (RFC 2104) of `message` under `key`, lower-case hex.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    contracts::hex::encode(&outer.finalize())
}

/// The person's key: the HMAC of the ID number when the credential is the
/// ID card (`mdtrt_cert_type` 02), else of the insured province and the
/// person number (an e-voucher's token changes at every use).
pub fn person_key(
    key: &[u8],
    cert_type: Option<&str>,
    cert_no: Option<&str>,
    psn_no: Option<&str>,
    insured: Option<&str>,
) -> Option<String> {
    let id = cert_no.map(str::trim).filter(|c| !c.is_empty());
    match (cert_type, id) {
        (Some("02") | None, Some(id)) => Some(hmac_hex(
            key,
            format!("id:{}", id.to_ascii_uppercase()).as_bytes(),
        )),
        _ => {
            let psn = psn_no.map(str::trim).filter(|p| !p.is_empty())?;
            let province = insured.map_or("", |r| r.get(..2).unwrap_or(""));
            Some(hmac_hex(key, format!("psn:{province}:{psn}").as_bytes()))
        }
    }
}

/// Which settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleKind {
    /// 2207.
    Outpatient,
    /// 2304.
    Inpatient,
    /// 2102.
    Pharmacy,
}

impl SettleKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SettleKind::Outpatient => "outpatient",
            SettleKind::Inpatient => "inpatient",
            SettleKind::Pharmacy => "pharmacy",
        }
    }

    /// From storage.
    pub fn parse(text: &str) -> Option<SettleKind> {
        [
            SettleKind::Outpatient,
            SettleKind::Inpatient,
            SettleKind::Pharmacy,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A settlement as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The person's keyed hash.
    pub person: String,
    /// The institution's code.
    pub institution: String,
    /// The insured region.
    pub insured: String,
    /// The treatment region.
    pub treatment: String,
    /// Which settlement.
    pub kind: SettleKind,
    /// The visit.
    pub mdtrt_id: Option<String>,
    /// The settlement id (absent before forwarding).
    pub setl_id: Option<String>,
    /// Total medical fees.
    pub amount: Money,
    /// The invoice number.
    pub invono: Option<String>,
    /// Digest of the fee lines (inline for a pharmacy, uploaded for a visit).
    pub bill: Option<String>,
    /// Drugs bought: code and quantity (scaled by 10⁴).
    pub drugs: Vec<(String, i64)>,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// The sender's msgid.
    pub msgid: String,
}

/// An admission as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The person's keyed hash.
    pub person: String,
    /// The institution's code.
    pub institution: String,
    /// The insured region.
    pub insured: String,
    /// The treatment region.
    pub treatment: String,
    /// The stay's visit id (absent before forwarding).
    pub mdtrt_id: Option<String>,
    /// Admission time, Unix milliseconds.
    pub begin_ms: i64,
    /// When observed.
    pub at_ms: i64,
    /// The sender's msgid.
    pub msgid: String,
}

/// One fee line of a bill.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Line {
    code: String,
    count: i64,
    price: i64,
}

/// Something supervision observes.
#[derive(Debug, Clone)]
pub enum Fact {
    /// 2401 answered.
    Admission(Admission),
    /// 2402 answered: the stay ended.
    Discharge {
        /// Institution.
        institution: String,
        /// Visit.
        mdtrt_id: String,
        /// Discharge time.
        end_ms: i64,
        /// Observed.
        at_ms: i64,
    },
    /// 2404 answered: the stay never was.
    AdmissionCancel {
        /// Institution.
        institution: String,
        /// Visit.
        mdtrt_id: String,
        /// Observed.
        at_ms: i64,
    },
    /// 2207, 2304, 2102 answered.
    Settlement(Settlement),
    /// 2208, 2305, 2103 answered.
    Cancel {
        /// Institution.
        institution: String,
        /// The settlement cancelled.
        setl_id: String,
        /// Observed.
        at_ms: i64,
    },
    /// 2601 answered.
    Reversal {
        /// Institution (the caller).
        institution: String,
        /// The msgid reversed.
        omsgid: String,
        /// Observed.
        at_ms: i64,
    },
    /// 2204 or 2301 answered: lines of a visit's bill (kept in memory only).
    FeeUpload {
        /// Institution.
        institution: String,
        /// Visit.
        mdtrt_id: String,
        /// The lines.
        lines: Vec<Line>,
        /// Observed.
        at_ms: i64,
    },
}

impl Fact {
    /// When it was observed, Unix milliseconds.
    pub fn at_ms(&self) -> i64 {
        match self {
            Fact::Admission(a) => a.at_ms,
            Fact::Settlement(s) => s.at_ms,
            Fact::Discharge { at_ms, .. }
            | Fact::AdmissionCancel { at_ms, .. }
            | Fact::Cancel { at_ms, .. }
            | Fact::Reversal { at_ms, .. }
            | Fact::FeeUpload { at_ms, .. } => *at_ms,
        }
    }

    /// A settlement's bill (the digest of its fee lines), once known.
    pub fn bill(&self) -> Option<&str> {
        match self {
            Fact::Settlement(s) => s.bill.as_deref(),
            _ => None,
        }
    }
}

/// The lines of fee details, for a bill's digest.
pub fn lines(details: &[FeeDetail]) -> Vec<Line> {
    details
        .iter()
        .map(|d| Line {
            code: d.med_list_codg.clone().unwrap_or_default(),
            count: d.cnt.map_or(0, |c| c.scaled()),
            price: d.pric.map_or(0, |p| p.scaled()),
        })
        .collect()
}

/// The digest of a bill: its lines, sorted, whatever order they came in.
pub fn bill(lines: &[Line]) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let mut sorted: Vec<&Line> = lines.iter().collect();
    sorted.sort();
    let mut hash = Sha256::new();
    for line in sorted {
        hash.update(format!("{}|{}|{}\n", line.code, line.count, line.price));
    }
    Some(contracts::hex::encode(&hash.finalize()[..16]))
}

fn text(region: Option<contracts::Region>) -> String {
    region.map(|r| r.to_string()).unwrap_or_default()
}

/// The settlement a request asks for, before it is forwarded (no setl_id
/// yet); `bill_of` finds a visit's uploaded bill.
pub fn settlement_of(
    key: &[u8],
    request: &Request,
    at_ms: i64,
    bill_of: impl Fn(&str, &str) -> Option<String>,
) -> Option<Settlement> {
    let (kind, data, inline) = match &request.input {
        RequestBody::OutpatientSettle(i) => (SettleKind::Outpatient, &i.data, None),
        RequestBody::InpatientSettle(i) => (SettleKind::Inpatient, &i.data, None),
        RequestBody::PharmacySettle(i) => (SettleKind::Pharmacy, &i.data, Some(&i.feedetail)),
        _ => return None,
    };
    let envelope = &request.envelope;
    let insured = text(envelope.insuplc_admdvs);
    let person = person_key(
        key,
        data.mdtrt_cert_type.as_ref().map(|t| t.code()),
        data.mdtrt_cert_no.as_ref().map(|s| s.expose()),
        data.psn_no.as_deref(),
        Some(&insured),
    )?;
    let institution = envelope.fixmedins_code.clone().unwrap_or_default();
    let bill = match (inline, &data.mdtrt_id) {
        (Some(details), _) => bill(&lines(details)),
        (None, Some(mdtrt_id)) => bill_of(&institution, mdtrt_id),
        (None, None) => None,
    };
    let drugs = inline
        .map(|details| {
            details
                .iter()
                .filter_map(|d| Some((d.med_list_codg.clone()?, d.cnt?.scaled())))
                .collect()
        })
        .unwrap_or_default();
    Some(Settlement {
        person,
        institution,
        insured,
        treatment: text(envelope.mdtrtarea_admvs),
        kind,
        mdtrt_id: data.mdtrt_id.clone(),
        setl_id: None,
        amount: data.medfee_sumamt.unwrap_or_default(),
        invono: data.invono.clone().filter(|i| !i.is_empty()),
        bill,
        drugs,
        at_ms,
        msgid: envelope.msgid.clone().unwrap_or_default(),
    })
}

/// The admission a request asks for, before it is forwarded.
pub fn admission_of(key: &[u8], request: &Request, at_ms: i64) -> Option<Admission> {
    let RequestBody::Admission(input) = &request.input else {
        return None;
    };
    let data = &input.mdtrtinfo;
    let envelope = &request.envelope;
    let insured = text(envelope.insuplc_admdvs);
    let person = person_key(
        key,
        data.mdtrt_cert_type.as_ref().map(|t| t.code()),
        data.mdtrt_cert_no.as_ref().map(|s| s.expose()),
        data.psn_no.as_deref(),
        Some(&insured),
    )?;
    Some(Admission {
        person,
        institution: envelope.fixmedins_code.clone().unwrap_or_default(),
        insured,
        treatment: text(envelope.mdtrtarea_admvs),
        mdtrt_id: None,
        begin_ms: data.begntime.map_or(at_ms, DateTime::unix_millis),
        at_ms,
        msgid: envelope.msgid.clone().unwrap_or_default(),
    })
}

/// What an answered message tells supervision, if anything: only
/// successful answers (infcode 0) of the transactions the rules follow.
pub fn fact_of(
    key: &[u8],
    request: &Request,
    answer: &Answer,
    at_ms: i64,
    bill_of: impl Fn(&str, &str) -> Option<String>,
) -> Option<Fact> {
    if !answer.envelope.is_success() {
        return None;
    }
    let institution = || request.envelope.fixmedins_code.clone().unwrap_or_default();
    match (&request.input, &answer.output) {
        (RequestBody::Admission(_), Some(AnswerBody::Admission(o))) => {
            let mut admission = admission_of(key, request, at_ms)?;
            admission.mdtrt_id = o.data.mdtrt_id.clone();
            Some(Fact::Admission(admission))
        }
        (RequestBody::Discharge(d), _) => Some(Fact::Discharge {
            institution: institution(),
            mdtrt_id: d.dscginfo.mdtrt_id.clone()?,
            end_ms: d.dscginfo.endtime.map_or(at_ms, DateTime::unix_millis),
            at_ms,
        }),
        (RequestBody::AdmissionCancel(v), _) => Some(Fact::AdmissionCancel {
            institution: institution(),
            mdtrt_id: v.data.mdtrt_id.clone()?,
            at_ms,
        }),
        (
            RequestBody::OutpatientSettle(_)
            | RequestBody::InpatientSettle(_)
            | RequestBody::PharmacySettle(_),
            Some(
                AnswerBody::OutpatientSettle(o)
                | AnswerBody::InpatientSettle(o)
                | AnswerBody::PharmacySettle(o),
            ),
        ) => {
            let mut settlement = settlement_of(key, request, at_ms, bill_of)?;
            let info = &o.setlinfo;
            settlement.setl_id = info.setl_id.clone();
            if settlement.mdtrt_id.is_none() {
                settlement.mdtrt_id = info.mdtrt_id.clone();
            }
            if let Some(total) = info.medfee_sumamt {
                settlement.amount = total;
            }
            Some(Fact::Settlement(settlement))
        }
        (
            RequestBody::OutpatientSettleCancel(c)
            | RequestBody::InpatientSettleCancel(c)
            | RequestBody::PharmacySettleCancel(c),
            _,
        ) => Some(Fact::Cancel {
            institution: institution(),
            setl_id: c.data.setl_id.clone()?,
            at_ms,
        }),
        (RequestBody::Reversal(r), _) => Some(Fact::Reversal {
            institution: institution(),
            omsgid: r.data.omsgid.clone()?,
            at_ms,
        }),
        (RequestBody::OutpatientFeeUpload(u) | RequestBody::InpatientFeeUpload(u), _) => {
            let mdtrt_id = u.feedetail.first()?.mdtrt_id.clone()?;
            Some(Fact::FeeUpload {
                institution: institution(),
                mdtrt_id,
                lines: lines(&u.feedetail),
                at_ms,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_same_person_has_the_same_key_and_the_key_hides_the_number() {
        let key = [7u8; 32];
        let a = person_key(&key, Some("02"), Some("11010519491231002x"), None, None);
        let b = person_key(&key, Some("02"), Some(" 11010519491231002X"), None, None);
        assert_eq!(a, b);
        let a = a.unwrap_or_default();
        assert_eq!(a.len(), 64);
        assert!(!a.contains("110105"));
        let other = person_key(
            &[8u8; 32],
            Some("02"),
            Some("11010519491231002X"),
            None,
            None,
        );
        assert_ne!(Some(a), other);
    }

    #[test]
    fn a_bill_does_not_depend_on_the_order_of_its_lines() {
        let l = |code: &str, count| Line {
            code: code.into(),
            count,
            price: 100,
        };
        assert_eq!(bill(&[l("A", 1), l("B", 2)]), bill(&[l("B", 2), l("A", 1)]));
        assert_ne!(bill(&[l("A", 1)]), bill(&[l("A", 2)]));
        assert_eq!(bill(&[]), None);
    }
}
