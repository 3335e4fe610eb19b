//! The daily statement: one CSV row per settlement, cancel or reversal, as a
//! regional platform writes it for a clearing day and as the gateway exports
//! its own journal (`ledger export`). Both sides write the same columns, so
//! reconciliation compares like with like. The format is specified in
//! `contracts/statement.md`.
//!
//! [`Writer`] prints rows strictly (the header in [`COLUMNS`] order, yuan with
//! two decimals, `yyyy-MM-dd HH:mm:ss` on the Shanghai clock); [`Reader`]
//! streams rows from any `BufRead`, accepting the columns in any order and
//! columns of a platform's own (ignored), and refuses anything malformed with
//! the line and column named. Lines are bounded ([`MAX_LINE`]), so a hostile
//! upload cannot exhaust memory.

use crate::codes::Admdvs;
use crate::money::Money;
use crate::time::DateTime;
use std::fmt;
use std::io::{self, BufRead, Write};

/// The columns, in the order written. Readers accept any order.
pub const COLUMNS: [&str; 16] = [
    "setl_id",
    "msgid",
    "omsgid",
    "mdtrt_id",
    "fixmedins_code",
    "insuplc_admdvs",
    "mdtrtarea_admvs",
    "insutype",
    "med_type",
    "clr_type",
    "setl_time",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
    "psn_cash_pay",
    "state",
];

/// The longest line a reader accepts, in bytes.
pub const MAX_LINE: usize = 4096;

/// What a row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowState {
    /// A settlement took effect.
    Settled,
    /// A settlement was cancelled by the institution (2208, 2305, 2103).
    Cancelled,
    /// A settlement was reversed (2601), by the institution or by the gateway.
    Reversed,
}

impl RowState {
    /// The text written: `settled`, `cancelled`, `reversed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Settled => "settled",
            RowState::Cancelled => "cancelled",
            RowState::Reversed => "reversed",
        }
    }

    /// Parses the written text.
    pub fn parse(text: &str) -> Option<RowState> {
        [RowState::Settled, RowState::Cancelled, RowState::Reversed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// `true` for cancelled and reversed: the row undoes an earlier settlement.
    pub fn is_undo(self) -> bool {
        self != RowState::Settled
    }
}

impl fmt::Display for RowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a statement.
///
/// A `settled` row names the settlement (`setl_id`) and the message that made
/// it (`msgid`); its amounts are positive. A `cancelled` or `reversed` row
/// names the settlement it undoes (`setl_id`, and `omsgid`, the msgid of the
/// settling message), the undoing message (`msgid`), the time of the undo
/// (`setl_time`) and the undone amounts negated. A side that never learned a
/// figure leaves it empty (the gateway, for an outcome it never saw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The settlement's id; empty when the writer never learned it.
    pub setl_id: Option<String>,
    /// The message that made this row; empty when the writer never learned it.
    pub msgid: Option<String>,
    /// For an undo: the msgid of the settlement undone.
    pub omsgid: Option<String>,
    /// The visit.
    pub mdtrt_id: Option<String>,
    /// The institution that treated.
    pub fixmedins_code: String,
    /// The insured region.
    pub insuplc_admdvs: Admdvs,
    /// The treatment region.
    pub mdtrtarea_admvs: Admdvs,
    /// Insurance type code.
    pub insutype: Option<String>,
    /// Kind of care code.
    pub med_type: Option<String>,
    /// Clearing type code.
    pub clr_type: Option<String>,
    /// When the settlement, cancel or reversal took effect (Shanghai clock).
    pub setl_time: DateTime,
    /// Total medical fees.
    pub medfee_sumamt: Option<Money>,
    /// The funds' share.
    pub fund_pay_sumamt: Option<Money>,
    /// Paid from the personal account.
    pub acct_pay: Option<Money>,
    /// Paid in cash.
    pub psn_cash_pay: Option<Money>,
    /// What the row records.
    pub state: RowState,
}

impl Row {
    /// The msgid of the settling message: `msgid` for a settled row, `omsgid`
    /// for an undo. With `fixmedins_code` it identifies the settlement on
    /// both sides, also when one side never learned its `setl_id`.
    pub fn settling_msgid(&self) -> Option<&str> {
        match self.state {
            RowState::Settled => self.msgid.as_deref(),
            _ => self.omsgid.as_deref(),
        }
    }

    /// The four amounts, in column order.
    pub fn amounts(&self) -> [(&'static str, Option<Money>); 4] {
        [
            ("medfee_sumamt", self.medfee_sumamt),
            ("fund_pay_sumamt", self.fund_pay_sumamt),
            ("acct_pay", self.acct_pay),
            ("psn_cash_pay", self.psn_cash_pay),
        ]
    }
}

/// Why a statement was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct StatementError {
    /// 1-based line number.
    pub line: u64,
    /// 1-based column number (the field's position in the header); 0 when
    /// the whole line is at fault.
    pub column: usize,
    /// The column's name, when known.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

impl StatementError {
    fn line(line: u64, message: impl Into<String>) -> StatementError {
        StatementError {
            line,
            column: 0,
            field: None,
            message: message.into(),
        }
    }
}

/// Writes a statement: the header, then one line per row.
pub struct Writer<W: Write> {
    out: W,
    line: String,
}

impl<W: Write> Writer<W> {
    /// Writes the header to `out`.
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        writeln!(out, "{}", COLUMNS.join(","))?;
        Ok(Writer {
            out,
            line: String::with_capacity(256),
        })
    }

    /// Writes one row.
    pub fn write(&mut self, row: &Row) -> io::Result<()> {
        self.line.clear();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let money = |v: Option<Money>| v.map(Money::to_yuan_string).unwrap_or_default();
        let fields: [String; 16] = [
            text(&row.setl_id),
            text(&row.msgid),
            text(&row.omsgid),
            text(&row.mdtrt_id),
            row.fixmedins_code.clone(),
            row.insuplc_admdvs.to_string(),
            row.mdtrtarea_admvs.to_string(),
            text(&row.insutype),
            text(&row.med_type),
            text(&row.clr_type),
            row.setl_time.to_string(),
            money(row.medfee_sumamt),
            money(row.fund_pay_sumamt),
            money(row.acct_pay),
            money(row.psn_cash_pay),
            row.state.as_str().to_owned(),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            quote_into(&mut self.line, field);
        }
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }

    /// Flushes and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// RFC 4180 quoting: only when the field needs it.
fn quote_into(line: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&field.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(field);
    }
}

/// A row borrowed from the reader's line: what [`Reader::next_ref`] yields
/// without allocating. [`RowRef::to_row`] makes it owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef<'a> {
    /// See [`Row::setl_id`].
    pub setl_id: Option<&'a str>,
    /// See [`Row::msgid`].
    pub msgid: Option<&'a str>,
    /// See [`Row::omsgid`].
    pub omsgid: Option<&'a str>,
    /// See [`Row::mdtrt_id`].
    pub mdtrt_id: Option<&'a str>,
    /// See [`Row::fixmedins_code`].
    pub fixmedins_code: &'a str,
    /// See [`Row::insuplc_admdvs`].
    pub insuplc_admdvs: Admdvs,
    /// See [`Row::mdtrtarea_admvs`].
    pub mdtrtarea_admvs: Admdvs,
    /// See [`Row::insutype`].
    pub insutype: Option<&'a str>,
    /// See [`Row::med_type`].
    pub med_type: Option<&'a str>,
    /// See [`Row::clr_type`].
    pub clr_type: Option<&'a str>,
    /// See [`Row::setl_time`].
    pub setl_time: DateTime,
    /// See [`Row::medfee_sumamt`].
    pub medfee_sumamt: Option<Money>,
    /// See [`Row::fund_pay_sumamt`].
    pub fund_pay_sumamt: Option<Money>,
    /// See [`Row::acct_pay`].
    pub acct_pay: Option<Money>,
    /// See [`Row::psn_cash_pay`].
    pub psn_cash_pay: Option<Money>,
    /// See [`Row::state`].
    pub state: RowState,
}

impl<'a> RowRef<'a> {
    /// The owned row.
    pub fn to_row(&self) -> Row {
        let own = |v: Option<&str>| v.map(str::to_owned);
        Row {
            setl_id: own(self.setl_id),
            msgid: own(self.msgid),
            omsgid: own(self.omsgid),
            mdtrt_id: own(self.mdtrt_id),
            fixmedins_code: self.fixmedins_code.to_owned(),
            insuplc_admdvs: self.insuplc_admdvs,
            mdtrtarea_admvs: self.mdtrtarea_admvs,
            insutype: own(self.insutype),
            med_type: own(self.med_type),
            clr_type: own(self.clr_type),
            setl_time: self.setl_time,
            medfee_sumamt: self.medfee_sumamt,
            fund_pay_sumamt: self.fund_pay_sumamt,
            acct_pay: self.acct_pay,
            psn_cash_pay: self.psn_cash_pay,
            state: self.state,
        }
    }

    /// See [`Row::settling_msgid`].
    pub fn settling_msgid(&self) -> Option<&'a str> {
        match self.state {
            RowState::Settled => self.msgid,
            _ => self.omsgid,
        }
    }
}

impl Row {
    /// The row as borrowed.
    pub fn as_ref(&self) -> RowRef<'_> {
        RowRef {
            setl_id: self.setl_id.as_deref(),
            msgid: self.msgid.as_deref(),
            omsgid: self.omsgid.as_deref(),
            mdtrt_id: self.mdtrt_id.as_deref(),
            fixmedins_code: &self.fixmedins_code,
            insuplc_admdvs: self.insuplc_admdvs,
            mdtrtarea_admvs: self.mdtrtarea_admvs,
            insutype: self.insutype.as_deref(),
            med_type: self.med_type.as_deref(),
            clr_type: self.clr_type.as_deref(),
            setl_time: self.setl_time,
            medfee_sumamt: self.medfee_sumamt,
            fund_pay_sumamt: self.fund_pay_sumamt,
            acct_pay: self.acct_pay,
            psn_cash_pay: self.psn_cash_pay,
            state: self.state,
        }
    }
}

/// Sixteen bytes at a time: the commas and the line feeds (bit `i` for
/// byte `i`), and the bytes that are printable and not a quote
/// (`0x20..=0x7e` but `"`), as the same kind of mask: `0xffff` when all
/// are. With SSE2 (every x86-64 processor), one compare per question.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn scan16(bytes: [u8; 16]) -> Scan {
    use safe_arch::{
        bitandnot_m128i, bitor_m128i, cmp_eq_mask_i8_m128i, cmp_gt_mask_i8_m128i, m128i,
        move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let v = m128i::from(bytes);
    let is = |byte: u8| cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(byte as i8));
    // Above 0x1f as a signed byte: 0x20..=0x7f (0x80..=0xff are negative).
    let at_least_space = cmp_gt_mask_i8_m128i(v, set_splat_i8_m128i(0x1f));
    let usual = bitandnot_m128i(bitor_m128i(is(0x7f), is(b'"')), at_least_space);
    Scan {
        commas: move_mask_i8_m128i(is(b',')) as u32,
        feeds: move_mask_i8_m128i(is(b'\n')) as u32,
        usual: move_mask_i8_m128i(usual) as u32,
    }
}

/// What [`scan16`] finds in sixteen bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    commas: u32,
    feeds: u32,
    usual: u32,
}

/// [`scan16`] byte by byte: where SSE2 is not, and to check it.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
fn scan16_bytes(bytes: [u8; 16]) -> Scan {
    let mask = |test: &dyn Fn(u8) -> bool| {
        bytes
            .iter()
            .enumerate()
            .fold(0, |mask, (i, &b)| mask | u32::from(test(b)) << i)
    };
    Scan {
        commas: mask(&|b| b == b','),
        feeds: mask(&|b| b == b'\n'),
        usual: mask(&|b| (0x20..0x7f).contains(&b) && b != b'"'),
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
use scan16_bytes as scan16;

/// Splits a line without quotes into field spans, 16 bytes at a time (a
/// statement has millions of lines); `None` when the line has a quote.
/// Also says whether the line is printable ASCII throughout (see
/// [`printable_ascii`]).
fn split_plain(line: &[u8], spans: &mut Vec<(usize, usize)>) -> Option<bool> {
    let mut start = 0;
    let mut usual = 0xffff;
    let mut split = |mut commas: u32, base: usize, spans: &mut Vec<(usize, usize)>| {
        while commas != 0 {
            let at = base + commas.trailing_zeros() as usize;
            spans.push((start, at));
            start = at + 1;
            commas &= commas - 1;
        }
    };
    let len = line.len();
    let (blocks, rest) = line.as_chunks::<16>();
    for (n, &block) in blocks.iter().enumerate() {
        let scan = scan16(block);
        usual &= scan.usual;
        split(scan.commas, 16 * n, spans);
    }
    if !rest.is_empty() {
        // The last bytes as the end of the line's last 16 (those before
        // them are looked at twice, harmlessly, but split once); a line
        // shorter than that padded with spaces (printable, neither comma
        // nor quote).
        let last = line.last_chunk::<16>().copied().unwrap_or_else(|| {
            let mut bytes = [b' '; 16];
            bytes[16 - len..].copy_from_slice(line);
            bytes
        });
        let scan = scan16(last);
        usual &= scan.usual;
        split(scan.commas >> (16 - rest.len()), len - rest.len(), spans);
    }
    spans.push((start, len));
    if usual == 0xffff {
        return Some(true);
    }
    // A quote, or unprintable: which, byte by byte (rare).
    (!line.contains(&b'"')).then_some(false)
}

/// Splits one CSV line (without its line end) into field spans. Without a
/// quote on the line (the common case) the spans point into the line itself
/// and nothing is copied; otherwise RFC 4180 quoting is undone into
/// `unquoted` and the spans point there. Returns whether they do, and
/// whether the text the spans point into is printable ASCII throughout.
fn split_line(
    line: &str,
    number: u64,
    spans: &mut Vec<(usize, usize)>,
    unquoted: &mut String,
) -> Result<(bool, bool), StatementError> {
    spans.clear();
    if let Some(printable) = split_plain(line.as_bytes(), spans) {
        return Ok((false, printable));
    }
    spans.clear();
    unquoted.clear();
    let mut start = 0;
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    let fail = |column: usize, message: &str| StatementError {
        line: number,
        column,
        field: None,
        message: message.into(),
    };
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    unquoted.push('"');
                    chars.next();
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err(fail(spans.len() + 1, "text after a closing quote"));
                    }
                }
            } else {
                unquoted.push(c);
            }
        } else if c == ',' {
            spans.push((start, unquoted.len()));
            start = unquoted.len();
            at_start = true;
            continue;
        } else if c == '"' && at_start {
            quoted = true;
        } else if c == '"' {
            return Err(fail(spans.len() + 1, "a quote inside an unquoted field"));
        } else {
            unquoted.push(c);
        }
        at_start = false;
    }
    if quoted {
        return Err(fail(
            spans.len() + 1,
            "a quoted field that does not end on its line",
        ));
    }
    spans.push((start, unquoted.len()));
    Ok((true, printable_ascii(unquoted)))
}

/// Where each column is in a statement's lines, from its header: enough to
/// parse any single line of that statement (e.g. on another thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    positions: [usize; 16],
    width: usize,
}

impl Layout {
    /// Reads a header line (without its line end; a byte-order mark is ignored).
    pub fn from_header(line: &[u8]) -> Result<Layout, StatementError> {
        let text = std::str::from_utf8(line)
            .map_err(|_| StatementError::line(1, "not UTF-8"))?
            .trim_start_matches('\u{feff}');
        let mut spans = Vec::new();
        let mut unquoted = String::new();
        let (in_unquoted, _) = split_line(text, 1, &mut spans, &mut unquoted)?;
        let source = if in_unquoted { unquoted.as_str() } else { text };
        let mut positions = [usize::MAX; 16];
        for (at, &(from, to)) in spans.iter().enumerate() {
            let name = source[from..to].trim();
            if let Some(i) = COLUMNS.iter().position(|c| *c == name) {
                if positions[i] != usize::MAX {
                    return Err(StatementError {
                        line: 1,
                        column: at + 1,
                        field: Some(COLUMNS[i]),
                        message: format!("column {} appears twice", COLUMNS[i]),
                    });
                }
                positions[i] = at;
            }
        }
        if let Some(i) = positions.iter().position(|&p| p == usize::MAX) {
            return Err(StatementError::line(
                1,
                format!("the header lacks column {}", COLUMNS[i]),
            ));
        }
        Ok(Layout {
            positions,
            width: spans.len(),
        })
    }

    /// The 1-based column of `name`.
    pub fn column(&self, name: &str) -> usize {
        COLUMNS
            .iter()
            .position(|c| *c == name)
            .map_or(0, |i| self.positions[i] + 1)
    }

    /// Parses one line (without its line end) numbered `number`; `spans` and
    /// `unquoted` are scratch space the caller keeps between calls. `Ok(None)`
    /// for a blank line.
    #[inline]
    pub fn parse<'a>(
        &self,
        line: &'a [u8],
        number: u64,
        spans: &mut Vec<(usize, usize)>,
        unquoted: &'a mut String,
    ) -> Result<Option<RowRef<'a>>, StatementError> {
        if line.len() > MAX_LINE {
            return Err(StatementError::line(
                number,
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let text =
            std::str::from_utf8(line).map_err(|_| StatementError::line(number, "not UTF-8"))?;
        let (in_unquoted, printable) = split_line(text, number, spans, unquoted)?;
        if spans.len() != self.width {
            return Err(StatementError::line(
                number,
                format!("{} fields where the header has {}", spans.len(), self.width),
            ));
        }
        let source: &'a str = if in_unquoted { unquoted } else { text };
        row_of(source, spans, &self.positions, number, printable).map(Some)
    }

    /// Parses whole lines: `text` starts at a line's start and ends after a
    /// line feed or at the end of the statement. Calls `each` with every
    /// non-blank line's row, its number (the first line's is `first_line`)
    /// and its place in `text` (from its start to its line feed or the end;
    /// a carriage return before the feed is in it). Stops at the first
    /// malformed line (with its error) or the first error of `each`.
    ///
    /// The same rows and the same errors as [`Layout::parse`] line by line,
    /// with less work per line (a statement has millions): the text is
    /// checked for UTF-8 once, and scanned 16 bytes at a time for commas,
    /// line feeds and unusual bytes together; a line of printable ASCII
    /// with the header's number of fields is read by [`plain_row`] straight
    /// from the text. Any other line, and any line that one turns down, goes
    /// to [`Layout::parse`].
    pub fn parse_lines<E: From<StatementError>>(
        &self,
        text: &[u8],
        first_line: u64,
        mut each: impl FnMut(&RowRef<'_>, u64, usize, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        /// The most commas of a line read straight from the text.
        const MOST: usize = 63;
        let whole = std::str::from_utf8(text).ok();
        let mut spans = Vec::new();
        let mut unquoted = String::new();
        // One line, `from..to` in `text`. When `plain`, field `k` is
        // `starts[k]..starts[k + 1] - 1` (the last `starts` is `to + 1`).
        let mut line = |from: usize, to: usize, number: u64, starts: &[usize], plain: bool| {
            if let (Some(whole), true) = (whole, plain) {
                let span = |k: usize| Some((*starts.get(k)?, starts.get(k + 1)? - 1));
                if starts.len() == self.width + 1 && to - from <= MAX_LINE {
                    if let Some(row) = plain_row(whole, span, &self.positions) {
                        #[cfg(test)]
                        tests::STRAIGHT_ROWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return each(&row, number, from, to);
                    }
                }
            }
            let mut bytes = text.get(from..to).unwrap_or_default();
            if let [rest @ .., b'\r'] = bytes {
                bytes = rest;
            }
            match self.parse(bytes, number, &mut spans, &mut unquoted)? {
                Some(row) => each(&row, number, from, to),
                None => Ok(()),
            }
        };
        // Where the fields of the line being scanned start, and one more.
        let mut starts = [0usize; MOST + 2];
        let (mut commas, mut unusual, mut number) = (0usize, false, first_line);
        let mut block = |bytes: [u8; 16], base: usize| -> Result<(), E> {
            let scan = scan16(bytes);
            let mut events = scan.commas | scan.feeds | (!scan.usual & !scan.feeds & 0xffff);
            while events != 0 {
                let at = events.trailing_zeros();
                let pos = base + at as usize;
                if scan.commas >> at & 1 != 0 {
                    commas += 1;
                    if let Some(start) = starts.get_mut(commas) {
                        *start = pos + 1;
                    }
                } else if scan.feeds >> at & 1 != 0 {
                    let plain = !unusual && commas <= MOST;
                    let kept = commas.min(MOST) + 1;
                    starts[kept] = pos + 1;
                    line(starts[0], pos, number, &starts[..=kept], plain)?;
                    (commas, unusual, number) = (0, false, number + 1);
                    starts[0] = pos + 1;
                } else {
                    unusual = true;
                }
                events &= events - 1;
            }
            Ok(())
        };
        let (blocks, rest) = text.as_chunks::<16>();
        for (n, &bytes) in blocks.iter().enumerate() {
            block(bytes, 16 * n)?;
        }
        // The last bytes, padded with spaces (printable, neither comma nor
        // feed), and a line feed after a last line that has none.
        let mut last = [b' '; 16];
        last[..rest.len()].copy_from_slice(rest);
        if text.last().is_some_and(|&b| b != b'\n') {
            last[rest.len()] = b'\n';
        }
        block(last, text.len() - rest.len())
    }
}

/// Reads a statement row by row. The first line must be a header naming
/// every column of [`COLUMNS`] once, in any order; other columns are ignored.
pub struct Reader<R: BufRead> {
    input: R,
    line: u64,
    /// For each of [`COLUMNS`], its position in the header.
    positions: [usize; 16],
    width: usize,
    buffer: Vec<u8>,
    spans: Vec<(usize, usize)>,
    unquoted: String,
    in_unquoted: bool,
    printable: bool,
    consumed: u64,
    row_offset: u64,
}

impl<R: BufRead> fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").field("line", &self.line).finish()
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes into `buffer`, without its
/// line end, counting the bytes consumed into `consumed`. `Ok(false)` at the
/// end of the input.
fn read_bounded(
    input: &mut impl BufRead,
    buffer: &mut Vec<u8>,
    number: u64,
    consumed: &mut u64,
) -> Result<bool, StatementError> {
    buffer.clear();
    loop {
        let available = input
            .fill_buf()
            .map_err(|e| StatementError::line(number, format!("cannot read: {e}")))?;
        if available.is_empty() {
            return Ok(!buffer.is_empty());
        }
        let (taken, ended) = match memchr::memchr(b'\n', available) {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        let room = MAX_LINE + 2 - buffer.len().min(MAX_LINE + 2);
        buffer.extend_from_slice(&available[..taken.min(room)]);
        input.consume(taken);
        *consumed += taken as u64;
        if buffer.len() > MAX_LINE + 1 {
            return Err(StatementError::line(
                number,
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
        if ended {
            buffer.pop();
            if buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
            return Ok(true);
        }
    }
}

impl<R: BufRead> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Reader<R>, StatementError> {
        let mut buffer = Vec::new();
        let mut consumed = 0;
        if !read_bounded(&mut input, &mut buffer, 1, &mut consumed)? {
            return Err(StatementError::line(1, "empty statement: no header"));
        }
        let layout = Layout::from_header(&buffer)?;
        let (positions, width) = (layout.positions, layout.width);
        let unquoted = String::new();
        Ok(Reader {
            input,
            line: 1,
            positions,
            width,
            buffer,
            spans: Vec::new(),
            unquoted,
            in_unquoted: false,
            printable: false,
            consumed,
            row_offset: consumed,
        })
    }

    /// The statement's layout (from its header).
    pub fn layout(&self) -> Layout {
        Layout {
            positions: self.positions,
            width: self.width,
        }
    }

    /// The number of the last line read.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Where the last row read starts, in bytes from the start of the input
    /// (so a caller can read that one row again, after the header).
    pub fn row_offset(&self) -> u64 {
        self.row_offset
    }

    /// The 1-based column of `name` in this statement's header.
    pub fn column(&self, name: &str) -> usize {
        COLUMNS
            .iter()
            .position(|c| *c == name)
            .map_or(0, |i| self.positions[i] + 1)
    }

    /// The next row; `Ok(None)` at the end. Blank lines are skipped.
    pub fn next_row(&mut self) -> Result<Option<Row>, StatementError> {
        if !self.advance()? {
            return Ok(None);
        }
        self.current().map(|row| Some(row.to_row()))
    }

    /// Moves to the next non-blank line and splits it into fields;
    /// `Ok(false)` at the end. [`Reader::current`] then reads the row
    /// without allocating.
    pub fn advance(&mut self) -> Result<bool, StatementError> {
        loop {
            self.line += 1;
            let number = self.line;
            self.row_offset = self.consumed;
            if !read_bounded(
                &mut self.input,
                &mut self.buffer,
                number,
                &mut self.consumed,
            )? {
                return Ok(false);
            }
            if self.buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = std::str::from_utf8(&self.buffer)
                .map_err(|_| StatementError::line(number, "not UTF-8"))?;
            (self.in_unquoted, self.printable) =
                split_line(text, number, &mut self.spans, &mut self.unquoted)?;
            if self.spans.len() != self.width {
                return Err(StatementError::line(
                    number,
                    format!(
                        "{} fields where the header has {}",
                        self.spans.len(),
                        self.width
                    ),
                ));
            }
            return Ok(true);
        }
    }

    /// The row of the line [`Reader::advance`] moved to, borrowed from the reader.
    pub fn current(&self) -> Result<RowRef<'_>, StatementError> {
        let number = self.line;
        let source = if self.in_unquoted {
            self.unquoted.as_str()
        } else {
            std::str::from_utf8(&self.buffer)
                .map_err(|_| StatementError::line(number, "not UTF-8"))?
        };
        if self.spans.len() != self.width {
            return Err(StatementError::line(number, "no row read"));
        }
        row_of(source, &self.spans, &self.positions, number, self.printable)
    }
}

/// Whether `text` is printable ASCII throughout (no control character, no
/// byte above `~`): one pass without early exits, which the compiler turns
/// into vector instructions.
fn printable_ascii(text: &str) -> bool {
    text.as_bytes().chunks(64).all(|chunk| {
        chunk
            .iter()
            .fold(true, |ok, &b| ok & (0x20..0x7f).contains(&b))
    })
}

/// Builds and checks one row from its fields (inlined: a row is large, and
/// returned through two calls it would be copied twice). A line of
/// printable ASCII throughout (nearly every line) is read by [`plain_row`];
/// any other, and any line that one turns down, by [`checked_row`], which
/// says what is wrong.
#[inline(always)]
fn row_of<'a>(
    source: &'a str,
    spans: &[(usize, usize)],
    positions: &[usize; 16],
    number: u64,
    printable: bool,
) -> Result<RowRef<'a>, StatementError> {
    if printable {
        if let Some(row) = plain_row(source, |at| spans.get(at).copied(), positions) {
            return Ok(row);
        }
    }
    checked_row(source, spans, positions, number, printable)
}

/// The row of a line of printable ASCII throughout (its fields where
/// `span` says, by position in the header, in `source`), when every field
/// is well formed; `None` when any is not. It accepts exactly the rows
/// [`checked_row`] accepts from such a line, and gives the same row, but
/// builds no error on the way: each step is an `Option` kept in registers
/// rather than a `Result` carrying a [`StatementError`], which made the
/// checks per field most of a statement's parsing time.
#[inline(always)]
fn plain_row<'a>(
    source: &'a str,
    span: impl Fn(usize) -> Option<(usize, usize)>,
    positions: &[usize; 16],
) -> Option<RowRef<'a>> {
    // Every field of the row, trimmed and bounded, before any is read.
    let mut fields = [""; 16];
    for (i, field) in fields.iter_mut().enumerate() {
        let (from, to) = span(positions[i])?;
        let text = source.get(from..to)?;
        // Of the white space `trim_ascii` takes off, a printable line can
        // only have the space; and most fields have none at either end.
        let text = match text.as_bytes() {
            [b' ', ..] | [.., b' '] => text.trim_matches(' '),
            _ => text,
        };
        if text.len() > 64 {
            return None;
        }
        *field = text;
    }
    let optional = |i: usize| Some(fields[i]).filter(|text| !text.is_empty());
    let required = optional;
    let region = |i: usize| Admdvs::parse(required(i)?).ok();
    let money = |i: usize| match optional(i) {
        None => Some(None),
        Some(text) => Money::parse_yuan(text).ok().map(Some),
    };
    let state = RowState::parse(required(15)?)?;
    let setl_time = DateTime::parse(required(10)?).ok()?;
    let row = assemble(
        state,
        setl_time,
        |i| Ok(optional(i)),
        |i| required(i).ok_or(()),
        |i| region(i).ok_or(()),
        |i| money(i).ok_or(()),
    )
    .ok()?;
    row.settling_msgid()?;
    Some(row)
}

/// A row from its state, its time and readers of its other fields by
/// column (those of [`plain_row`] or of [`checked_row`]): the one place
/// that says which column each field comes from. Fields are read left to
/// right; the first reader's error is the row's.
#[inline(always)]
fn assemble<'a, E>(
    state: RowState,
    setl_time: DateTime,
    optional: impl Fn(usize) -> Result<Option<&'a str>, E>,
    required: impl Fn(usize) -> Result<&'a str, E>,
    region: impl Fn(usize) -> Result<Admdvs, E>,
    money: impl Fn(usize) -> Result<Option<Money>, E>,
) -> Result<RowRef<'a>, E> {
    Ok(RowRef {
        setl_id: optional(0)?,
        msgid: optional(1)?,
        omsgid: optional(2)?,
        mdtrt_id: optional(3)?,
        fixmedins_code: required(4)?,
        insuplc_admdvs: region(5)?,
        mdtrtarea_admvs: region(6)?,
        insutype: optional(7)?,
        med_type: optional(8)?,
        clr_type: optional(9)?,
        setl_time,
        medfee_sumamt: money(11)?,
        fund_pay_sumamt: money(12)?,
        acct_pay: money(13)?,
        psn_cash_pay: money(14)?,
        state,
    })
}

/// Builds and checks one row from its fields, naming the first field at
/// fault (the column order of the checks: state, time, then left to right).
#[inline(never)]
fn checked_row<'a>(
    source: &'a str,
    spans: &[(usize, usize)],
    positions: &[usize; 16],
    number: u64,
    printable: bool,
) -> Result<RowRef<'a>, StatementError> {
    let at = |i: usize| -> &'a str {
        let (from, to) = spans[positions[i]];
        source[from..to].trim_ascii()
    };
    let fail = |i: usize, message: String| StatementError {
        line: number,
        column: positions[i] + 1,
        field: Some(COLUMNS[i]),
        message: format!("{}: {message}", COLUMNS[i]),
    };
    // A line of printable ASCII throughout (nearly every line, as the
    // splitting found) has no field to check for control characters.
    let optional = |i: usize| -> Result<Option<&'a str>, StatementError> {
        let text = at(i);
        if text.len() > 64 {
            return Err(fail(i, "longer than 64 characters".into()));
        }
        // ASCII controls by byte; C1 controls (U+0080–U+009F) only where
        // the text is not plain ASCII.
        let bytes = text.as_bytes();
        if !printable
            && (bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
                || (!bytes.is_ascii() && text.chars().any(char::is_control)))
        {
            return Err(fail(i, "control character".into()));
        }
        Ok((!text.is_empty()).then_some(text))
    };
    let required = |i: usize| -> Result<&'a str, StatementError> {
        optional(i)?.ok_or_else(|| fail(i, "required".into()))
    };
    let region = |i: usize| -> Result<Admdvs, StatementError> {
        Admdvs::parse(required(i)?).map_err(|e| fail(i, e.to_string()))
    };
    let money = |i: usize| -> Result<Option<Money>, StatementError> {
        match optional(i)? {
            None => Ok(None),
            Some(text) => Money::parse_yuan(text)
                .map(Some)
                .map_err(|e| fail(i, format!("{e} ({text:?})"))),
        }
    };
    let state_text = required(15)?;
    let state = RowState::parse(state_text).ok_or_else(|| {
        fail(
            15,
            format!("{state_text:?} is not settled, cancelled or reversed"),
        )
    })?;
    let setl_time = DateTime::parse(required(10)?).map_err(|e| fail(10, e.to_string()))?;
    let row = assemble(state, setl_time, optional, required, region, money)?;
    if row.settling_msgid().is_none() {
        let (i, what) = match state {
            RowState::Settled => (1, "a settled row needs msgid"),
            _ => (2, "a cancelled or reversed row needs omsgid"),
        };
        return Err(fail(i, what.into()));
    }
    Ok(row)
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Row, StatementError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn row(state: RowState) -> Row {
        Row {
            setl_id: Some("S1".into()),
            msgid: Some("H1100000000012025112610000001".into()),
            omsgid: state
                .is_undo()
                .then(|| "H1100000000012025112610000000".into()),
            mdtrt_id: Some("M, \"odd\"".into()),
            fixmedins_code: "H11000000001".into(),
            insuplc_admdvs: Admdvs::parse("130600").unwrap(),
            mdtrtarea_admvs: Admdvs::parse("110000").unwrap(),
            insutype: Some("310".into()),
            med_type: Some("11".into()),
            clr_type: None,
            setl_time: DateTime::parse("2026-11-26 09:30:00").unwrap(),
            medfee_sumamt: Money::from_fen(-12_345),
            fund_pay_sumamt: Money::from_fen(-10_000),
            acct_pay: Money::from_fen(0),
            psn_cash_pay: None,
            state,
        }
    }

    #[test]
    fn rows_round_trip_through_text() {
        let mut writer = Writer::new(Vec::new()).unwrap();
        let rows = [
            row(RowState::Settled),
            row(RowState::Cancelled),
            row(RowState::Reversed),
        ];
        for r in &rows {
            writer.write(r).unwrap();
        }
        let bytes = writer.finish().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("setl_id,msgid,omsgid,"));
        assert!(text.contains(",-123.45,-100.00,0.00,,"));
        let read: Vec<Row> = Reader::new(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, rows);
    }

    #[test]
    fn columns_in_any_order_and_extra_columns() {
        let mut header: Vec<&str> = COLUMNS.iter().rev().copied().collect();
        header.push("their_own");
        let mut line: Vec<&str> = vec![
            "settled",
            "1.5",
            "0",
            "10",
            "11.50",
            "2026-11-26 00:00:00",
            "",
            "14",
            "390",
            "120000",
            "110000",
            "H1",
            "",
            "",
            "M1",
            "S9",
        ];
        line.push("x");
        let text = format!("{}\r\n{}\r\n\n", header.join(","), line.join(","));
        let rows: Vec<Row> = Reader::new(text.as_bytes())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].setl_id.as_deref(), Some("S9"));
        assert_eq!(rows[0].msgid.as_deref(), Some("M1"));
        assert_eq!(rows[0].medfee_sumamt, Money::from_fen(1150));
        assert_eq!(rows[0].psn_cash_pay, Money::from_fen(150));
    }

    fn refusal(body: &str) -> StatementError {
        let text = format!("{}\n{body}\n", COLUMNS.join(","));
        Reader::new(text.as_bytes())
            .unwrap()
            .find_map(Result::err)
            .expect("refused")
    }

    #[test]
    fn malformed_rows_name_line_and_column() {
        let good = "S,M,,D,H1,110000,120000,310,11,,2026-11-26 10:00:00,1.00,1.00,0,0,settled";
        let bad_amount = good.replace(",1.00,1.00,", ",1.00,1.001,");
        let e = refusal(&format!("{good}\n{bad_amount}"));
        assert_eq!(
            (e.line, e.column, e.field),
            (3, 13, Some("fund_pay_sumamt"))
        );
        let e = refusal(&good.replace("settled", "done"));
        assert_eq!((e.line, e.column), (2, 16));
        let e = refusal(&good.replace("2026-11-26 10:00:00", "2026-11-31 10:00:00"));
        assert_eq!((e.line, e.column), (2, 11));
        let e = refusal(&good.replace("110000", "11"));
        assert_eq!(e.field, Some("insuplc_admdvs"));
        let e = refusal(&good.replace("S,M,", "S,,"));
        assert_eq!(e.field, Some("msgid"));
        let e = refusal(&format!("{good},extra"));
        assert_eq!((e.line, e.column), (2, 0));
        let e = refusal("\"S,M");
        assert_eq!(e.line, 2);
        let e = refusal(&"x".repeat(MAX_LINE + 10));
        assert!(e.message.contains("longer"));
    }

    #[test]
    fn control_characters_are_refused_in_their_column_and_text_elsewhere_is_kept() {
        let good = "S,M,,D,H1,110000,120000,310,11,,2026-11-26 10:00:00,1.00,1.00,0,0,settled";
        for control in ["\u{1}", "\u{7f}", "\u{85}", "\t"] {
            let e = refusal(&good.replace(",D,", &format!(",D{control}x,")));
            assert_eq!(
                (e.line, e.column, e.field),
                (2, 4, Some("mdtrt_id")),
                "{control:?}"
            );
            assert!(e.message.contains("control"), "{e}");
        }
        // Chinese text, in a column of the statement's or of the platform's own, is fine.
        let text = format!(
            "{},备注\n{},门诊\n",
            COLUMNS.join(","),
            good.replace(",D,", ",就诊1,")
        );
        let rows: Vec<Row> = Reader::new(text.as_bytes())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0].mdtrt_id.as_deref(), Some("就诊1"));
    }

    /// The splitting 16 bytes at a time finds the same fields as splitting
    /// at every comma, says printable exactly when [`printable_ascii`] does,
    /// and leaves lines with quotes to the full parser.
    #[test]
    fn plain_lines_are_split_exactly() {
        let mut spans = Vec::new();
        let alphabet = [b'a', b',', b' ', b'~', 0x1f, 0x7f, 0x20, b'9'];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        // Short lines, and lines around one and two 64-byte blocks.
        for len in (0..40usize).chain([63, 64, 65, 71, 72, 73, 100, 127, 128, 129, 200]) {
            for _ in 0..200 {
                let line: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // A quote rarely (one byte in 512): most lines have none.
                        match (seed % 512) as usize {
                            511 => b'"',
                            k => alphabet[k % 8],
                        }
                    })
                    .collect();
                let text = std::str::from_utf8(&line).unwrap();
                spans.clear();
                let printable = split_plain(&line, &mut spans);
                if line.contains(&b'"') {
                    assert_eq!(printable, None, "{line:?}");
                    continue;
                }
                let mut expected = Vec::new();
                let mut start = 0;
                for (at, &b) in line.iter().enumerate() {
                    if b == b',' {
                        expected.push((start, at));
                        start = at + 1;
                    }
                }
                expected.push((start, len));
                assert_eq!(spans, expected, "{line:?}");
                assert_eq!(printable, Some(printable_ascii(text)), "{line:?}");
            }
        }
        assert_eq!(split_plain(b"a,\"b\",c", &mut spans), None);
        spans.clear();
        assert_eq!(
            split_plain("a,\u{e9},c".as_bytes(), &mut spans),
            Some(false)
        );
        spans.clear();
        assert_eq!(split_plain(b"0123456\x80", &mut spans), Some(false));
    }

    /// The 16-byte scan agrees with its byte-by-byte form on every byte
    /// value in every position.
    #[test]
    fn the_scan_agrees_byte_by_byte() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..20_000u32 {
            let mut bytes = [0u8; 16];
            for b in &mut bytes {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Every value in the first rounds, then mostly printable.
                *b = if round < 4096 || seed.is_multiple_of(4) {
                    (seed >> 8) as u8
                } else {
                    [b'a', b',', b'9', b' ', b'~', b'"'][(seed >> 8) as usize % 6]
                };
            }
            if round < 256 {
                bytes[round as usize % 16] = round as u8;
            }
            assert_eq!(scan16(bytes), scan16_bytes(bytes), "{bytes:?}");
        }
    }

    #[test]
    fn printable_ascii_is_decided_over_the_whole_text() {
        let long = "a".repeat(200);
        assert!(printable_ascii(&long));
        assert!(printable_ascii(""));
        for at in [0, 63, 64, 199] {
            for bad in ['\u{1f}', '\u{7f}', 'é'] {
                let mut text: Vec<char> = long.chars().collect();
                text[at] = bad;
                let text: String = text.into_iter().collect();
                assert!(!printable_ascii(&text), "{at} {bad:?}");
            }
        }
    }

    #[test]
    fn headers_are_checked() {
        let e = Reader::new(&b""[..]).unwrap_err();
        assert_eq!(e.line, 1);
        let e = Reader::new(&b"setl_id,msgid\n"[..]).unwrap_err();
        assert!(e.message.contains("omsgid"), "{e}");
        let twice = format!("{},msgid\n", COLUMNS.join(","));
        let e = Reader::new(twice.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.column), (1, 17));
    }

    /// Lines the property below saw read by the short path.
    static PLAIN_ROWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static TOGETHER_ROWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    /// Rows `parse_lines` read straight from the text.
    pub(super) static STRAIGHT_ROWS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn the_property_reads_rows_by_both_paths() {
        // Not a property: makes sure the one below compares rows, not only refusals.
        the_plain_path_agrees_with_the_checks();
        assert!(PLAIN_ROWS.load(std::sync::atomic::Ordering::Relaxed) > 10);
        lines_read_together_as_one_by_one();
        assert!(TOGETHER_ROWS.load(std::sync::atomic::Ordering::Relaxed) > 10);
        assert!(STRAIGHT_ROWS.load(std::sync::atomic::Ordering::Relaxed) > 5);
    }

    /// Values a field of a printable line may hold: well formed for some
    /// column, malformed for others, at and beyond the length bound.
    fn field_values() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just(String::new()),
            Just(" ".to_owned()),
            Just("settled".to_owned()),
            Just("cancelled".to_owned()),
            Just(" reversed ".to_owned()),
            Just("Settled".to_owned()),
            Just("110000".to_owned()),
            Just("130102".to_owned()),
            Just("011000".to_owned()),
            Just("11000".to_owned()),
            Just("2026-11-26 08:30:00".to_owned()),
            Just("2026-02-30 08:30:00".to_owned()),
            Just("2026-11-26T08:30:00".to_owned()),
            Just("12.50".to_owned()),
            Just("-0.01".to_owned()),
            Just("-0.00".to_owned()),
            Just("1000000000000.01".to_owned()),
            Just("12.5".to_owned()),
            Just("1e3".to_owned()),
            Just("H12010100789".to_owned()),
            Just("x".repeat(64)),
            Just("x".repeat(65)),
            "[ -+!-~]{0,12}",
        ]
    }

    proptest::proptest! {
        /// The short path for printable lines accepts exactly what the checks
        /// accept, and reads the same row.
        #[test]
        fn the_plain_path_agrees_with_the_checks(
            changes in proptest::collection::vec(proptest::option::weighted(0.1, field_values()), 16),
            order in proptest::sample::subsequence((0..16usize).collect::<Vec<_>>(), 16),
            rotate in 0..16usize,
        ) {
            // A well-formed row, some of its fields replaced.
            let valid = [
                "1200000000000000000001", "H11000001485000000000000000001", "", "D000000000001",
                "H11000001485", "120000", "110000", "390", "11", "11", "2026-11-26 00:00:01",
                "12444.01", "7466.40", "500.00", "4477.61", "settled",
            ];
            let fields: Vec<String> = changes
                .into_iter()
                .zip(valid)
                .map(|(change, valid)| change.unwrap_or_else(|| valid.to_owned()))
                .collect();
            // Columns in another order than COLUMNS: positions matter.
            let mut order = order;
            order.rotate_left(rotate);
            let mut positions = [0usize; 16];
            let mut cells = vec![String::new(); 16];
            for (i, &at) in order.iter().enumerate() {
                positions[i] = at;
                cells[at] = fields[i].replace([',', '"'], ";");
            }
            let line = cells.join(",");
            proptest::prop_assume!(printable_ascii(&line));
            let mut spans = Vec::new();
            let mut unquoted = String::new();
            let (in_unquoted, printable) = split_line(&line, 2, &mut spans, &mut unquoted).unwrap();
            proptest::prop_assert!(!in_unquoted && printable);
            let plain = plain_row(&line, |at| spans.get(at).copied(), &positions);
            let checked = checked_row(&line, &spans, &positions, 2, true);
            match (&plain, &checked) {
                (Some(a), Ok(b)) => {
                    proptest::prop_assert_eq!(a, b);
                    PLAIN_ROWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                (None, Err(_)) => {}
                _ => proptest::prop_assert!(false, "plain {:?} but checked {:?} for {:?}", plain, checked, line),
            }
        }

        /// Lines read together (`parse_lines`) give what they give read one
        /// by one (`parse`): the same rows, numbers and places, or the same
        /// first refusal.
        #[test]
        fn lines_read_together_as_one_by_one(
            lines in proptest::collection::vec(
                (proptest::collection::vec(proptest::option::weighted(0.1, field_values()), 16), 0..12usize),
                0..12,
            ),
            rotate in 0..17usize,
            last_feed in proptest::bool::ANY,
        ) {
            let valid = [
                "1200000000000000000001", "H11000001485000000000000000001", "", "D000000000001",
                "H11000001485", "120000", "110000", "390", "11", "11", "2026-11-26 00:00:01",
                "12444.01", "7466.40", "500.00", "4477.61", "settled",
            ];
            // The columns rotated, and one of the platform's own.
            let mut names: Vec<&str> = COLUMNS.iter().copied().chain(["note"]).collect();
            names.rotate_left(rotate);
            let layout = Layout::from_header(names.join(",").as_bytes()).unwrap();
            let mut text = Vec::new();
            for (changes, kind) in lines {
                let cells: Vec<String> = names
                    .iter()
                    .map(|name| match COLUMNS.iter().position(|c| c == name) {
                        Some(i) => changes[i].clone().unwrap_or_else(|| valid[i].to_owned()),
                        None => "x".to_owned(),
                    })
                    .collect();
                let mut line = cells.join(",").into_bytes();
                match kind {
                    0 => line.clear(),
                    1 => line = b"   ".to_vec(),
                    2 => line.push(b'\r'),
                    3 => {
                        line.splice(0..0, *b"\"a,\"\"b\",");
                    }
                    4 => line.push(0xff),
                    5 => line.extend_from_slice(&[b','; 70]),
                    6 => line.extend_from_slice(&vec![b'y'; MAX_LINE]),
                    7 => line.push(0x7f),
                    8 => {
                        // The first field quoted: the same row.
                        let comma = line.iter().position(|&b| b == b',').unwrap_or(line.len());
                        line.insert(comma, b'"');
                        line.insert(0, b'"');
                    }
                    _ => {}
                }
                text.extend_from_slice(&line);
                text.push(b'\n');
            }
            if !last_feed {
                text.pop();
            }
            let mut one_by_one = Vec::new();
            let mut spans = Vec::new();
            let mut start = 0;
            let mut number = 7;
            let expected = loop {
                if start >= text.len() {
                    break Ok(one_by_one);
                }
                let end = text[start..].iter().position(|&b| b == b'\n').map_or(text.len(), |at| start + at);
                let mut line = &text[start..end];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let mut unquoted = String::new();
                match layout.parse(line, number, &mut spans, &mut unquoted) {
                    Ok(Some(row)) => {
                        one_by_one.push((row.to_row(), number, start, end));
                        // Rows compared, also those before a refusal.
                        TOGETHER_ROWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(None) => {}
                    Err(e) => break Err(e),
                }
                start = end + 1;
                number += 1;
            };
            let mut together = Vec::new();
            let got = layout
                .parse_lines(&text, 7, |row, number, from, to| {
                    together.push((row.to_row(), number, from, to));
                    Ok::<(), StatementError>(())
                })
                .map(|()| together);
            proptest::prop_assert_eq!(got, expected);
        }

        #[test]
        fn arbitrary_input_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut text = format!("{}\n", COLUMNS.join(",")).into_bytes();
            text.extend_from_slice(&body);
            if let Ok(reader) = Reader::new(&text[..]) {
                for row in reader.take(100) {
                    let _ = row;
                }
            }
        }
    }
}
