//! A bounded pull reader and a strict writer for JSON, written for the
//! national dialect: numbers are handed over as their exact text (never
//! through floating point), nesting depth is bounded, strings borrow from the
//! input unless they hold escapes, and every error names its byte offset.

use std::borrow::Cow;

/// Why the bytes are not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at this byte offset.
    Syntax(usize, &'static str),
    /// Nested deeper than allowed, at this byte offset.
    TooDeep(usize),
}

/// A scalar token, or the opening of a container (already consumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string, unescaped.
    String(Cow<'a, str>),
    /// `{` was read.
    ObjectStart,
    /// `[` was read.
    ArrayStart,
}

/// A pull reader over one JSON text. The text must already be valid UTF-8.
pub struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    depth_max: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `text`, refusing nesting deeper than `depth_max`.
    pub fn new(text: &'a str, depth_max: usize) -> Reader<'a> {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            depth_max,
        }
    }

    /// A reader over a part of a text already read, at the depth it was found.
    pub fn nested(text: &'a str, depth: usize, depth_max: usize) -> Reader<'a> {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth,
            depth_max,
        }
    }

    /// The byte offset reached.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn error(&self, what: &'static str) -> JsonError {
        JsonError::Syntax(self.pos, what)
    }

    fn skip_whitespace(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > self.depth_max {
            return Err(JsonError::TooDeep(self.pos));
        }
        Ok(())
    }

    /// Checks that only whitespace is left.
    pub fn finish(&mut self) -> Result<(), JsonError> {
        self.skip_whitespace();
        if self.pos != self.bytes.len() {
            return Err(self.error("trailing characters after the message"));
        }
        Ok(())
    }

    /// Reads the next value's first token. Containers are entered.
    pub fn next_token(&mut self) -> Result<Token<'a>, JsonError> {
        self.skip_whitespace();
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(self.error("unexpected end of message"));
        };
        match b {
            b'{' => {
                self.pos += 1;
                self.enter()?;
                Ok(Token::ObjectStart)
            }
            b'[' => {
                self.pos += 1;
                self.enter()?;
                Ok(Token::ArrayStart)
            }
            b'"' => self.string().map(Token::String),
            b'n' => self.literal("null", Token::Null),
            b't' => self.literal("true", Token::Bool(true)),
            b'f' => self.literal("false", Token::Bool(false)),
            b'-' | b'0'..=b'9' => self.number().map(Token::Number),
            _ => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static str, token: Token<'a>) -> Result<Token<'a>, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(token)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<&'a str, JsonError> {
        let start = self.pos;
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("malformed number")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("malformed number"));
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("malformed number"));
            }
        }
        Ok(&self.text[start..self.pos])
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(hex) = self.bytes.get(self.pos..self.pos + 4) else {
            return Err(self.error("short \\u escape"));
        };
        let mut value = 0u32;
        for &h in hex {
            let digit = (h as char)
                .to_digit(16)
                .ok_or_else(|| self.error("bad \\u escape"))?;
            value = value * 16 + digit;
        }
        self.pos += 4;
        Ok(value)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        // Fast path: no escapes. Eight bytes at a time while none of them
        // ends the plain run (a quote, a backslash, a control character).
        self.pos = past_plain_words(self.bytes, self.pos);
        loop {
            match self.bytes.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    let text = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(text));
                }
                Some(b'\\') => break,
                Some(&b) if b < 0x20 => return Err(self.error("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut owned = String::with_capacity(self.pos - start + 16);
        owned.push_str(&self.text[start..self.pos]);
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.error("unterminated string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(Cow::Owned(owned));
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(&escape) = self.bytes.get(self.pos) else {
                        return Err(self.error("unterminated string"));
                    };
                    self.pos += 1;
                    match escape {
                        b'"' => owned.push('"'),
                        b'\\' => owned.push('\\'),
                        b'/' => owned.push('/'),
                        b'b' => owned.push('\u{8}'),
                        b'f' => owned.push('\u{c}'),
                        b'n' => owned.push('\n'),
                        b'r' => owned.push('\r'),
                        b't' => owned.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first) {
                                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.error("lone surrogate"));
                                }
                                self.pos += 2;
                                let second = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&second) {
                                    return Err(self.error("lone surrogate"));
                                }
                                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                            } else {
                                first
                            };
                            owned.push(
                                char::from_u32(code).ok_or_else(|| self.error("lone surrogate"))?,
                            );
                        }
                        _ => return Err(self.error("bad escape")),
                    }
                }
                b if b < 0x20 => return Err(self.error("control character in string")),
                _ => {
                    // Copy a run of plain characters at once.
                    let run_start = self.pos;
                    while self
                        .bytes
                        .get(self.pos)
                        .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
                    {
                        self.pos += 1;
                    }
                    owned.push_str(&self.text[run_start..self.pos]);
                }
            }
        }
    }

    /// Inside an object: the next key, or `None` at its end (which is consumed).
    /// `first` says whether this is the first key asked for.
    pub fn next_key(&mut self, first: bool) -> Result<Option<Cow<'a, str>>, JsonError> {
        self.skip_whitespace();
        match self.bytes.get(self.pos) {
            Some(b'}') => {
                self.pos += 1;
                self.depth -= 1;
                return Ok(None);
            }
            Some(b',') if !first => {
                self.pos += 1;
                self.skip_whitespace();
            }
            _ if first => {}
            _ => return Err(self.error("expected , or }")),
        }
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(self.error("expected a key"));
        }
        let key = self.string()?;
        self.skip_whitespace();
        if self.bytes.get(self.pos) != Some(&b':') {
            return Err(self.error("expected :"));
        }
        self.pos += 1;
        Ok(Some(key))
    }

    /// Inside an array: whether another element follows (`false` at its end, which is consumed).
    pub fn next_element(&mut self, first: bool) -> Result<bool, JsonError> {
        self.skip_whitespace();
        match self.bytes.get(self.pos) {
            Some(b']') => {
                self.pos += 1;
                self.depth -= 1;
                Ok(false)
            }
            Some(b',') if !first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if first => Ok(true),
            _ => Err(self.error("expected , or ]")),
        }
    }

    /// Skips one whole value, checking it, and returns its text.
    pub fn skip_value(&mut self) -> Result<&'a str, JsonError> {
        self.skip_whitespace();
        let start = self.pos;
        match self.next_token()? {
            Token::ObjectStart => {
                let mut first = true;
                while self.next_key(first)?.is_some() {
                    first = false;
                    self.skip_value()?;
                }
            }
            Token::ArrayStart => {
                let mut first = true;
                while self.next_element(first)? {
                    first = false;
                    self.skip_value()?;
                }
            }
            _ => {}
        }
        Ok(&self.text[start..self.pos])
    }

    /// The current nesting depth.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

/// Whether `byte` ends a run of plain string bytes: a quote, a backslash or
/// a control character (below 0x20).
fn ends_plain(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Whether any of the eight bytes of `word` [`ends_plain`], by the "has a
/// zero byte" and "has a byte less than n" tricks of Bit Twiddling Hacks:
/// each is exact for the word as a whole (a borrow into a higher byte needs a
/// lower byte that matched).
fn ends_plain_run(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control != 0
}

/// Where the run of plain string bytes from `pos` ends, to the nearest
/// 8 bytes below: the first word of 8 bytes from there that holds a byte
/// [`ends_plain_run`] stops at, or fewer than 8 bytes before the end.
fn past_plain_words(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if ends_plain_run(u64::from_le_bytes(word)) {
            break;
        }
        pos += 8;
    }
    pos
}

/// Appends `text` as a JSON string, quoted and escaped.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    // Nearly every string needs no escape: checked 8 bytes at a time, then
    // copied at once.
    let checked = past_plain_words(bytes, 0);
    if !bytes[checked..].iter().any(|&b| ends_plain(b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut run = 0;
    for (index, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..index]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        run = index + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Result<Vec<String>, JsonError> {
        let mut r = Reader::new(text, 8);
        let v = r.skip_value()?;
        r.finish()?;
        Ok(vec![v.to_owned()])
    }

    #[test]
    fn strings_unescape_exactly() {
        let mut r = Reader::new(r#""a\"b\\c\u4e2d\ud840\udc00\n""#, 4);
        assert_eq!(
            r.next_token(),
            Ok(Token::String(Cow::Owned("a\"b\\c中𠀀\n".into())))
        );
        let mut out = Vec::new();
        write_string(&mut out, "a\"b\\c中𠀀\n\u{1}");
        assert_eq!(
            String::from_utf8(out).as_deref(),
            Ok(r#""a\"b\\c中𠀀\n\u0001""#)
        );
    }

    proptest::proptest! {
        /// What is written reads back as the same text, escaped or not.
        #[test]
        fn written_strings_read_back(text in "(\\PC|[\"\\\\\n\r\t\u{0}-\u{1f}])*") {
            let mut out = Vec::new();
            write_string(&mut out, &text);
            let written = String::from_utf8(out).unwrap();
            let mut r = Reader::new(&written, 4);
            proptest::prop_assert_eq!(r.next_token(), Ok(Token::String(Cow::Borrowed(text.as_str()))));
        }
    }

    proptest::proptest! {
        #[test]
        fn a_word_ends_a_plain_run_exactly_when_a_byte_does(
            word in proptest::array::uniform8(proptest::prop_oneof![
                proptest::prelude::Just(b'"'), proptest::prelude::Just(b'\\'),
                proptest::prelude::Just(0x1f_u8), proptest::prelude::Just(0x20_u8),
                proptest::prelude::Just(0x00_u8), proptest::prelude::Just(0x80_u8),
                proptest::prelude::Just(0xff_u8), 0x21_u8..0x7f, proptest::prelude::any::<u8>(),
            ])
        ) {
            let byte_ends = word.iter().any(|&b| ends_plain(b));
            proptest::prop_assert_eq!(ends_plain_run(u64::from_le_bytes(word)), byte_ends);
        }
    }

    #[test]
    fn numbers_keep_their_text() {
        for n in ["0", "-1", "12.50", "1e3", "1200.000", "-0.5E-2"] {
            let mut r = Reader::new(n, 4);
            assert_eq!(r.next_token(), Ok(Token::Number(n)));
        }
        for bad in ["01", "1.", ".5", "-", "1e", "+1"] {
            let mut r = Reader::new(bad, 4);
            assert!(r.next_token().is_err() || r.finish().is_err(), "{bad}");
        }
    }

    #[test]
    fn depth_and_garbage_are_refused() {
        assert!(matches!(
            tokens(&"[".repeat(100)),
            Err(JsonError::TooDeep(_))
        ));
        for bad in [
            "{",
            "{\"a\" 1}",
            "[1,]",
            "{\"a\":1,}",
            "\"\u{1}\"",
            "\"\\ud800\"",
            "nul",
            "{} {}",
            "{'a':1}",
        ] {
            assert!(tokens(bad).is_err(), "{bad}");
        }
        assert!(tokens(r#"{"a":[1,{"b":null}],"c":"d"}"#).is_ok());
    }
}
