//! Checks on write (what the caller hands in) and on read (what a row holds).

use crate::sql::{Kind, COLUMNS, REFUSAL_COLUMNS};
use crate::{
    Answered, Entry, Finish, Key, LedgerError, Money, NewEntry, PsnNo, RecordedRefusal, Refusal,
    Reply, State, PSN_NO_MAX_CHARS,
};

/// The longest id, code or digest stored, in bytes.
pub(crate) const MAX_TEXT: usize = 128;
/// The longest rule name in `anomalies`.
pub(crate) const MAX_RULE: usize = 64;
/// The largest reply kept for replay, in bytes.
pub(crate) const MAX_REPLY: usize = 8 * 1024 * 1024;

fn invalid(message: String) -> LedgerError {
    LedgerError::Invalid(message)
}

/// Plain text: at most [`MAX_TEXT`] bytes, no control characters; `required` refuses empty.
fn text(field: &str, value: &str, required: bool) -> Result<(), LedgerError> {
    if required && value.is_empty() {
        return Err(invalid(format!("{field} is empty")));
    }
    if value.len() > MAX_TEXT {
        return Err(invalid(format!("{field} is longer than {MAX_TEXT} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!("{field} holds a control character")));
    }
    Ok(())
}

fn optional_text(field: &str, value: Option<&str>) -> Result<(), LedgerError> {
    match value {
        Some(value) => text(field, value, true),
        None => Ok(()),
    }
}

/// A person number: 1 to [`PSN_NO_MAX_CHARS`] characters (letters allowed),
/// no control characters. The message never quotes the value.
pub(crate) fn psn_no(value: &str) -> Result<(), LedgerError> {
    if value.is_empty() {
        return Err(invalid("psn_no is empty".into()));
    }
    if value.chars().count() > PSN_NO_MAX_CHARS {
        return Err(invalid(format!(
            "psn_no is longer than {PSN_NO_MAX_CHARS} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("psn_no holds a control character".into()));
    }
    Ok(())
}

fn is_infno(value: &str) -> bool {
    value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Checks what `begin` writes.
pub(crate) fn new_entry(entry: &NewEntry) -> Result<(), LedgerError> {
    text("caller", &entry.key.caller, true)?;
    text("msgid", &entry.key.msgid, true)?;
    if !is_infno(&entry.infno) {
        return Err(invalid("infno is not 4 digits".into()));
    }
    text("institution", &entry.institution, true)?;
    text("insured", &entry.insured, false)?;
    text("treatment", &entry.treatment, false)?;
    text("region", &entry.region, true)?;
    text("digest", &entry.digest, true)?;
    if !entry.digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("digest is not hex".into()));
    }
    optional_text("original_msgid", entry.original_msgid.as_deref())?;
    optional_text("cancels_setl_id", entry.cancels_setl_id.as_deref())?;
    if let Some(number) = &entry.psn_no {
        // A PsnNo is checked when made; checked again like every field written.
        psn_no(number.as_str())?;
    }
    Ok(())
}

/// Length of a SHA-256 digest in hex.
const SHA256_HEX: usize = 64;

/// Checks what `refuse` writes.
pub(crate) fn refusal(refusal: &Refusal) -> Result<(), LedgerError> {
    text("caller", &refusal.caller, true)?;
    optional_text("msgid", refusal.msgid.as_deref())?;
    if let Some(infno) = &refusal.infno {
        if !is_infno(infno) {
            return Err(invalid("infno is not 4 digits".into()));
        }
    }
    optional_text("institution", refusal.institution.as_deref())?;
    optional_text("insured", refusal.insured.as_deref())?;
    optional_text("treatment", refusal.treatment.as_deref())?;
    if !(100..=599).contains(&refusal.http_status) {
        return Err(invalid("http_status is not an HTTP status".into()));
    }
    if refusal.digest.len() != SHA256_HEX
        || !refusal
            .digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid(
            "digest is not a lower-case hex SHA-256 (64 characters)".into(),
        ));
    }
    Ok(())
}

/// A [`Finish`] checked and turned into column values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FinishRow {
    pub state: State,
    pub setl_id: Option<String>,
    pub mdtrt_id: Option<String>,
    pub insutype: Option<String>,
    pub med_type: Option<String>,
    pub clr_type: Option<String>,
    pub setl_time_ms: Option<i64>,
    pub medfee_sumamt: Option<i64>,
    pub fund_pay_sumamt: Option<i64>,
    pub acct_pay: Option<i64>,
    pub psn_cash_pay: Option<i64>,
    pub error_code: Option<i64>,
    pub anomalies: String,
    pub reply_status: i64,
    pub reply_media_type: String,
    pub reply: Vec<u8>,
    pub finished_at_ms: i64,
    /// Supervision's writes that go with this finish, in its transaction
    /// (see [`crate::Ledger::finish_observed`]); run only when the finish
    /// changed the entry, so a repeat adds nothing.
    pub feed: Vec<crate::supervision::Write>,
}

fn fen(field: &str, amount: Option<Money>) -> Result<Option<i64>, LedgerError> {
    match amount {
        None => Ok(None),
        Some(money) => Money::from_fen(money.fen())
            .map(|m| Some(m.fen()))
            .ok_or_else(|| invalid(format!("{field} is beyond the money range"))),
    }
}

fn rule_name(name: &str) -> Result<(), LedgerError> {
    if name.is_empty()
        || name.len() > MAX_RULE
        || name
            .chars()
            .any(|c| c == ',' || c.is_control() || c.is_whitespace())
    {
        return Err(invalid(format!(
            "anomaly rule name must be 1 to {MAX_RULE} bytes without commas, spaces or control characters"
        )));
    }
    Ok(())
}

/// Checks what `finish` writes.
pub(crate) fn finish(finish: Finish) -> Result<FinishRow, LedgerError> {
    let Finish {
        state,
        answered,
        reply,
    } = finish;
    if !state.is_finish() {
        return Err(LedgerError::Conflict(format!(
            "finish to {state}: only done, refused or unknown"
        )));
    }
    optional_text("setl_id", answered.setl_id.as_deref())?;
    optional_text("mdtrt_id", answered.mdtrt_id.as_deref())?;
    optional_text("insutype", answered.insutype.as_deref())?;
    optional_text("med_type", answered.med_type.as_deref())?;
    optional_text("clr_type", answered.clr_type.as_deref())?;
    for name in &answered.anomalies {
        rule_name(name)?;
    }
    text("reply_media_type", &reply.media_type, false)?;
    if reply.bytes.len() > MAX_REPLY {
        return Err(invalid(format!("reply is larger than {MAX_REPLY} bytes")));
    }
    Ok(FinishRow {
        state,
        medfee_sumamt: fen("medfee_sumamt", answered.medfee_sumamt)?,
        fund_pay_sumamt: fen("fund_pay_sumamt", answered.fund_pay_sumamt)?,
        acct_pay: fen("acct_pay", answered.acct_pay)?,
        psn_cash_pay: fen("psn_cash_pay", answered.psn_cash_pay)?,
        setl_id: answered.setl_id,
        mdtrt_id: answered.mdtrt_id,
        insutype: answered.insutype,
        med_type: answered.med_type,
        clr_type: answered.clr_type,
        setl_time_ms: answered.setl_time_ms,
        error_code: answered.error_code.map(i64::from),
        anomalies: answered.anomalies.join(","),
        reply_status: i64::from(reply.status),
        reply_media_type: reply.media_type,
        reply: reply.bytes,
        finished_at_ms: reply.finished_at_ms,
        feed: Vec::new(),
    })
}

/// Checks the target of `resolve`.
pub(crate) fn resolution(state: State) -> Result<(), LedgerError> {
    if state.is_resolution() {
        Ok(())
    } else {
        Err(LedgerError::Conflict(format!(
            "resolve to {state}: only reversed or confirmed"
        )))
    }
}

/// One column value as read from either backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Raw {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Option<Vec<u8>>),
    /// A value of the wrong type, or text that is not UTF-8.
    Wrong,
}

/// Reads a row's values in column order, naming the column in errors.
struct Cursor {
    columns: &'static [(&'static str, Kind)],
    values: std::vec::IntoIter<Raw>,
    at: usize,
    key: String,
}

impl Cursor {
    fn corrupt(&self, column: &str, what: &str) -> LedgerError {
        LedgerError::Corrupt(format!("{}: column {column} {what}", self.key))
    }

    fn next(&mut self) -> Result<(&'static str, Kind, Raw), LedgerError> {
        let (name, kind) = self
            .columns
            .get(self.at)
            .copied()
            .ok_or_else(|| LedgerError::Corrupt("row has more columns than expected".into()))?;
        self.at += 1;
        let value = self
            .values
            .next()
            .ok_or_else(|| LedgerError::Corrupt("row has fewer columns than expected".into()))?;
        Ok((name, kind, value))
    }

    fn text(&mut self) -> Result<(&'static str, Option<String>), LedgerError> {
        match self.next()? {
            (name, Kind::Text, Raw::Text(value)) => Ok((name, value)),
            (name, _, _) => Err(self.corrupt(name, "is not UTF-8 text")),
        }
    }

    fn int(&mut self) -> Result<(&'static str, Option<i64>), LedgerError> {
        match self.next()? {
            (name, Kind::Int, Raw::Int(value)) => Ok((name, value)),
            (name, _, _) => Err(self.corrupt(name, "is not an integer")),
        }
    }

    fn optional_bytes(&mut self) -> Result<Option<Vec<u8>>, LedgerError> {
        match self.next()? {
            (_, Kind::Bytes, Raw::Bytes(value)) => Ok(value),
            (name, _, _) => Err(self.corrupt(name, "is not bytes")),
        }
    }

    fn required_text(&mut self) -> Result<String, LedgerError> {
        match self.text()? {
            (_, Some(value)) => Ok(value),
            (name, None) => Err(self.corrupt(name, "is null")),
        }
    }

    fn optional_text(&mut self) -> Result<Option<String>, LedgerError> {
        Ok(self.text()?.1)
    }

    fn required_int(&mut self) -> Result<i64, LedgerError> {
        match self.int()? {
            (_, Some(value)) => Ok(value),
            (name, None) => Err(self.corrupt(name, "is null")),
        }
    }

    fn optional_int(&mut self) -> Result<Option<i64>, LedgerError> {
        Ok(self.int()?.1)
    }

    fn money(&mut self) -> Result<Option<Money>, LedgerError> {
        match self.int()? {
            (_, None) => Ok(None),
            (name, Some(fen)) => Money::from_fen(fen)
                .map(Some)
                .ok_or_else(|| self.corrupt(name, "is beyond the money range")),
        }
    }

    fn optional_u16(&mut self) -> Result<Option<u16>, LedgerError> {
        match self.int()? {
            (_, None) => Ok(None),
            (name, Some(value)) => u16::try_from(value)
                .map(Some)
                .map_err(|_| self.corrupt(name, "is out of range")),
        }
    }
}

/// Turns a row read in [`COLUMNS`] order into an [`Entry`], checking every
/// field and the consistency of state and fields.
pub(crate) fn entry(values: Vec<Raw>) -> Result<Entry, LedgerError> {
    if values.len() != COLUMNS.len() {
        return Err(LedgerError::Corrupt(format!(
            "row has {} columns, expected {}",
            values.len(),
            COLUMNS.len()
        )));
    }
    let mut row = Cursor {
        columns: COLUMNS,
        values: values.into_iter(),
        at: 0,
        key: String::from("entry ?"),
    };
    let caller = row.required_text()?;
    let msgid = row.required_text()?;
    let key = Key { caller, msgid };
    row.key = format!("entry {key}");
    let infno = row.required_text()?;
    if !is_infno(&infno) {
        return Err(row.corrupt("infno", "is not 4 digits"));
    }
    let institution = row.required_text()?;
    let insured = row.required_text()?;
    let treatment = row.required_text()?;
    let region = row.required_text()?;
    let digest = row.required_text()?;
    let original_msgid = row.optional_text()?;
    let cancels_setl_id = row.optional_text()?;
    let received_at_ms = row.required_int()?;
    let state_text = row.required_text()?;
    let state = State::parse(&state_text).ok_or_else(|| row.corrupt("state", "is not a state"))?;
    let setl_id = row.optional_text()?;
    let mdtrt_id = row.optional_text()?;
    let insutype = row.optional_text()?;
    let med_type = row.optional_text()?;
    let clr_type = row.optional_text()?;
    let setl_time_ms = row.optional_int()?;
    let medfee_sumamt = row.money()?;
    let fund_pay_sumamt = row.money()?;
    let acct_pay = row.money()?;
    let psn_cash_pay = row.money()?;
    let error_code = row.optional_u16()?;
    let anomalies_text = row.optional_text()?;
    let reply_status = row.optional_u16()?;
    let reply_media_type = row.optional_text()?;
    let reply_hex = row.optional_text()?;
    let finished_at_ms = row.optional_int()?;
    let resolved_at_ms = row.optional_int()?;
    let attempts_raw = row.required_int()?;
    let attempts =
        u32::try_from(attempts_raw).map_err(|_| row.corrupt("attempts", "is out of range"))?;
    let psn_no = match row.optional_text()? {
        None => None,
        Some(text) => {
            Some(PsnNo::new(text).map_err(|_| row.corrupt("psn_no", "is not a person number"))?)
        }
    };
    // Bytes since migration 6, hex text before it: one or the other.
    let reply = match (row.optional_bytes()?, reply_hex) {
        (Some(bytes), None) => Some(bytes),
        (None, Some(hex)) => Some(
            contracts::hex::decode(&hex).ok_or_else(|| row.corrupt("reply_hex", "is not hex"))?,
        ),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(row.corrupt("reply", "is stored as bytes and as hex")),
    };

    let anomalies: Vec<String> = match anomalies_text.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list.split(',').map(str::to_owned).collect(),
    };

    // The reply's columns and the anomalies are written together, by the
    // finish: all of them or none.
    let reply = match (reply_status, reply_media_type, reply, finished_at_ms) {
        (Some(status), Some(media_type), Some(bytes), Some(finished_at_ms))
            if anomalies_text.is_some() =>
        {
            Some(Reply {
                status,
                media_type,
                bytes,
                finished_at_ms,
            })
        }
        (None, None, None, None) if anomalies_text.is_none() => None,
        _ => return Err(row.corrupt("reply_*", "are partly set")),
    };
    let has_finish = reply.is_some();
    if state.is_finish() && !has_finish {
        return Err(row.corrupt("state", "is finished but the reply is missing"));
    }
    if state == State::Pending && has_finish {
        return Err(row.corrupt("state", "is pending but a reply is stored"));
    }
    if state.is_resolution() != resolved_at_ms.is_some() {
        return Err(row.corrupt("resolved_at_ms", "does not match the state"));
    }

    Ok(Entry {
        new: NewEntry {
            key,
            infno,
            institution,
            insured,
            treatment,
            region,
            digest,
            original_msgid,
            cancels_setl_id,
            psn_no,
            received_at_ms,
        },
        state,
        answered: Answered {
            setl_id,
            mdtrt_id,
            insutype,
            med_type,
            clr_type,
            setl_time_ms,
            medfee_sumamt,
            fund_pay_sumamt,
            acct_pay,
            psn_cash_pay,
            error_code,
            anomalies,
        },
        reply,
        resolved_at_ms,
        attempts,
    })
}

/// Turns a row read in [`REFUSAL_COLUMNS`] order into a [`RecordedRefusal`].
pub(crate) fn recorded_refusal(values: Vec<Raw>) -> Result<RecordedRefusal, LedgerError> {
    if values.len() != REFUSAL_COLUMNS.len() {
        return Err(LedgerError::Corrupt(format!(
            "refusal row has {} columns, expected {}",
            values.len(),
            REFUSAL_COLUMNS.len()
        )));
    }
    let mut row = Cursor {
        columns: REFUSAL_COLUMNS,
        values: values.into_iter(),
        at: 0,
        key: String::from("refusal ?"),
    };
    let id = row.required_text()?;
    row.key = format!("refusal {id}");
    let caller = row.required_text()?;
    let msgid = row.optional_text()?;
    let infno = row.optional_text()?;
    let institution = row.optional_text()?;
    let insured = row.optional_text()?;
    let treatment = row.optional_text()?;
    let error_code = row
        .optional_u16()?
        .ok_or_else(|| row.corrupt("error_code", "is null"))?;
    let http_status = row
        .optional_u16()?
        .ok_or_else(|| row.corrupt("http_status", "is null"))?;
    let digest = row.required_text()?;
    let received_at_ms = row.required_int()?;
    let refusal = Refusal {
        caller,
        msgid,
        infno,
        institution,
        insured,
        treatment,
        error_code,
        http_status,
        digest,
        received_at_ms,
    };
    self::refusal(&refusal).map_err(|e| LedgerError::Corrupt(format!("refusal {id}: {e}")))?;
    Ok(RecordedRefusal { id, refusal })
}

/// Reads a row's values in order, naming the table in errors (the clearing
/// and supervision tables; the journal has its own, column-naming reader).
pub(crate) struct Values {
    table: &'static str,
    values: std::vec::IntoIter<Raw>,
}

impl Values {
    /// The values of one row of `table`.
    pub(crate) fn new(table: &'static str, values: Vec<Raw>) -> Values {
        Values {
            table,
            values: values.into_iter(),
        }
    }

    fn corrupt(&self, what: &str) -> LedgerError {
        LedgerError::Corrupt(format!("{}: {what}", self.table))
    }

    /// A text column, null as `None`.
    pub(crate) fn text(&mut self) -> Result<Option<String>, LedgerError> {
        match self.values.next() {
            Some(Raw::Text(v)) => Ok(v),
            _ => Err(self.corrupt("a text column is not text")),
        }
    }

    /// A text column that may not be null.
    pub(crate) fn required(&mut self) -> Result<String, LedgerError> {
        self.text()?
            .ok_or_else(|| self.corrupt("a required column is null"))
    }

    /// An integer column, null as `None`.
    pub(crate) fn int(&mut self) -> Result<Option<i64>, LedgerError> {
        match self.values.next() {
            Some(Raw::Int(v)) => Ok(v),
            _ => Err(self.corrupt("an integer column is not an integer")),
        }
    }

    /// An integer column that may not be null.
    pub(crate) fn required_int(&mut self) -> Result<i64, LedgerError> {
        self.int()?
            .ok_or_else(|| self.corrupt("a required column is null"))
    }

    /// An amount in fen, null as `None`.
    pub(crate) fn money(&mut self) -> Result<Option<Money>, LedgerError> {
        match self.int()? {
            None => Ok(None),
            Some(fen) => Money::from_fen(fen)
                .map(Some)
                .ok_or_else(|| self.corrupt("an amount out of range")),
        }
    }
}

/// Checks a clearing day's text: `YYYY-MM-DD`.
pub(crate) fn day_text(field: &str, day: &str) -> Result<(), LedgerError> {
    let b = day.as_bytes();
    let ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Invalid(format!(
            "{field} {day:?} is not YYYY-MM-DD"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn columns_and_decoder_agree() {
        // A pending row of the right shape decodes.
        let values: Vec<Raw> = COLUMNS
            .iter()
            .map(|(name, kind)| match (*name, kind) {
                ("infno", _) => Raw::Text(Some("2207".into())),
                ("state", _) => Raw::Text(Some("pending".into())),
                ("received_at_ms" | "attempts", _) => Raw::Int(Some(0)),
                ("original_msgid" | "cancels_setl_id" | "psn_no", _) => Raw::Text(None),
                (_, Kind::Text) if !name.starts_with("reply") => Raw::Text(
                    [
                        "caller",
                        "msgid",
                        "institution",
                        "insured",
                        "treatment",
                        "region",
                        "digest",
                    ]
                    .contains(name)
                    .then(|| "x".to_string()),
                ),
                (_, Kind::Text) => Raw::Text(None),
                (_, Kind::Int) => Raw::Int(None),
                (_, Kind::Bytes) => Raw::Bytes(None),
            })
            .collect();
        let entry = entry(values).unwrap();
        assert_eq!(entry.state, State::Pending);
        assert_eq!(entry.attempts, 0);
        assert_eq!(entry.new.psn_no, None);
    }

    /// A row in `state`, finished (reply columns and anomalies set) or not,
    /// with the column `blank` NULL.
    fn row_of(state: &str, finished: bool, blank: Option<&str>) -> Vec<Raw> {
        COLUMNS
            .iter()
            .map(|(name, kind)| match (*name, kind) {
                (n, Kind::Text) if Some(n) == blank => Raw::Text(None),
                (n, Kind::Int) if Some(n) == blank => Raw::Int(None),
                (n, Kind::Bytes) if Some(n) == blank => Raw::Bytes(None),
                ("infno", _) => Raw::Text(Some("2207".into())),
                ("state", _) => Raw::Text(Some(state.into())),
                ("received_at_ms" | "attempts", _) => Raw::Int(Some(0)),
                ("reply_status", _) => Raw::Int(finished.then_some(200)),
                ("finished_at_ms", _) => Raw::Int(finished.then_some(7)),
                ("reply_media_type" | "anomalies", _) => {
                    Raw::Text(finished.then(|| "application/json".to_string()))
                }
                ("reply", _) => Raw::Bytes(finished.then(|| b"{}".to_vec())),
                (
                    "caller" | "msgid" | "institution" | "insured" | "treatment" | "region"
                    | "digest",
                    _,
                ) => Raw::Text(Some("x".into())),
                (_, Kind::Text) => Raw::Text(None),
                (_, Kind::Int) => Raw::Int(None),
                (_, Kind::Bytes) => Raw::Bytes(None),
            })
            .collect()
    }

    /// `values` with the column `name` set to `value`.
    fn with(mut values: Vec<Raw>, name: &str, value: Raw) -> Vec<Raw> {
        let at = COLUMNS.iter().position(|(n, _)| *n == name).unwrap();
        values[at] = value;
        values
    }

    #[test]
    fn a_reply_is_read_from_its_bytes_or_from_the_hex_written_before_migration_6() {
        let from_bytes = entry(row_of("done", true, None)).unwrap();
        let hex_only = with(
            row_of("done", true, Some("reply")),
            "reply_hex",
            Raw::Text(Some("7B7d".into())),
        );
        assert_eq!(entry(hex_only.clone()).unwrap(), from_bytes);
        let not_hex = with(hex_only, "reply_hex", Raw::Text(Some("7g".into())));
        let error = entry(not_hex).unwrap_err();
        assert!(
            error.to_string().contains("reply_hex is not hex"),
            "{error}"
        );
        let both = with(
            row_of("done", true, None),
            "reply_hex",
            Raw::Text(Some("7b7d".into())),
        );
        let error = entry(both).unwrap_err();
        assert!(error.to_string().contains("as bytes and as hex"), "{error}");
        let wrong = with(row_of("done", true, None), "reply", Raw::Wrong);
        let error = entry(wrong).unwrap_err();
        assert!(error.to_string().contains("reply is not bytes"), "{error}");
    }

    #[test]
    fn a_reply_is_read_whole_or_not_at_all() {
        let done = entry(row_of("done", true, None)).unwrap();
        assert_eq!(
            done.reply,
            Some(Reply {
                status: 200,
                media_type: "application/json".into(),
                bytes: b"{}".to_vec(),
                finished_at_ms: 7,
            })
        );
        assert_eq!(entry(row_of("pending", false, None)).unwrap().reply, None);
        for blank in [
            "reply_status",
            "reply_media_type",
            "reply",
            "finished_at_ms",
            "anomalies",
        ] {
            let error = entry(row_of("done", true, Some(blank))).unwrap_err();
            assert!(error.to_string().contains("partly set"), "{blank}: {error}");
        }
        let error = entry(row_of("done", false, None)).unwrap_err();
        assert!(error.to_string().contains("reply is missing"), "{error}");
        let error = entry(row_of("pending", true, None)).unwrap_err();
        assert!(error.to_string().contains("reply is stored"), "{error}");
    }

    #[test]
    fn person_numbers_are_checked_and_kept_out_of_debug() {
        for good in [
            "13000000000012345678",
            "BJ2024A0001",
            "京A1",
            &"9".repeat(30),
        ] {
            assert_eq!(PsnNo::new(good).unwrap().as_str(), good);
        }
        // Thirty characters, not bytes: 30 Chinese characters are 90 bytes.
        assert!(PsnNo::new("京".repeat(30)).is_ok());
        for bad in ["", &"9".repeat(31), "1300\n0001", "13\u{7f}00", "\t"] {
            assert!(
                matches!(PsnNo::new(bad), Err(LedgerError::Invalid(_))),
                "{:?} was accepted",
                bad.len()
            );
        }
        let number = PsnNo::new("13000000000012345678").unwrap();
        let shown = format!("{number:?} {:?}", Some(number.clone()));
        assert!(!shown.contains("1300"), "{shown}");
        // The error does not quote the value either.
        let error = PsnNo::new(format!("{}\n", "8".repeat(12))).unwrap_err();
        assert!(!error.to_string().contains("888"), "{error}");
    }
}
