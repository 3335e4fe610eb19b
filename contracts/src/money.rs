//! Exact decimal numbers: money in integer fen, and the fixed-point kinds the
//! national interface uses for prices, quantities, ratios and ages.
//!
//! Nothing here ever passes through floating point. Text is parsed digit by
//! digit; a value with more significant decimals than its kind allows is an
//! error, never rounded. Trailing zeros past the scale (`1200.000`) denote the
//! same value and are accepted.

use std::fmt;

/// Why a decimal text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Empty text.
    #[error("empty number")]
    Empty,
    /// A character that is not an ASCII digit where a digit was expected
    /// (this also refuses exponents, `NaN`, `Infinity` and full-width digits).
    #[error("not a plain decimal number")]
    Syntax,
    /// More significant decimals than the kind allows.
    #[error("more than {0} decimals")]
    TooPrecise(u32),
    /// Beyond the kind's range.
    #[error("out of range")]
    OutOfRange,
    /// `-0`, `-0.00`: a sign on zero is refused as ambiguous.
    #[error("negative zero")]
    NegativeZero,
}

/// Parses plain decimal text (`-12.5`, `9`, `1200.000`) into an integer scaled by
/// `10^scale`. `max_abs` bounds the scaled magnitude.
pub fn parse_scaled(text: &str, scale: u32, max_abs: i64) -> Result<i64, DecimalError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(DecimalError::Empty);
    }
    let (negative, rest) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let (int_part, frac_part) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (&rest[..dot], Some(&rest[dot + 1..])),
        None => (rest, None),
    };
    if int_part.is_empty() || !int_part.iter().all(u8::is_ascii_digit) {
        return Err(DecimalError::Syntax);
    }
    // JSON's own rule, applied everywhere: no superfluous leading zeros.
    if int_part.len() > 1 && int_part[0] == b'0' {
        return Err(DecimalError::Syntax);
    }
    let mut value: i64 = 0;
    for &digit in int_part {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or(DecimalError::OutOfRange)?;
    }
    let mut decimals_taken = 0u32;
    if let Some(frac) = frac_part {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return Err(DecimalError::Syntax);
        }
        for (index, &digit) in frac.iter().enumerate() {
            if index as u32 >= scale {
                if digit != b'0' {
                    return Err(DecimalError::TooPrecise(scale));
                }
                continue;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(digit - b'0')))
                .ok_or(DecimalError::OutOfRange)?;
            decimals_taken += 1;
        }
    }
    for _ in decimals_taken..scale {
        value = value.checked_mul(10).ok_or(DecimalError::OutOfRange)?;
    }
    if value > max_abs {
        return Err(DecimalError::OutOfRange);
    }
    if negative {
        if value == 0 {
            return Err(DecimalError::NegativeZero);
        }
        value = -value;
    }
    Ok(value)
}

/// Writes `value / 10^scale` with exactly `scale` decimals (none and no
/// point for scale 0), from a digit buffer rather than the formatting
/// machinery: every amount of every message goes through here.
pub fn write_scaled(out: &mut impl fmt::Write, value: i64, scale: u32) -> fmt::Result {
    let magnitude = value.unsigned_abs();
    if value < 0 {
        out.write_char('-')?;
    }
    // The digits of the magnitude, at least `scale + 1` of them (zeros in
    // front): the whole part then the decimals. A u64 has at most 20 digits.
    let width = scale as usize + 1;
    if width <= 20 {
        let mut buf = [b'0'; 20];
        let mut rest = magnitude;
        let mut start = buf.len();
        while rest > 0 {
            start -= 1;
            buf[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let start = start.min(buf.len() - width);
        let point = buf.len() - scale as usize;
        // ASCII digits only: both halves are UTF-8.
        if let (Ok(whole), Ok(decimals)) = (
            std::str::from_utf8(&buf[start..point]),
            std::str::from_utf8(&buf[point..]),
        ) {
            out.write_str(whole)?;
            if scale == 0 {
                return Ok(());
            }
            out.write_char('.')?;
            return out.write_str(decimals);
        }
    }
    let divisor = 10u64.pow(scale);
    write!(
        out,
        "{}.{:0width$}",
        magnitude / divisor,
        magnitude % divisor,
        width = scale as usize
    )
}

/// The common form of yuan text, `[-]digits.dd` with at most 13 whole
/// digits and no superfluous leading zero, in fen, without the general
/// parser's checks per digit (statements hold millions of amounts); `None`
/// for any other text, out-of-range amounts and `-0.00`, which
/// [`parse_scaled`] then accepts or refuses as it always does.
#[inline]
fn plain_yuan(text: &[u8]) -> Option<i64> {
    let (negative, rest) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    let n = rest.len();
    if !(4..=16).contains(&n) || rest[n - 3] != b'.' || (n > 4 && rest[0] == b'0') {
        return None;
    }
    let digit = |byte: u8| byte.is_ascii_digit().then(|| i64::from(byte - b'0'));
    let mut fen = 0i64;
    // At most 15 digits: no overflow.
    for &byte in &rest[..n - 3] {
        fen = fen * 10 + digit(byte)?;
    }
    fen = fen * 100 + digit(rest[n - 2])? * 10 + digit(rest[n - 1])?;
    if fen > Money::MAX_ABS_FEN || (negative && fen == 0) {
        return None;
    }
    Some(if negative { -fen } else { fen })
}

/// An amount of money in integer fen (分), the smallest unit of the yuan.
///
/// The range is ±10^12 yuan. Arithmetic is checked: an overflow is a bug, and
/// the checked operations say so instead of wrapping.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero yuan.
    pub const ZERO: Money = Money(0);
    /// The largest magnitude accepted, in fen: 10^12 yuan.
    pub const MAX_ABS_FEN: i64 = 100_000_000_000_000;

    /// An amount from fen. `None` beyond the range.
    pub fn from_fen(fen: i64) -> Option<Money> {
        (fen.unsigned_abs() <= Self::MAX_ABS_FEN as u64).then_some(Money(fen))
    }

    /// The amount in fen.
    pub fn fen(self) -> i64 {
        self.0
    }

    /// Parses yuan text with at most two significant decimals: `9`, `12.5`, `-296.20`, `1200.000`.
    #[inline]
    pub fn parse_yuan(text: &str) -> Result<Money, DecimalError> {
        match plain_yuan(text.as_bytes()) {
            Some(fen) => Ok(Money(fen)),
            None => parse_scaled(text, 2, Self::MAX_ABS_FEN).map(Money),
        }
    }

    /// Parses integer fen text: `1250`, `-30`.
    pub fn parse_fen(text: &str) -> Result<Money, DecimalError> {
        parse_scaled(text, 0, Self::MAX_ABS_FEN).map(Money)
    }

    /// The amount as yuan text with exactly two decimals: `12.50`, `-0.05`.
    pub fn to_yuan_string(self) -> String {
        let mut text = String::with_capacity(16);
        let _ = write_scaled(&mut text, self.0, 2);
        text
    }

    /// Sum, `None` when out of range.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).and_then(Money::from_fen)
    }

    /// Difference, `None` when out of range.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).and_then(Money::from_fen)
    }

    /// The negated amount (range is symmetric, so this cannot fail).
    pub fn negated(self) -> Money {
        Money(-self.0)
    }

    /// Sums amounts, `None` on overflow of the range.
    pub fn sum<I: IntoIterator<Item = Money>>(items: I) -> Option<Money> {
        items
            .into_iter()
            .try_fold(Money::ZERO, |acc, item| acc.checked_add(item))
    }

    /// Appends yuan with two decimals (as [`fmt::Display`] writes them).
    pub fn write_to(self, out: &mut String) {
        let _ = write_scaled(out, self.0, 2);
    }
}

impl fmt::Display for Money {
    /// Yuan with two decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, 2)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money(")?;
        write_scaled(f, self.0, 2)?;
        write!(f, ")")
    }
}

/// An exact fixed-point number with `SCALE` decimals, for the national
/// interface's non-money decimals; `TAG` keeps kinds of equal scale apart. See [`Price`], [`Quantity`], [`Ratio`], [`Age`].
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fixed<const SCALE: u32, const TAG: u8>(i64);

impl<const SCALE: u32, const TAG: u8> Fixed<SCALE, TAG> {
    /// The largest scaled magnitude accepted: 10^16 units of the last decimal.
    pub const MAX_ABS_SCALED: i64 = 10_000_000_000_000_000;

    /// From the scaled integer (`Price::from_scaled(8_333_333)` is 8.333333).
    pub fn from_scaled(scaled: i64) -> Option<Self> {
        (scaled.unsigned_abs() <= Self::MAX_ABS_SCALED as u64).then_some(Fixed(scaled))
    }

    /// The scaled integer.
    pub fn scaled(self) -> i64 {
        self.0
    }

    /// Appends the number with its `SCALE` decimals (as [`fmt::Display`] writes it).
    pub fn write_to(self, out: &mut String) {
        let _ = write_scaled(out, self.0, SCALE);
    }

    /// Parses decimal text with at most `SCALE` significant decimals.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        parse_scaled(text, SCALE, Self::MAX_ABS_SCALED).map(Fixed)
    }
}

impl<const SCALE: u32, const TAG: u8> fmt::Display for Fixed<SCALE, TAG> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, SCALE)
    }
}

impl<const SCALE: u32, const TAG: u8> fmt::Debug for Fixed<SCALE, TAG> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, self.0, SCALE)
    }
}

/// A unit price (`pric`, `pric_uplmt_amt`): 6 decimals, (16,6) in the standard.
pub type Price = Fixed<6, 0>;
/// A quantity (`cnt`): 4 decimals, negative for a reversed fee line.
pub type Quantity = Fixed<4, 1>;
/// A ratio (`selfpay_prop`, `pool_prop_selfpay`): 4 decimals.
pub type Ratio = Fixed<4, 2>;
/// An age in years (`age`): 1 decimal.
pub type Age = Fixed<1, 3>;

#[cfg(test)]
mod tests {
    use super::*;

    /// What the formatting machinery writes for `value / 10^scale`.
    fn reference(value: i64, scale: u32) -> String {
        let divisor = 10u64.pow(scale);
        let m = value.unsigned_abs();
        let sign = if value < 0 { "-" } else { "" };
        if scale == 0 {
            format!("{sign}{m}")
        } else {
            format!(
                "{sign}{}.{:0w$}",
                m / divisor,
                m % divisor,
                w = scale as usize
            )
        }
    }

    #[test]
    fn write_scaled_writes_what_the_format_writes() {
        let values = [
            0,
            1,
            -1,
            9,
            10,
            99,
            100,
            -100,
            10_020,
            -10_020,
            123_456_789,
            Money::MAX_ABS_FEN,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ];
        for value in values {
            for scale in 0..=19 {
                let mut out = String::new();
                write_scaled(&mut out, value, scale).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(out, reference(value, scale), "{value} scale {scale}");
            }
        }
    }

    #[test]
    fn plain_yuan_leaves_the_unusual_to_the_general_parser() {
        for (text, fen) in [
            ("0.05", Some(5)),
            ("-12.50", Some(-1250)),
            ("1000000000000.00", Some(Money::MAX_ABS_FEN)),
        ] {
            assert_eq!(plain_yuan(text.as_bytes()), fen, "{text}");
        }
        for text in [
            "-0.00",
            "00.50",
            "1000000000000.01",
            "1.5",
            "+1.00",
            " 1.00",
            "1,00",
            "-.50",
            ".50",
            "1.-5",
        ] {
            assert_eq!(plain_yuan(text.as_bytes()), None, "{text}");
        }
        assert_eq!(Money::parse_yuan("-0.00"), Err(DecimalError::NegativeZero));
        assert_eq!(
            Money::parse_yuan("1000000000000.01"),
            Err(DecimalError::OutOfRange)
        );
    }

    #[test]
    fn yuan_text_is_read_exactly() {
        assert_eq!(Money::parse_yuan("9").map(Money::fen), Ok(900));
        assert_eq!(Money::parse_yuan("12.5").map(Money::fen), Ok(1250));
        assert_eq!(Money::parse_yuan("296.2").map(Money::fen), Ok(29620));
        assert_eq!(Money::parse_yuan("1200.000").map(Money::fen), Ok(120000));
        assert_eq!(Money::parse_yuan("-0.05").map(Money::fen), Ok(-5));
        assert_eq!(Money::parse_yuan("0.0").map(Money::fen), Ok(0));
        assert_eq!(
            Money::parse_yuan("1000000000000").map(Money::fen),
            Ok(Money::MAX_ABS_FEN)
        );
    }

    #[test]
    fn money_is_never_rounded_or_guessed() {
        for bad in [
            "12.345",
            "1e3",
            "1E3",
            "NaN",
            "Infinity",
            "-Infinity",
            "",
            "-",
            ".5",
            "5.",
            "+5",
            "0x10",
            " 5",
            "5 ",
            "１２",
            "1,000.00",
            "--5",
            "007",
            "1000000000000.01",
        ] {
            assert!(Money::parse_yuan(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(Money::parse_yuan("-0"), Err(DecimalError::NegativeZero));
        assert_eq!(Money::parse_yuan("-0.00"), Err(DecimalError::NegativeZero));
        assert_eq!(Money::parse_yuan("0.001"), Err(DecimalError::TooPrecise(2)));
    }

    #[test]
    fn money_prints_two_decimals() {
        let cases = [
            (0, "0.00"),
            (5, "0.05"),
            (-5, "-0.05"),
            (1250, "12.50"),
            (-29620, "-296.20"),
        ];
        for (fen, text) in cases {
            assert_eq!(
                Money::from_fen(fen).map(|m| m.to_string()).as_deref(),
                Some(text)
            );
        }
    }

    #[test]
    fn fixed_kinds_keep_their_precision() {
        assert_eq!(Price::parse("8.333333").map(Price::scaled), Ok(8_333_333));
        assert!(Price::parse("8.3333333").is_err());
        assert_eq!(
            Quantity::parse("-2.5").map(|q| q.to_string()).as_deref(),
            Ok("-2.5000")
        );
        assert_eq!(
            Age::parse("50.2").map(|a| a.to_string()).as_deref(),
            Ok("50.2")
        );
        assert!(Ratio::parse("0.12345").is_err());
    }

    proptest::proptest! {
        #[test]
        fn write_scaled_agrees_with_the_format(value in proptest::num::i64::ANY, scale in 0u32..20) {
            let mut out = String::new();
            write_scaled(&mut out, value, scale).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(out, reference(value, scale));
        }

        #[test]
        fn money_text_round_trips(fen in -Money::MAX_ABS_FEN..=Money::MAX_ABS_FEN) {
            let money = Money::from_fen(fen).ok_or(DecimalError::OutOfRange)?;
            proptest::prop_assert_eq!(Money::parse_yuan(&money.to_yuan_string())?, money);
            proptest::prop_assert_eq!(Money::parse_fen(&fen.to_string())?, money);
        }

        #[test]
        fn money_parser_never_panics(text in "\\PC{0,24}") {
            let _ = Money::parse_yuan(&text);
        }

        /// The fast path for `[-]digits.dd` agrees with the general parser
        /// wherever it answers, including at the edges of the range.
        #[test]
        fn plain_yuan_agrees_with_the_general_parser(text in "-?[0-9]{0,15}(\\.[0-9]{0,3})?") {
            if let Some(fen) = plain_yuan(text.as_bytes()) {
                proptest::prop_assert_eq!(parse_scaled(&text, 2, Money::MAX_ABS_FEN), Ok(fen));
            }
        }
    }
}
