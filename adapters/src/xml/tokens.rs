//! XML 1.0 as a stream of tokens, read from a message already decoded to
//! UTF-8: tags, character data, CDATA, comments and the declaration. What a
//! message may not hold (DOCTYPE, processing instructions) comes out as a
//! token of its own for the reader to refuse; anything that is not XML is an
//! error naming the byte it was found at.
//!
//! The tokenizer only splits. Character data comes out as written, and
//! [`text`] resolves its references and line ends when it is used: most values
//! hold neither, and are then borrowed from the message as they are. Names
//! are checked here, once, so that the reader can compare them as strings.

use contracts::{ErrorCode, Refusal};
use std::borrow::Cow;

/// One piece of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// `<?xml ...?>`: the text between `<?xml` and `?>`.
    Decl(&'a str),
    /// `<name ...>`.
    Start(Tag<'a>),
    /// `<name .../>`: a start that is also its end.
    Empty(Tag<'a>),
    /// `</name>`: the name.
    End(&'a str),
    /// Character data as written: references unresolved, line ends as sent
    /// ([`text`] reads it).
    Text(&'a str),
    /// The content of `<![CDATA[...]]>`, line ends as sent.
    CData(&'a str),
    /// `<!-- ... -->`.
    Comment,
    /// `<!DOCTYPE`: neither it nor anything after it is read.
    DocType,
    /// `<?target ...?>` other than the declaration: not read any further.
    Pi,
    /// The end of the message.
    Eof,
}

/// A start tag: its name, and its attributes as written (from the first
/// byte after the name; [`Tag::attributes`] reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub name: &'a str,
    pub raw_attributes: &'a str,
}

impl<'a> Tag<'a> {
    /// The attributes, in order, each `(name, value as written)`.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            rest: self.raw_attributes,
        }
    }

    /// Whether the tag holds nothing but white space after its name.
    pub fn has_attributes(&self) -> bool {
        !is_xml_space(self.raw_attributes)
    }
}

/// A message being read: where the next token starts.
pub struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Tokens<'a> {
    pub fn new(text: &'a str) -> Tokens<'a> {
        Tokens { text, at: 0 }
    }

    /// The next token. After an error the reader stops: what follows is not read.
    pub fn next_token(&mut self) -> Result<Token<'a>, Refusal> {
        let start = self.at;
        let bytes = self.text.as_bytes();
        let Some(&first) = bytes.get(start) else {
            return Ok(Token::Eof);
        };
        if first != b'<' {
            let end = memchr::memchr(b'<', &bytes[start..]).map_or(bytes.len(), |n| start + n);
            let text = self.slice(start, end)?;
            self.at = end;
            return Ok(Token::Text(text));
        }
        match bytes.get(start + 1) {
            Some(b'/') => {
                // The name is not checked: the reader compares it with its start's.
                let close = memchr::memchr(b'>', &bytes[start..])
                    .map(|n| start + n)
                    .ok_or_else(|| self.error("unterminated end tag", start))?;
                let name = self.slice(start + 2, close)?;
                self.at = close + 1;
                Ok(Token::End(name.trim_end_matches(is_xml_space_char)))
            }
            Some(b'?') => {
                let close = self.find(b"?>", start + 2, "unterminated processing instruction")?;
                self.at = close + 2;
                let inner = self.slice(start + 2, close)?;
                match inner.strip_prefix("xml") {
                    Some(rest) if rest.is_empty() || rest.starts_with(is_xml_space_char) => {
                        Ok(Token::Decl(rest))
                    }
                    _ => Ok(Token::Pi),
                }
            }
            Some(b'!') => {
                let rest = &bytes[start..];
                if rest.starts_with(b"<!--") {
                    let close = self.find(b"-->", start + 4, "unterminated comment")?;
                    self.at = close + 3;
                    Ok(Token::Comment)
                } else if rest.starts_with(b"<![CDATA[") {
                    let close = self.find(b"]]>", start + 9, "unterminated CDATA section")?;
                    let data = self.slice(start + 9, close)?;
                    self.at = close + 3;
                    Ok(Token::CData(data))
                } else if rest.starts_with(b"<!DOCTYPE") {
                    // Its internal subset may hold markup of its own: nothing after it is read.
                    self.at = bytes.len();
                    Ok(Token::DocType)
                } else {
                    Err(self.error("markup declaration outside a DOCTYPE", start))
                }
            }
            _ => {
                let name_end = start
                    + 1
                    + bytes[start + 1..]
                        .iter()
                        .position(|&b| b.is_ascii() && !is_name_byte(b))
                        .unwrap_or(bytes.len() - start - 1);
                let name = self.slice(start + 1, name_end)?;
                // Every ASCII byte of it is a name byte: only the first is left to check.
                check_name_start(name).map_err(|what| self.error(what, start + 1))?;
                let (end, raw_attributes, empty) = match bytes.get(name_end) {
                    Some(b'>') => (name_end, "", false),
                    Some(b'/') if bytes.get(name_end + 1) == Some(&b'>') => {
                        (name_end + 1, "", true)
                    }
                    Some(b' ' | b'\t' | b'\r' | b'\n') => {
                        let close = tag_end(bytes, name_end)
                            .ok_or_else(|| self.error("unterminated start tag", start))?;
                        // `close - 1` is at least `name_end`, a white space.
                        let empty = bytes[close - 1] == b'/';
                        let inner_end = if empty { close - 1 } else { close };
                        (close, self.slice(name_end, inner_end)?, empty)
                    }
                    None => return Err(self.error("unterminated start tag", start)),
                    Some(_) => return Err(self.error(NAME_CHARACTER, name_end)),
                };
                self.at = end + 1;
                let tag = Tag {
                    name,
                    raw_attributes,
                };
                Ok(if empty {
                    Token::Empty(tag)
                } else {
                    Token::Start(tag)
                })
            }
        }
    }

    /// Where `needle` starts, at `from` or after.
    fn find(&self, needle: &[u8], from: usize, what: &'static str) -> Result<usize, Refusal> {
        let haystack = self.text.as_bytes().get(from..).unwrap_or_default();
        memchr::memmem::find(haystack, needle)
            .map(|n| from + n)
            .ok_or_else(|| self.error(what, from))
    }

    /// The text between two of the tokenizer's delimiters. Every delimiter is
    /// ASCII, so both ends are character boundaries; `get` keeps that a checked
    /// claim rather than a panic.
    fn slice(&self, from: usize, to: usize) -> Result<&'a str, Refusal> {
        self.text
            .get(from..to)
            .ok_or_else(|| self.error("unreadable text", from))
    }

    fn error(&self, what: &'static str, at: usize) -> Refusal {
        syntax_error(what, at)
    }
}

fn syntax_error(what: &'static str, at: usize) -> Refusal {
    Refusal::new(
        ErrorCode::Malformed,
        format!("{what} near byte {at} of the decoded text"),
    )
}

/// The `>` that closes the tag whose name starts at `from`, outside quoted
/// attribute values.
fn tag_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let found = at + memchr::memchr3(b'>', b'"', b'\'', bytes.get(at..)?)?;
        let quote = bytes[found];
        if quote == b'>' {
            return Some(found);
        }
        at = found + 1 + memchr::memchr(quote, bytes.get(found + 1..)?)? + 1;
    }
}

const NAME_CHARACTER: &str = "a name with a character XML does not allow in names";

/// A byte of a name in ASCII: a letter, a digit, `_`, `:`, `-` or `.`
/// (beyond ASCII, every character is let through).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.')
}

/// An element's or attribute's name: a letter, `_` or `:` (or any character
/// beyond ASCII) first, then [`is_name_byte`]s.
fn check_name(name: &str) -> Result<(), &'static str> {
    check_name_start(name)?;
    if !name.bytes().all(|b| !b.is_ascii() || is_name_byte(b)) {
        return Err(NAME_CHARACTER);
    }
    Ok(())
}

/// The first rule of [`check_name`]: a name is not empty, and starts with a
/// letter, `_`, `:` or a character beyond ASCII.
fn check_name_start(name: &str) -> Result<(), &'static str> {
    match name.as_bytes().first() {
        None => Err("a tag without a name"),
        Some(&b) if b.is_ascii() && !(b.is_ascii_alphabetic() || b == b'_' || b == b':') => {
            Err(NAME_CHARACTER)
        }
        Some(_) => Ok(()),
    }
}

pub fn is_xml_space(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn is_xml_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A tag's attributes: `name="value"` or `name='value'`, separated by white
/// space. Each value comes as written; [`attribute_value`] reads it.
pub struct Attributes<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(&'a str, &'a str), Refusal>;

    fn next(&mut self) -> Option<Self::Item> {
        let trimmed = self.rest.trim_start_matches(is_xml_space_char);
        if trimmed.is_empty() {
            return None;
        }
        if trimmed.len() == self.rest.len() {
            // Only the first can follow the name directly: the tokenizer cut
            // the name at white space, so this is after a value.
            self.rest = "";
            return Some(Err(malformed_attribute()));
        }
        let parsed = attribute(trimmed);
        self.rest = match parsed {
            Ok((_, _, rest)) => rest,
            Err(_) => "",
        };
        Some(parsed.map(|(name, value, _)| (name, value)))
    }
}

fn malformed_attribute() -> Refusal {
    Refusal::new(ErrorCode::Malformed, "malformed attribute")
}

/// `name = "value"` at the start of `text`: the name, the value, what follows.
fn attribute(text: &str) -> Result<(&str, &str, &str), Refusal> {
    let name_end = text
        .find(|c: char| c == '=' || is_xml_space_char(c))
        .ok_or_else(malformed_attribute)?;
    let (name, rest) = text.split_at(name_end);
    check_name(name).map_err(|_| malformed_attribute())?;
    let rest = rest.trim_start_matches(is_xml_space_char);
    let rest = rest.strip_prefix('=').ok_or_else(malformed_attribute)?;
    let rest = rest.trim_start_matches(is_xml_space_char);
    let quote = match rest.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => q as char,
        _ => return Err(malformed_attribute()),
    };
    let rest = &rest[1..];
    let close = rest.find(quote).ok_or_else(malformed_attribute)?;
    Ok((name, &rest[..close], &rest[close + 1..]))
}

/// The one of the five predefined entities named `name`.
fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return None,
    })
}

/// The character a character reference names (`#65`, `#x41`), if it is one
/// XML allows in a document.
fn character_reference(name: &str) -> Option<char> {
    let digits = name.strip_prefix('#')?;
    let (digits, radix) = match digits.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (digits, 10),
    };
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let c = char::from_u32(u32::from_str_radix(digits, radix).ok()?)?;
    let allowed = matches!(c, '\t' | '\n' | '\r')
        || matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    allowed.then_some(c)
}

/// Appends what the reference `name` (between `&` and `;`) stands for.
fn push_reference(out: &mut String, name: &str) -> Result<(), Refusal> {
    if let Some(text) = predefined_entity(name) {
        out.push_str(text);
        return Ok(());
    }
    if name.starts_with('#') {
        return match character_reference(name) {
            Some(c) => {
                out.push(c);
                Ok(())
            }
            None => Err(Refusal::new(
                ErrorCode::Malformed,
                "invalid character reference",
            )),
        };
    }
    Err(Refusal::new(
        ErrorCode::ForbiddenConstruct,
        "entity reference other than the five predefined ones",
    ))
}

/// Character data as XML reads it: references resolved, and each `\r\n` or
/// lone `\r` a line feed. Borrowed when there is neither.
pub fn text(raw: &str) -> Result<Cow<'_, str>, Refusal> {
    resolve(raw, false)
}

/// CDATA content as XML reads it: line ends normalised, nothing else.
pub fn cdata(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\r') {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
}

/// An attribute value as the XML 1.0 rules read it: literal tabs and line
/// ends become spaces (`\r\n` one space), references are resolved (character
/// references keep the character they name, so `&#xA;` is a line feed).
pub fn attribute_value(raw: &str) -> Result<Cow<'_, str>, Refusal> {
    resolve(raw, true)
}

fn resolve(raw: &str, attribute: bool) -> Result<Cow<'_, str>, Refusal> {
    let special = |b: u8| match b {
        b'&' | b'\r' => true,
        b'<' | b'\t' | b'\n' => attribute,
        _ => false,
    };
    // One pass without early exits over a value of a few bytes, which the
    // compiler vectorizes: cheaper than a call to a search.
    let plain = !raw.bytes().fold(false, |any, b| any | special(b));
    if plain {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.bytes().position(special) {
        out.push_str(&rest[..at]);
        let byte = rest.as_bytes()[at];
        rest = &rest[at + 1..];
        let space = if attribute { ' ' } else { '\n' };
        match byte {
            b'&' => {
                let Some(end) = rest.find(';') else {
                    return Err(Refusal::new(
                        ErrorCode::Malformed,
                        "malformed reference: no `;`",
                    ));
                };
                push_reference(&mut out, &rest[..end])?;
                rest = &rest[end + 1..];
            }
            b'\r' => {
                out.push(space);
                rest = rest.strip_prefix('\n').unwrap_or(rest);
            }
            b'<' => {
                return Err(Refusal::new(
                    ErrorCode::Malformed,
                    "`<` in an attribute value",
                ))
            }
            _ => out.push(' '),
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The pseudo-attribute `name` of a declaration (`version`, `encoding`),
/// read from the text [`Token::Decl`] holds.
pub fn declaration_value<'a>(decl: &'a str, name: &str) -> Result<Option<&'a str>, Refusal> {
    let tag = Tag {
        name: "xml",
        raw_attributes: decl.trim_end_matches(is_xml_space_char),
    };
    for attribute in tag.attributes() {
        let (key, value) = attribute
            .map_err(|_| Refusal::new(ErrorCode::Malformed, "malformed XML declaration"))?;
        if key == name {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every token but the last takes at least one byte: the reader ends.
        #[test]
        fn any_text_ends_in_an_error_or_the_end(
            pieces in prop::collection::vec(prop_oneof![
                Just("<!DOCTYPE"), Just("<![CDATA["), Just("]]>"), Just("<!--"), Just("-->"),
                Just("<?xml "), Just("<?pi"), Just("?>"), Just("<a"), Just("</a>"), Just("/>"),
                Just(">"), Just("'"), Just("\""), Just(" k='v'"), Just("&amp;"), Just("&#x41;"),
                Just("张"), Just("\r\n"), Just("<"), Just("&"), Just("="), Just("x"),
            ], 0..24)
        ) {
            let text = pieces.concat();
            let mut tokens = Tokens::new(&text);
            let mut ended = false;
            for _ in 0..=text.len() {
                if matches!(tokens.next_token(), Ok(Token::Eof) | Err(_)) {
                    ended = true;
                    break;
                }
            }
            prop_assert!(ended, "more tokens than bytes in {:?}", text);
        }
    }

    fn all(text: &str) -> Result<Vec<Token<'_>>, Refusal> {
        let mut tokens = Tokens::new(text);
        let mut out = Vec::new();
        loop {
            match tokens.next_token()? {
                Token::Eof => return Ok(out),
                token => out.push(token),
            }
        }
    }

    fn tag<'a>(name: &'a str, raw_attributes: &'a str) -> Tag<'a> {
        Tag {
            name,
            raw_attributes,
        }
    }

    #[test]
    fn a_message_splits_into_its_tokens() {
        let text = "<?xml version=\"1.0\"?>\n<!-- hi --><A x='1>2' y=\"/\"><B/>a&amp;b<![CDATA[<c>]]></A >";
        assert_eq!(
            all(text),
            Ok(vec![
                Token::Decl(" version=\"1.0\""),
                Token::Text("\n"),
                Token::Comment,
                Token::Start(tag("A", " x='1>2' y=\"/\"")),
                Token::Empty(tag("B", "")),
                Token::Text("a&amp;b"),
                Token::CData("<c>"),
                Token::End("A"),
            ])
        );
        assert_eq!(
            all("<a b='c'/><xml-stylesheet/><?xml-stylesheet x?><!DOCTYPE"),
            Ok(vec![
                Token::Empty(tag("a", " b='c'")),
                Token::Empty(tag("xml-stylesheet", "")),
                Token::Pi,
                Token::DocType,
            ])
        );
    }

    #[test]
    fn what_is_not_xml_is_an_error() {
        for bad in [
            "<",
            "<a",
            "<a b='>",
            "</a",
            "<!-- x",
            "<![CDATA[x",
            "<?x",
            "<!ENTITY x>",
            "<>",
            "<1a>",
            "<a<b>",
            "< a>",
            "<a=b>",
            "<-a/>",
            "<a/ >",
            "<a//>",
        ] {
            assert!(all(bad).is_err(), "{bad:?}");
        }
        // An end tag's name is the reader's to compare with its start's.
        assert_eq!(all("</a b >"), Ok(vec![Token::End("a b")]));
        let error = all("<A><B x").err().map(|r| r.detail);
        assert_eq!(
            error.as_deref(),
            Some("unterminated start tag near byte 3 of the decoded text")
        );
    }

    #[test]
    fn attributes_are_read_as_xml_writes_them() {
        let read = |raw: &'static str| {
            tag("a", raw)
                .attributes()
                .collect::<Result<Vec<_>, Refusal>>()
                .map_err(|r| r.detail)
        };
        assert_eq!(
            read(" a='1' b = \"x'y\"\n\tc=''"),
            Ok(vec![("a", "1"), ("b", "x'y"), ("c", "")])
        );
        for bad in [
            " a",
            " a=1",
            " a='1'b='2'",
            " a='1",
            " ='1'",
            " a b='1'",
            "/",
            " b='1'/ ",
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
        assert!(!tag("a", " \n").has_attributes());
        assert!(tag("a", " k=''").has_attributes());
    }

    #[test]
    fn text_resolves_references_and_line_ends() {
        assert!(matches!(text("plain 张"), Ok(Cow::Borrowed("plain 张"))));
        assert_eq!(
            text("a&lt;&gt;&amp;&apos;&quot;&#65;&#x5F20;\r\nb\rc").as_deref(),
            Ok("a<>&'\"A张\nb\nc")
        );
        assert_eq!(
            text("&e;").map_err(|r| r.code),
            Err(ErrorCode::ForbiddenConstruct)
        );
        for bad in [
            "&amp",
            "&#0;",
            "&#x1;",
            "&#xD800;",
            "&#x110000;",
            "&#;",
            "&#x;",
            "&#12a;",
        ] {
            assert_eq!(
                text(bad).map_err(|r| r.code),
                Err(ErrorCode::Malformed),
                "{bad}"
            );
        }
        assert_eq!(cdata("a\r\nb\rc&amp;"), "a\nb\nc&amp;");
        assert_eq!(
            attribute_value("a\tb\r\nc\nd&#xA;").as_deref(),
            Ok("a b c d\n")
        );
        assert_eq!(
            attribute_value("&#x9;&#xA;&#xD;&amp;&lt;&quot;").as_deref(),
            Ok("\t\n\r&<\"")
        );
        for (bad, code) in [
            ("&lol;", ErrorCode::ForbiddenConstruct),
            ("a<b", ErrorCode::Malformed),
            ("&#0;", ErrorCode::Malformed),
        ] {
            assert_eq!(attribute_value(bad).map_err(|r| r.code), Err(code), "{bad}");
        }
    }

    #[test]
    fn the_declaration_is_read_for_its_values() {
        let decl = " version=\"1.0\" encoding='GB18030' ";
        assert_eq!(declaration_value(decl, "version"), Ok(Some("1.0")));
        assert_eq!(declaration_value(decl, "encoding"), Ok(Some("GB18030")));
        assert_eq!(declaration_value(decl, "standalone"), Ok(None));
        assert!(declaration_value(" version=1.0", "version").is_err());
    }
}
