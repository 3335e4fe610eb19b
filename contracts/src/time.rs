//! Times on the Asia/Shanghai clock (UTC+8, no daylight saving since 1991),
//! which every party to the interface uses.

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use std::fmt;

/// Why a time text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {expected} time")]
pub struct TimeError {
    /// The form that was expected, e.g. `yyyy-MM-dd HH:mm:ss`.
    pub expected: &'static str,
}

/// The offset of Asia/Shanghai.
pub fn shanghai() -> FixedOffset {
    // 8 hours east is always a valid offset; the match keeps this free of panics.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// "00" to "99", for [`push_padded`]: a two-digit field is one slice of it.
const PAIRS: &str = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// Appends `value` in decimal, zero-padded to `width` digits: what
/// `{:0width$}` writes, without the formatting machinery. The widths of
/// dates and times (2, 3 and 4) are written two digits at a time.
fn push_padded(out: &mut String, value: u32, width: usize) {
    let pair = |out: &mut String, v: u32| {
        let at = 2 * v as usize;
        out.push_str(&PAIRS[at..at + 2]);
    };
    match (width, value) {
        (2, 0..=99) => pair(out, value),
        (3, 0..=999) => {
            out.push(char::from(b'0' + (value / 100) as u8));
            pair(out, value % 100);
        }
        (4, 0..=9999) => {
            pair(out, value / 100);
            pair(out, value % 100);
        }
        _ => {
            let mut buf = [b'0'; 10];
            let mut rest = value;
            let mut start = buf.len();
            loop {
                start -= 1;
                buf[start] = b'0' + (rest % 10) as u8;
                rest /= 10;
                if rest == 0 {
                    break;
                }
            }
            for _ in buf.len() - start..width {
                out.push('0');
            }
            out.extend(buf[start..].iter().map(|&b| char::from(b)));
        }
    }
}

/// Appends a year as `{:04}` writes it.
fn push_year(out: &mut String, year: i32) {
    match u32::try_from(year) {
        Ok(year) => push_padded(out, year, 4),
        Err(_) => {
            use std::fmt::Write;
            let _ = write!(out, "{year:04}");
        }
    }
}

fn digits<const N: usize>(bytes: &[u8]) -> Option<u32> {
    if bytes.len() != N || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0')),
    )
}

/// Whether the bytes of `word` where `mask` has its high bits (0x80) are
/// all ASCII digits. XOR with '0' takes a digit to 0..=9; adding 0x76 sets
/// a byte's high bit exactly when it was above 9, the low seven bits added
/// alone so that no carry crosses into the next byte; the byte's own high
/// bit catches bytes from 0x80.
fn digits_at(word: u64, mask: u64) -> bool {
    let v = word ^ 0x3030_3030_3030_3030;
    let above_nine = (v & 0x7f7f_7f7f_7f7f_7f7f) + 0x7676_7676_7676_7676;
    (above_nine | v) & mask == 0
}

fn civil(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, mo, d)?.and_hms_milli_opt(h, mi, s, ms)
}

/// A calendar day (`brdy`, `stmt_begndate`, a clearing day).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(NaiveDate);

impl Date {
    /// From year, month and day.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        NaiveDate::from_ymd_opt(year, month, day).map(Date)
    }

    /// The chrono value.
    pub fn naive(self) -> NaiveDate {
        self.0
    }

    /// The day after.
    pub fn next(self) -> Option<Date> {
        self.0.succ_opt().map(Date)
    }

    /// Parses `yyyy-MM-dd`; also `yyyy-MM-dd HH:mm:ss` at midnight, which one platform sends for `brdy`.
    pub fn parse(text: &str) -> Result<Date, TimeError> {
        const EXPECTED: TimeError = TimeError {
            expected: "yyyy-MM-dd",
        };
        let b = text.as_bytes();
        let date_part = match b.len() {
            10 => b,
            19 if &b[10..] == b" 00:00:00" => &b[..10],
            _ => return Err(EXPECTED),
        };
        if date_part[4] != b'-' || date_part[7] != b'-' {
            return Err(EXPECTED);
        }
        let y = digits::<4>(&date_part[..4]).ok_or(EXPECTED)?;
        let m = digits::<2>(&date_part[5..7]).ok_or(EXPECTED)?;
        let d = digits::<2>(&date_part[8..10]).ok_or(EXPECTED)?;
        NaiveDate::from_ymd_opt(y as i32, m, d)
            .map(Date)
            .ok_or(EXPECTED)
    }

    /// Parses `yyyyMMdd`.
    pub fn parse_compact(text: &str) -> Result<Date, TimeError> {
        const EXPECTED: TimeError = TimeError {
            expected: "yyyyMMdd",
        };
        let b = text.as_bytes();
        if b.len() != 8 {
            return Err(EXPECTED);
        }
        let y = digits::<4>(&b[..4]).ok_or(EXPECTED)?;
        let m = digits::<2>(&b[4..6]).ok_or(EXPECTED)?;
        let d = digits::<2>(&b[6..8]).ok_or(EXPECTED)?;
        NaiveDate::from_ymd_opt(y as i32, m, d)
            .map(Date)
            .ok_or(EXPECTED)
    }

    /// `yyyyMMdd`.
    pub fn to_compact(self) -> String {
        let mut out = String::with_capacity(8);
        self.write_compact(&mut out);
        out
    }

    /// Appends `yyyyMMdd`.
    pub fn write_compact(self, out: &mut String) {
        push_year(out, self.0.year());
        push_padded(out, self.0.month(), 2);
        push_padded(out, self.0.day(), 2);
    }

    /// Appends `yyyy-MM-dd`, the national form (as [`fmt::Display`] writes it).
    pub fn write_national(self, out: &mut String) {
        push_year(out, self.0.year());
        out.push('-');
        push_padded(out, self.0.month(), 2);
        out.push('-');
        push_padded(out, self.0.day(), 2);
    }
}

impl fmt::Display for Date {
    /// `yyyy-MM-dd`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A time of day on the Shanghai clock, to the millisecond (`inf_time`,
/// `setl_time`, `refmsg_time`). Most fields carry seconds; `refmsg_time` and
/// `respond_time` carry milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime(NaiveDateTime);

impl DateTime {
    /// The current time on the Shanghai clock.
    pub fn now() -> DateTime {
        DateTime(Utc::now().with_timezone(&shanghai()).naive_local())
    }

    /// From the civil fields on the Shanghai clock.
    pub fn from_civil(
        y: i32,
        mo: u32,
        d: u32,
        h: u32,
        mi: u32,
        s: u32,
        ms: u32,
    ) -> Option<DateTime> {
        civil(u32::try_from(y).ok()?, mo, d, h, mi, s, ms).map(DateTime)
    }

    /// The chrono value (Shanghai wall clock).
    pub fn naive(self) -> NaiveDateTime {
        self.0
    }

    /// The instant as Unix milliseconds.
    pub fn unix_millis(self) -> i64 {
        match shanghai().from_local_datetime(&self.0).single() {
            Some(at) => at.timestamp_millis(),
            None => self.0.and_utc().timestamp_millis() - 8 * 3_600_000,
        }
    }

    /// From Unix milliseconds.
    pub fn from_unix_millis(millis: i64) -> Option<DateTime> {
        chrono::DateTime::from_timestamp_millis(millis)
            .map(|at| DateTime(at.with_timezone(&shanghai()).naive_local()))
    }

    /// The clearing day this time falls on.
    pub fn date(self) -> Date {
        Date(self.0.date())
    }

    /// The same time without its milliseconds.
    pub fn truncated_to_seconds(self) -> DateTime {
        DateTime(self.0.with_nanosecond(0).unwrap_or(self.0))
    }

    /// Milliseconds part.
    pub fn millis(self) -> u32 {
        self.0.nanosecond() / 1_000_000
    }

    /// Parses `yyyy-MM-dd HH:mm:ss` (the national form).
    pub fn parse(text: &str) -> Result<DateTime, TimeError> {
        const EXPECTED: TimeError = TimeError {
            expected: "yyyy-MM-dd HH:mm:ss",
        };
        // A fixed array, so that every index is known when compiled: this
        // runs for each row of each statement.
        let Ok(b) = <&[u8; 19]>::try_from(text.as_bytes()) else {
            return Err(EXPECTED);
        };
        if b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
            return Err(EXPECTED);
        }
        // Eight bytes at a time: "yyyy-MM-", "dd HH:mm", then "HH:mm:ss"
        // for the seconds; each mask marks a word's digit positions.
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        if !(digits_at(word(0), 0x0080_8000_8080_8080)
            && digits_at(word(8), 0x8080_0080_8000_8080)
            && digits_at(word(11), 0x8080_0000_0000_0000))
        {
            return Err(EXPECTED);
        }
        let digit = |at: usize| b[at].wrapping_sub(b'0');
        let two = |at: usize| u32::from(digit(at)) * 10 + u32::from(digit(at + 1));
        let (y, mo, d) = (two(0) * 100 + two(2), two(5), two(8));
        let (h, mi, s) = (two(11), two(14), two(17));
        civil(y, mo, d, h, mi, s, 0).map(DateTime).ok_or(EXPECTED)
    }

    /// Parses `yyyyMMddHHmmss` (14 digits) or `yyyyMMddHHmmssSSS` (17 digits).
    pub fn parse_compact(text: &str) -> Result<DateTime, TimeError> {
        const EXPECTED: TimeError = TimeError {
            expected: "yyyyMMddHHmmss[SSS]",
        };
        let b = text.as_bytes();
        if b.len() != 14 && b.len() != 17 {
            return Err(EXPECTED);
        }
        let ms = if b.len() == 17 {
            digits::<3>(&b[14..17])
        } else {
            Some(0)
        };
        let parts = (
            digits::<4>(&b[..4]),
            digits::<2>(&b[4..6]),
            digits::<2>(&b[6..8]),
            digits::<2>(&b[8..10]),
            digits::<2>(&b[10..12]),
            digits::<2>(&b[12..14]),
            ms,
        );
        match parts {
            (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s), Some(ms)) => {
                civil(y, mo, d, h, mi, s, ms).map(DateTime).ok_or(EXPECTED)
            }
            _ => Err(EXPECTED),
        }
    }

    /// `yyyyMMddHHmmss`.
    pub fn to_compact(self) -> String {
        let mut out = String::with_capacity(14);
        self.write_compact(&mut out);
        out
    }

    /// `yyyyMMddHHmmssSSS`.
    pub fn to_compact_millis(self) -> String {
        let mut out = String::with_capacity(17);
        self.write_compact_millis(&mut out);
        out
    }

    /// Appends `yyyyMMddHHmmss`.
    pub fn write_compact(self, out: &mut String) {
        let t = self.0;
        Date(t.date()).write_compact(out);
        push_padded(out, t.hour(), 2);
        push_padded(out, t.minute(), 2);
        push_padded(out, t.second(), 2);
    }

    /// Appends `yyyyMMddHHmmssSSS`.
    pub fn write_compact_millis(self, out: &mut String) {
        self.write_compact(out);
        push_padded(out, self.millis(), 3);
    }

    /// Appends `yyyy-MM-dd HH:mm:ss`, the national form (as [`fmt::Display`] writes it).
    pub fn write_national(self, out: &mut String) {
        let t = self.0;
        Date(t.date()).write_national(out);
        out.push(' ');
        push_padded(out, t.hour(), 2);
        out.push(':');
        push_padded(out, t.minute(), 2);
        out.push(':');
        push_padded(out, t.second(), 2);
    }
}

impl fmt::Display for DateTime {
    /// `yyyy-MM-dd HH:mm:ss`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

impl fmt::Debug for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self, self.millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_forms_are_the_formatted_ones() {
        let days = [(1, 1, 1), (999, 12, 31), (2021, 9, 24), (9999, 12, 31)];
        for (y, mo, d) in days {
            for (h, mi, s, ms) in [(0, 0, 0, 0), (8, 28, 27, 5), (23, 59, 59, 999)] {
                let date = Date::from_ymd(y, mo, d).unwrap_or_else(|| panic!("{y}-{mo}-{d}"));
                let t = civil(y as u32, mo, d, h, mi, s, ms)
                    .map(DateTime)
                    .unwrap_or_else(|| panic!("{y}-{mo}-{d}"));
                assert_eq!(date.to_compact(), format!("{y:04}{mo:02}{d:02}"));
                let mut national = String::new();
                date.write_national(&mut national);
                assert_eq!(national, date.to_string());
                let compact = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}");
                assert_eq!(t.to_compact(), compact);
                assert_eq!(t.to_compact_millis(), format!("{compact}{ms:03}"));
                let mut national = String::new();
                t.write_national(&mut national);
                assert_eq!(national, t.to_string());
            }
        }
    }

    #[test]
    fn padded_numbers_are_the_formatted_ones() {
        let values = (0..=12_000).chain([99_999, 123_456, 4_294_967_295]);
        for value in values {
            for width in 0..=6 {
                let mut out = String::from("x");
                push_padded(&mut out, value, width);
                assert_eq!(out, format!("x{value:0width$}"), "{value} in {width}");
            }
        }
    }

    #[test]
    fn national_and_compact_forms_agree() {
        let a = DateTime::parse("2021-09-24 08:28:27");
        let b = DateTime::parse_compact("20210924082827");
        assert_eq!(a, b);
        let t = DateTime::parse_compact("20210924082827123");
        assert_eq!(
            t.map(|t| (t.millis(), t.to_compact_millis())),
            Ok((123, "20210924082827123".into()))
        );
    }

    #[test]
    fn impossible_times_are_refused() {
        for bad in [
            "2021-02-29 00:00:00",
            "2021-13-01 00:00:00",
            "2021-09-24T08:28:27",
            "2021-09-24 24:00:00",
            "２０２１-09-24 08:28:27",
        ] {
            assert!(DateTime::parse(bad).is_err(), "{bad}");
        }
        assert!(Date::parse("1980-02-30").is_err());
        assert_eq!(
            Date::parse("1980-01-01 00:00:00"),
            Date::parse("1980-01-01")
        );
    }

    proptest::proptest! {
        /// The national form reads each text exactly as the compact reader
        /// reads the same digits without separators: the same time, or a
        /// refusal by both. Texts are well-formed times (days up to 31, so
        /// that some do not exist) with one byte or none replaced, so that
        /// nearly well-formed ones are common.
        #[test]
        fn national_reads_as_compact_does(
            (y, mo, d, h, mi, s) in (0u32..10_000, 0u32..14, 0u32..32, 0u32..25, 0u32..61, 0u32..61),
            at in 0usize..20,
            with in proptest::sample::select(b"0159:;/ -Ta\x7f".to_vec()),
            cut in proptest::bool::weighted(0.05),
        ) {
            let mut bytes = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}").into_bytes();
            if let Some(b) = bytes.get_mut(at) {
                *b = with;
            }
            if cut {
                bytes.truncate(at);
            }
            let text = String::from_utf8(bytes).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let b = text.as_bytes();
            let separated = b.len() == 19
                && [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')]
                    .iter()
                    .all(|&(at, c)| b[at] == c);
            let expected = if separated {
                let digits: String = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
                    .into_iter()
                    .map(|r| &text[r])
                    .collect();
                DateTime::parse_compact(&digits).ok()
            } else {
                None
            };
            proptest::prop_assert_eq!(DateTime::parse(&text).ok(), expected);
        }
    }

    #[test]
    fn clearing_day_follows_the_shanghai_clock() {
        // 2024-03-01 16:30 UTC is already 2024-03-02 00:30 in Shanghai.
        let utc_millis = 1_709_310_600_000;
        let t = DateTime::from_unix_millis(utc_millis);
        assert_eq!(
            t.map(|t| t.date().to_string()).as_deref(),
            Some("2024-03-02")
        );
        assert_eq!(t.map(DateTime::unix_millis), Some(utc_millis));
    }
}
