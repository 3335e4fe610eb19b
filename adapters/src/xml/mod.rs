//! The XML machinery shared by the `tj` and `he` dialects: a streaming reader
//! wrapper that enforces [`Limits`] and refuses what a message may not hold,
//! an escaping writer, and one codec that walks the canonical schema.
//!
//! A dialect is described by an [`XmlDialect`]: its character set, where it
//! puts scalar fields (child elements or attributes), how it writes money and
//! times, its code tables, its name for every field, and its envelope
//! ([`Frame`]). Everything else — reading, writing, limits, refusals,
//! extras — is here, once, and never names a particular transaction.
//!
//! Reading is streaming: the tokens of [`tokens`] are turned directly into
//! the records through [`Record::field_mut`]; no tree of the message is built.
//! DOCTYPE (and so every entity declaration) and processing instructions are
//! refused; only the five predefined entities and numeric character
//! references are accepted.

use crate::dialect::{Dialect, Limits, Seen};
use crate::json;
use crate::texts::{each, Part, Texts};
use crate::trail::{Step, Trail};
use contracts::model::envelope::{AnswerEnvelope, RequestEnvelope};
use contracts::record::{
    CodeSet, Extras, FieldMut, FieldRef, Kind, Record, RecordType, Scalar, ScalarSlot, Schema,
    Shape, ValueError,
};
use contracts::time::TimeError;
use contracts::{
    Answer, AnswerBody, Date, DateTime, ErrorCode, Infno, Money, Refusal, Request, RequestBody,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasherDefault;
use std::marker::PhantomData;
use std::sync::OnceLock;
use tokens::{is_xml_space, Tag, Token, Tokens};

mod tokens;

/// The element that carries one extra key: `<Ext k="psn_pay">43.1</Ext>`, the
/// text being the value's compact JSON.
pub const EXT: &str = "Ext";
/// The attribute of [`EXT`] holding the key.
pub const EXT_KEY: &str = "k";
/// Written before a national code that a dialect's code table does not hold:
/// `N:399`.
pub const CODE_ESCAPE: &str = "N:";

/// A dialect's character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// GB18030, declared in the prolog; nothing else is accepted.
    Gb18030,
    /// UTF-8; a prolog, if present, must declare UTF-8.
    Utf8,
}

impl Charset {
    /// The name written in the XML declaration.
    pub fn label(self) -> &'static str {
        match self {
            Charset::Gb18030 => "GB18030",
            Charset::Utf8 => "UTF-8",
        }
    }

    /// Decodes a message's bytes to text, checking the declared encoding.
    pub fn decode(self, bytes: &[u8]) -> Result<Cow<'_, str>, Refusal> {
        match self {
            Charset::Utf8 => {
                let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                let text = std::str::from_utf8(bytes).map_err(|e| {
                    Refusal::new(
                        ErrorCode::WrongEncoding,
                        format!("not UTF-8 at byte {}", e.valid_up_to()),
                    )
                })?;
                match declared_encoding(text.as_bytes())? {
                    Some(name) if !name.eq_ignore_ascii_case("UTF-8") => Err(Refusal::new(
                        ErrorCode::WrongEncoding,
                        format!("declared encoding {name}, expected UTF-8"),
                    )),
                    _ => Ok(Cow::Borrowed(text)),
                }
            }
            Charset::Gb18030 => {
                match declared_encoding(bytes)? {
                    None => {
                        return Err(Refusal::new(
                            ErrorCode::WrongEncoding,
                            "no XML declaration naming GB18030 (<?xml version=\"1.0\" encoding=\"GB18030\"?>)",
                        ))
                    }
                    Some(name) if !name.eq_ignore_ascii_case("GB18030") => {
                        return Err(Refusal::new(
                            ErrorCode::WrongEncoding,
                            format!("declared encoding {name}, expected GB18030"),
                        ))
                    }
                    Some(_) => {}
                }
                encoding_rs::GB18030
                    .decode_without_bom_handling_and_without_replacement(bytes)
                    .ok_or_else(|| {
                        Refusal::new(ErrorCode::WrongEncoding, "bytes that are not GB18030")
                    })
            }
        }
    }

    /// Encodes the text of a message.
    fn encode(self, text: String) -> Vec<u8> {
        match self {
            Charset::Utf8 => text.into_bytes(),
            Charset::Gb18030 => match encoding_rs::GB18030.encode(&text).0 {
                Cow::Borrowed(_) => text.into_bytes(),
                Cow::Owned(bytes) => bytes,
            },
        }
    }
}

/// The encoding named by the XML declaration at the start of `bytes`, if
/// there is a declaration and it names one. The declaration is ASCII in every
/// encoding these dialects use, so it is read before decoding.
fn declared_encoding(bytes: &[u8]) -> Result<Option<String>, Refusal> {
    if !bytes.starts_with(b"<?xml")
        || !bytes
            .get(5)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Ok(None);
    }
    let head = &bytes[..bytes.len().min(512)];
    let Some(end) = head.windows(2).position(|w| w == b"?>") else {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            "unterminated XML declaration",
        ));
    };
    let Some(decl) = std::str::from_utf8(&head[..end + 2])
        .ok()
        .filter(|d| d.is_ascii())
    else {
        return Err(Refusal::new(
            ErrorCode::WrongEncoding,
            "XML declaration not in ASCII",
        ));
    };
    let malformed = || Refusal::new(ErrorCode::Malformed, "malformed XML declaration");
    let Ok(Token::Decl(decl)) = Tokens::new(decl).next_token() else {
        return Err(malformed());
    };
    match tokens::declaration_value(decl, "encoding").map_err(|_| malformed())? {
        None => Ok(None),
        Some(name) => {
            let name = name.trim();
            if name.is_empty()
                || name.len() > 40
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                return Err(Refusal::new(
                    ErrorCode::WrongEncoding,
                    "unreadable encoding name in the XML declaration",
                ));
            }
            Ok(Some(name.to_owned()))
        }
    }
}

/// Where a dialect puts scalar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Each scalar is a child element holding its text (`<GRBH>…</GRBH>`).
    Elements,
    /// Each scalar is an attribute of its record's element (`<data psn_no="…"/>`).
    Attributes,
}

/// How a dialect writes money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyUnit {
    /// Yuan with two decimals (`100.20`); readers accept 0 to 2 significant decimals.
    Yuan,
    /// Integer fen (`10020`).
    Fen,
}

/// How a dialect writes times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Digits only: `yyyyMMdd`, `yyyyMMddHHmmss`, `yyyyMMddHHmmssSSS`.
    Compact,
    /// ISO 8601 without zone: `yyyy-MM-dd`, `yyyy-MM-ddTHH:mm:ss`, `yyyy-MM-ddTHH:mm:ss.SSS`.
    Iso,
}

/// A dialect's code table for one national code set: pairs of (national code,
/// dialect code), a bijection. A national code not in the table is written
/// [`CODE_ESCAPE`] followed by the national code.
#[derive(Debug, Clone, Copy)]
pub struct CodeTable {
    /// (national, dialect) pairs.
    pub pairs: &'static [(&'static str, &'static str)],
}

impl CodeTable {
    /// The dialect's code for a national code, if the table has one.
    pub fn to_wire(&self, national: &str) -> Option<&'static str> {
        self.pairs
            .iter()
            .find(|(n, _)| *n == national)
            .map(|(_, w)| *w)
    }

    /// The national code for a dialect code, if the table has one.
    pub fn to_national(&self, wire: &str) -> Option<&'static str> {
        self.pairs.iter().find(|(_, w)| *w == wire).map(|(n, _)| *n)
    }
}

fn code_set_table_name(set: CodeSet) -> &'static str {
    match set {
        CodeSet::Insutype => contracts::Insutype::TABLE,
        CodeSet::MedType => contracts::MedType::TABLE,
        CodeSet::PsnCertType => contracts::PsnCertType::TABLE,
        CodeSet::MdtrtCertType => contracts::MdtrtCertType::TABLE,
        CodeSet::ClrType => contracts::ClrType::TABLE,
        CodeSet::Admdvs => "admdvs",
    }
}

/// A field's name on the wire: `prefix` then `name` (the prefix is empty
/// except for names made by a dialect's fallback rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireName {
    /// Written first (e.g. `N_` for tj's fallback names).
    pub prefix: &'static str,
    /// The rest.
    pub name: &'static str,
}

impl WireName {
    /// A name without prefix.
    pub const fn plain(name: &'static str) -> WireName {
        WireName { prefix: "", name }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.prefix.len() + self.name.len()
    }

    /// Whether it is empty (never, for a field's name).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `wire` is this name.
    pub fn matches(&self, wire: &str) -> bool {
        wire.len() == self.prefix.len() + self.name.len()
            && wire.starts_with(self.prefix)
            && wire.ends_with(self.name)
    }

    /// The whole name.
    pub fn to_text(&self) -> String {
        format!("{}{}", self.prefix, self.name)
    }
}

/// The message's outer shape in a dialect.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// The root element of a request.
    pub request_root: &'static str,
    /// The root element of an answer.
    pub answer_root: &'static str,
    /// `None`: the envelope's fields sit in the root element itself (tj).
    /// `Some(name)`: they sit in this header element, the first child of the
    /// root, and the body follows it (he).
    pub header: Option<&'static str>,
    /// The transaction number: a child element of the envelope (placement
    /// [`Placement::Elements`]) or an attribute of it ([`Placement::Attributes`]).
    pub infno: &'static str,
    /// The element holding the request's input.
    pub input: &'static str,
    /// The element holding the answer's output (absent when there is none).
    pub output: &'static str,
    /// `Some(item)`: a list is one element named after the field holding one
    /// `item` element per entry (tj). `None`: a list is the field's element
    /// repeated, once per entry (he).
    pub list_item: Option<&'static str>,
}

/// An XML wire dialect, described by its differences. The codec in this
/// module does the rest.
pub trait XmlDialect: Sized + 'static {
    /// The dialect's name (`tj`, `he`).
    const NAME: &'static str;
    /// Its character set.
    const CHARSET: Charset;
    /// Where scalars go.
    const PLACEMENT: Placement;
    /// How money is written.
    const MONEY: MoneyUnit;
    /// How times are written.
    const CLOCK: Clock;
    /// The envelope.
    const FRAME: Frame;
    /// The dialect's own code table for a national code set; `None`: national codes as they are.
    fn codes(set: CodeSet) -> Option<&'static CodeTable>;
    /// The wire name of field `index` of `schema`.
    fn wire_name(schema: &'static Schema, index: usize) -> WireName;
    /// The field of `schema` that `wire` names.
    fn field_index(schema: &'static Schema, wire: &str) -> Option<usize>;
    /// The dialect's own cache of [`XmlDialect::wire_name`] for every schema.
    fn name_cache() -> &'static NameCache;
}

impl Charset {
    /// The HTTP media type of messages in this character set.
    pub fn media_type(self) -> &'static str {
        match self {
            Charset::Gb18030 => "application/xml; charset=GB18030",
            Charset::Utf8 => "application/xml; charset=utf-8",
        }
    }
}

/// Every XML dialect is a [`Dialect`]: the codec in this module does the work.
impl<S: XmlDialect + Send + Sync> Dialect for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn media_type(&self) -> &'static str {
        S::CHARSET.media_type()
    }

    fn decode_request(&self, bytes: &[u8], limits: &Limits) -> Result<Request, Refusal> {
        decode_request::<S>(bytes, limits)
    }

    fn encode_request(&self, request: &Request) -> Vec<u8> {
        encode_request::<S>(request)
    }

    fn decode_answer(
        &self,
        infno: Infno,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Answer, Refusal> {
        decode_answer::<S>(infno, bytes, limits)
    }

    fn encode_answer(&self, _infno: Option<Infno>, answer: &Answer) -> Vec<u8> {
        encode_answer::<S>(answer)
    }

    fn encode_answer_redacted(&self, _infno: Option<Infno>, answer: &Answer) -> Vec<u8> {
        encode_answer_redacted::<S>(answer)
    }

    fn encode_answer_and_redacted(
        &self,
        _infno: Option<Infno>,
        answer: &Answer,
    ) -> (Vec<u8>, Vec<u8>) {
        encode_answer_and_redacted::<S>(answer)
    }
}

/// The wire names of every field of every canonical record, computed once
/// per dialect so that reading and writing look names up by index.
pub struct NameCache(OnceLock<NameMap>);

type NameMap = HashMap<usize, Names, BuildHasherDefault<AddressHasher>>;

/// Hashes the address of a schema (a static): one multiplication, where the
/// standard hasher, built to resist keys chosen by an attacker, spends about
/// sixty instructions. The keys here are the program's own.
#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The wire names of one record's fields, in order, each with its
/// [`fingerprint`]: a lookup compares one word per field and the bytes of
/// the names only where the words are equal.
#[derive(Debug, Clone)]
pub struct Names {
    wire: Box<[WireName]>,
    prints: Box<[u64]>,
}

impl Names {
    fn of<S: XmlDialect>(schema: &'static Schema) -> Names {
        let wire: Box<[WireName]> = (0..schema.fields.len())
            .map(|i| S::wire_name(schema, i))
            .collect();
        let prints = wire
            .iter()
            .map(|w| fingerprint(w.prefix.as_bytes().iter().chain(w.name.as_bytes()), w.len()))
            .collect();
        Names { wire, prints }
    }
}

impl std::ops::Deref for Names {
    type Target = [WireName];

    fn deref(&self) -> &[WireName] {
        &self.wire
    }
}

/// A name's length and its first seven bytes in one word: equal names have
/// equal fingerprints, and names of up to seven bytes are equal when their
/// fingerprints are.
fn fingerprint<'b>(bytes: impl Iterator<Item = &'b u8>, len: usize) -> u64 {
    let mut word = u64::from(u8::try_from(len).unwrap_or(u8::MAX)) << 56;
    for (i, &b) in bytes.take(7).enumerate() {
        word |= u64::from(b) << (8 * i);
    }
    word
}

impl NameCache {
    /// An empty cache, filled on first use.
    pub const fn new() -> NameCache {
        NameCache(OnceLock::new())
    }

    fn key(schema: &'static Schema) -> usize {
        std::ptr::from_ref(schema) as usize
    }

    /// The wire names of `schema`'s fields, in order.
    fn names<S: XmlDialect>(&'static self, schema: &'static Schema) -> Cow<'static, Names> {
        let map = self.0.get_or_init(|| {
            fn walk<S: XmlDialect>(schema: &'static Schema, map: &mut NameMap) {
                if map.contains_key(&NameCache::key(schema)) {
                    return;
                }
                map.insert(NameCache::key(schema), Names::of::<S>(schema));
                for def in schema.fields {
                    if let Shape::Record(child) | Shape::List(child) = def.shape {
                        walk::<S>(child(), map);
                    }
                }
            }
            let mut map = NameMap::default();
            walk::<S>(RequestEnvelope::static_schema(), &mut map);
            walk::<S>(AnswerEnvelope::static_schema(), &mut map);
            for &infno in Infno::ALL {
                walk::<S>(infno.input_schema(), &mut map);
                walk::<S>(infno.output_schema(), &mut map);
            }
            map
        });
        match map.get(&NameCache::key(schema)) {
            Some(names) => Cow::Borrowed(names),
            // Every record is reachable from the transaction table; this is only a safety net.
            None => Cow::Owned(Names::of::<S>(schema)),
        }
    }
}

impl Default for NameCache {
    fn default() -> NameCache {
        NameCache::new()
    }
}

/// Keys the national dialect reads itself beside a request's envelope fields,
/// which therefore cannot be extras of the envelope.
const REQUEST_RESERVED: &[&str] = &["infno", "input"];
/// Same for an answer.
const ANSWER_RESERVED: &[&str] = &["output"];

/// Root attributes that only bind namespaces or point at a schema, accepted and ignored.
fn is_namespace_attribute(key: &str) -> bool {
    key == "xmlns" || key.starts_with("xmlns:") || key.starts_with("xsi:")
}

/// A node inside an element.
enum Node<'a> {
    /// A child element; `true` when it is empty (`<x/>`) and has no end.
    Start(Tag<'a>, bool),
    /// The end of the current element: its name.
    End(&'a str),
    /// A piece of character data, references resolved and line ends normalised.
    Text(Cow<'a, str>),
}

/// Streams one message's text into canonical records.
struct Decoder<'a, 'l, S: XmlDialect> {
    tokens: Tokens<'a>,
    depth: usize,
    limits: &'l Limits,
    trail: Trail<'static>,
    /// How many steps the trail holds: the depth national JSON would nest the current record at.
    steps: usize,
    dialect: PhantomData<S>,
}

/// What a frame adds to the reading of one record element: the transaction
/// number and the body, which are not fields of the envelope.
trait Hook<'a, S: XmlDialect> {
    /// An attribute the record's schema does not name; `true` if taken.
    fn attribute(
        &mut self,
        _d: &mut Decoder<'a, '_, S>,
        _key: &str,
        _value: &str,
    ) -> Result<bool, Refusal> {
        Ok(false)
    }
    /// A child element the record's schema does not name; `true` if taken.
    /// `at_root` tells a child of a he-style root from a child of the envelope.
    fn child(
        &mut self,
        _d: &mut Decoder<'a, '_, S>,
        _name: &str,
        _start: &Tag<'a>,
        _empty: bool,
        _at_root: bool,
    ) -> Result<bool, Refusal> {
        Ok(false)
    }
}

struct NoHook;
impl<S: XmlDialect> Hook<'_, S> for NoHook {}

fn parse_infno(text: &str) -> Result<Infno, Refusal> {
    if text.is_empty() {
        return Err(Refusal::new(ErrorCode::MissingField, "infno"));
    }
    Infno::from_code(text).ok_or_else(|| {
        if text.len() <= 8 && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Refusal::new(ErrorCode::UnknownTransaction, format!("infno {text}"))
        } else {
            Refusal::new(ErrorCode::UnknownTransaction, "infno")
        }
    })
}

/// Takes the transaction number and the input of a request.
struct RequestHook {
    infno: Option<Infno>,
    infno_seen: bool,
    body: Option<RequestBody>,
}

impl RequestHook {
    fn set_infno(&mut self, text: &str) -> Result<(), Refusal> {
        if std::mem::replace(&mut self.infno_seen, true) {
            return Err(Refusal::new(
                ErrorCode::DuplicateField,
                "infno: given twice",
            ));
        }
        self.infno = Some(parse_infno(text)?);
        Ok(())
    }
}

impl<'a, S: XmlDialect> Hook<'a, S> for RequestHook {
    fn attribute(
        &mut self,
        _d: &mut Decoder<'a, '_, S>,
        key: &str,
        value: &str,
    ) -> Result<bool, Refusal> {
        if S::PLACEMENT == Placement::Attributes && key == S::FRAME.infno {
            self.set_infno(value)?;
            return Ok(true);
        }
        Ok(S::FRAME.header.is_none() && is_namespace_attribute(key))
    }

    fn child(
        &mut self,
        d: &mut Decoder<'a, '_, S>,
        name: &str,
        start: &Tag<'a>,
        empty: bool,
        at_root: bool,
    ) -> Result<bool, Refusal> {
        if S::PLACEMENT == Placement::Elements && !at_root && name == S::FRAME.infno {
            d.no_attributes(start)?;
            let text = d.text_content(name, empty)?;
            self.set_infno(&text)?;
            return Ok(true);
        }
        if name == S::FRAME.input && (at_root || S::FRAME.header.is_none()) {
            let infno = self.infno;
            d.body(
                &mut self.body,
                "input",
                start,
                empty,
                RequestBody::record_mut,
                || {
                    let infno = infno.ok_or_else(|| {
                        Refusal::new(
                            ErrorCode::Malformed,
                            format!(
                                "the transaction number ({}) must come before the input ({})",
                                S::FRAME.infno,
                                S::FRAME.input
                            ),
                        )
                    })?;
                    Ok(RequestBody::empty(infno))
                },
            )?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Takes the output of an answer.
struct AnswerHook {
    infno: Infno,
    output: Option<AnswerBody>,
}

impl<'a, S: XmlDialect> Hook<'a, S> for AnswerHook {
    fn attribute(
        &mut self,
        _d: &mut Decoder<'a, '_, S>,
        key: &str,
        _value: &str,
    ) -> Result<bool, Refusal> {
        Ok(S::FRAME.header.is_none() && is_namespace_attribute(key))
    }

    fn child(
        &mut self,
        d: &mut Decoder<'a, '_, S>,
        name: &str,
        start: &Tag<'a>,
        empty: bool,
        at_root: bool,
    ) -> Result<bool, Refusal> {
        if name == S::FRAME.output && (at_root || S::FRAME.header.is_none()) {
            let infno = self.infno;
            d.body(
                &mut self.output,
                "output",
                start,
                empty,
                AnswerBody::record_mut,
                || Ok(AnswerBody::empty(infno)),
            )?;
            return Ok(true);
        }
        Ok(false)
    }
}

impl<'a, 'l, S: XmlDialect> Decoder<'a, 'l, S> {
    fn new(text: &'a str, limits: &'l Limits) -> Self {
        Decoder {
            tokens: Tokens::new(text),
            depth: 0,
            limits,
            trail: Trail::new(),
            steps: 0,
            dialect: PhantomData,
        }
    }

    /// The next token; a DOCTYPE (with any entity declarations) or a
    /// processing instruction, wherever it stands, is refused here.
    fn raw(&mut self) -> Result<Token<'a>, Refusal> {
        let token = self.tokens.next_token().map_err(|r| self.refused(r))?;
        let forbidden = match token {
            Token::DocType => "DOCTYPE (and entity declarations) are not accepted",
            Token::Pi => "processing instructions are not accepted",
            _ => return Ok(token),
        };
        Err(self.trail.refuse(ErrorCode::ForbiddenConstruct, forbidden))
    }

    /// A refusal from reading XML, with the trail to where it was found.
    fn refused(&self, refusal: Refusal) -> Refusal {
        self.trail.refuse(refusal.code, refusal.detail)
    }

    /// A message's body element (`input`, `output`), its start read, into
    /// `slot`: refused when the message gave one already, before `empty_body`
    /// is asked for the record to read it into.
    fn body<B>(
        &mut self,
        slot: &mut Option<B>,
        step: &'static str,
        start: &Tag<'a>,
        empty: bool,
        record_mut: fn(&mut B) -> &mut dyn Record,
        empty_body: impl FnOnce() -> Result<B, Refusal>,
    ) -> Result<(), Refusal> {
        if slot.is_some() {
            return Err(Refusal::new(
                ErrorCode::DuplicateField,
                format!("{step}: given twice"),
            ));
        }
        let mut body = empty_body()?;
        self.push(Step::Name(step));
        self.record(record_mut(&mut body), start, empty, &mut NoHook, &[])?;
        self.pop();
        *slot = Some(body);
        Ok(())
    }

    fn push(&mut self, step: Step<'static>) {
        self.trail.push(step);
        self.steps += 1;
    }

    fn pop(&mut self) {
        self.trail.pop();
        self.steps = self.steps.saturating_sub(1);
    }

    fn malformed(&self, what: impl std::fmt::Display) -> Refusal {
        self.trail.refuse(ErrorCode::Malformed, what)
    }

    fn enter(&mut self) -> Result<(), Refusal> {
        self.depth += 1;
        if self.depth > self.limits.depth_max {
            return Err(self.trail.refuse(
                ErrorCode::TooDeep,
                format_args!("elements nested deeper than {}", self.limits.depth_max),
            ));
        }
        Ok(())
    }

    /// The root element, after the prolog (declaration, comments, whitespace).
    fn root(&mut self) -> Result<(Tag<'a>, bool), Refusal> {
        let mut first = true;
        loop {
            match self.raw()? {
                Token::Decl(decl) if first => match tokens::declaration_value(decl, "version") {
                    Ok(Some("1.0")) => {}
                    _ => return Err(self.malformed("XML version other than 1.0")),
                },
                Token::Decl(_) => return Err(self.malformed("XML declaration not at the start")),
                Token::Text(text) if is_xml_space(text) => {}
                Token::Comment => {}
                Token::Start(start) => {
                    self.enter()?;
                    return Ok((start, false));
                }
                Token::Empty(start) => return Ok((start, true)),
                Token::Eof => return Err(self.malformed("no root element")),
                _ => return Err(self.malformed("content before the root element")),
            }
            first = false;
        }
    }

    /// Whatever follows the root element: whitespace and comments only.
    fn epilog(&mut self) -> Result<(), Refusal> {
        loop {
            match self.raw()? {
                Token::Eof => return Ok(()),
                Token::Text(text) if is_xml_space(text) => {}
                Token::Comment => {}
                _ => return Err(self.malformed("content after the root element")),
            }
        }
    }

    /// The next node inside the current element.
    fn node(&mut self) -> Result<Node<'a>, Refusal> {
        loop {
            let token = self.raw()?;
            if let Some(node) = self.node_of(token)? {
                return Ok(node);
            }
        }
    }

    /// A token inside an element as a node; `None` for a comment.
    fn node_of(&mut self, token: Token<'a>) -> Result<Option<Node<'a>>, Refusal> {
        Ok(Some(match token {
            Token::Start(start) => {
                self.enter()?;
                Node::Start(start, false)
            }
            Token::Empty(start) => {
                self.enter()?;
                self.depth -= 1;
                Node::Start(start, true)
            }
            Token::End(name) => {
                self.depth = self.depth.saturating_sub(1);
                Node::End(name)
            }
            Token::Text(text) => Node::Text(tokens::text(text).map_err(|r| self.refused(r))?),
            Token::CData(data) => Node::Text(tokens::cdata(data)),
            Token::Comment => return Ok(None),
            // Never here: `raw` refuses both.
            Token::DocType | Token::Pi => {
                return Err(self.trail.refuse(ErrorCode::ForbiddenConstruct, "markup"))
            }
            Token::Decl(_) => return Err(self.malformed("XML declaration inside the message")),
            Token::Eof => {
                return Err(self.malformed("unexpected end of message: an element is not closed"))
            }
        }))
    }

    /// Refuses an end tag that does not close the element named `name`.
    fn closes(&self, end: &str, name: &str) -> Result<(), Refusal> {
        if end != name {
            return Err(self.malformed("mismatched end tag"));
        }
        Ok(())
    }

    /// The text of the element `name` whose start was read (character data only).
    fn text_content(&mut self, name: &str, empty: bool) -> Result<Cow<'a, str>, Refusal> {
        if empty {
            return Ok(Cow::Borrowed(""));
        }
        // The usual value: one piece of text, then the end tag.
        let mut token = self.raw()?;
        let mut text: Option<Cow<'a, str>> = None;
        if let Token::Text(piece) = token {
            text = Some(tokens::text(piece).map_err(|r| self.refused(r))?);
            token = self.raw()?;
        }
        if let Token::End(end) = token {
            self.depth = self.depth.saturating_sub(1);
            self.closes(end, name)?;
            return Ok(text.unwrap_or(Cow::Borrowed("")));
        }
        let mut pending = self.node_of(token)?;
        loop {
            let node = match pending.take() {
                Some(node) => node,
                None => self.node()?,
            };
            match node {
                Node::Text(piece) => {
                    text = Some(match text {
                        None => piece,
                        Some(before) => {
                            let mut joined = before.into_owned();
                            joined.push_str(&piece);
                            Cow::Owned(joined)
                        }
                    });
                }
                Node::End(end) => {
                    self.closes(end, name)?;
                    return Ok(text.unwrap_or(Cow::Borrowed("")));
                }
                Node::Start(..) => return Err(self.malformed("an element inside a value")),
            }
        }
    }

    fn no_attributes(&self, start: &Tag<'a>) -> Result<(), Refusal> {
        if start.has_attributes() {
            return Err(self.malformed("attributes on an element that takes none"));
        }
        Ok(())
    }

    /// The attributes of an element, unescaped, bounded in number.
    fn attributes(&self, start: &Tag<'a>) -> Result<Vec<(&'a str, Cow<'a, str>)>, Refusal> {
        let mut out: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
        for attribute in start.attributes() {
            let (key, raw) = attribute.map_err(|r| self.refused(r))?;
            if out.iter().any(|(k, _)| *k == key) {
                return Err(self
                    .trail
                    .refuse(ErrorCode::DuplicateField, "an attribute given twice"));
            }
            if out.len() == self.limits.attributes_max {
                return Err(self.trail.refuse(
                    ErrorCode::TooMany,
                    format_args!(
                        "more than {} attributes on one element",
                        self.limits.attributes_max
                    ),
                ));
            }
            let value = tokens::attribute_value(raw).map_err(|r| self.refused(r))?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The field of `schema` named `wire`, trying the field after the last one first.
    fn find(names: &Names, wire: &str, hint: &mut usize) -> Option<usize> {
        // From the hint on first, then before it: the same index as a scan
        // from the start, as a dialect's names are distinct in a schema.
        let print = fingerprint(wire.as_bytes().iter(), wire.len());
        // Up to seven bytes the fingerprint is the name (most tj and he names).
        let is = |i: &usize| {
            names.prints[*i] == print && (wire.len() <= 7 || names.wire[*i].matches(wire))
        };
        let from = (*hint).min(names.len());
        let index = (from..names.len())
            .find(is)
            .or_else(|| (0..from).find(is))?;
        *hint = index + 1;
        Some(index)
    }

    /// Reads the element whose start is `start` into `record`.
    fn record(
        &mut self,
        record: &mut dyn Record,
        start: &Tag<'a>,
        empty: bool,
        hook: &mut dyn Hook<'a, S>,
        reserved: &[&str],
    ) -> Result<(), Refusal> {
        let schema = record.schema();
        let names = S::name_cache().names::<S>(schema);
        let mut seen = Seen::default();
        let mut hint = 0usize;
        for (key, value) in self.attributes(start)? {
            if hook.attribute(self, key, &value)? {
                continue;
            }
            if S::PLACEMENT == Placement::Elements {
                return Err(self.malformed("attributes are not used on this element"));
            }
            match Self::find(&names, key, &mut hint) {
                Some(index) => {
                    let def = &schema.fields[index];
                    self.push(Step::Name(def.name));
                    match record.field_mut(index) {
                        FieldMut::Scalar(slot) => {
                            if !seen.insert(index) {
                                return Err(self
                                    .trail
                                    .refuse(ErrorCode::DuplicateField, "given twice"));
                            }
                            self.scalar(slot, &value)?;
                        }
                        _ => return Err(self.malformed("a record or list given as an attribute")),
                    }
                    self.pop();
                }
                None => {
                    let mut raw = Vec::with_capacity(value.len() + 2);
                    json::write_string(&mut raw, &value);
                    let raw = String::from_utf8(raw)
                        .map_err(|_| self.malformed("unreadable attribute"))?;
                    self.add_extra(record.extras_mut(), schema, key, raw, reserved)?;
                }
            }
        }
        if empty {
            return Ok(());
        }
        loop {
            let (child, child_empty) = match self.node()? {
                Node::End(end) => return self.closes(end, start.name),
                Node::Text(text) if is_xml_space(&text) => continue,
                Node::Text(_) => return Err(self.malformed("text where elements are expected")),
                Node::Start(child, child_empty) => (child, child_empty),
            };
            let name = child.name;
            if hook.child(self, name, &child, child_empty, false)? {
                continue;
            }
            if name == EXT {
                self.ext(record.extras_mut(), schema, &child, child_empty, reserved)?;
                continue;
            }
            let Some(index) = Self::find(&names, name, &mut hint) else {
                self.unknown_element(record.extras_mut(), schema, &child, child_empty, reserved)?;
                continue;
            };
            let def = &schema.fields[index];
            self.push(Step::Name(def.name));
            match record.field_mut(index) {
                FieldMut::Scalar(slot) => {
                    if S::PLACEMENT == Placement::Attributes {
                        return Err(self
                            .malformed("a scalar field given as an element (it is an attribute)"));
                    }
                    if !seen.insert(index) {
                        return Err(self.trail.refuse(ErrorCode::DuplicateField, "given twice"));
                    }
                    self.no_attributes(&child)?;
                    let text = self.text_content(name, child_empty)?;
                    self.scalar(slot, &text)?;
                }
                FieldMut::Record(slot) => {
                    if !seen.insert(index) {
                        return Err(self.trail.refuse(ErrorCode::DuplicateField, "given twice"));
                    }
                    self.record(slot.get_or_insert(), &child, child_empty, &mut NoHook, &[])?;
                }
                FieldMut::List(list) => match S::FRAME.list_item {
                    None => {
                        if list.len() >= self.limits.items_max {
                            return Err(self.trail.refuse(
                                ErrorCode::TooMany,
                                format_args!("more than {} items", self.limits.items_max),
                            ));
                        }
                        self.push(Step::Index(list.len()));
                        self.record(list.push_default(), &child, child_empty, &mut NoHook, &[])?;
                        self.pop();
                    }
                    Some(item) => {
                        if !seen.insert(index) {
                            return Err(self
                                .trail
                                .refuse(ErrorCode::DuplicateField, "given twice"));
                        }
                        self.no_attributes(&child)?;
                        if !child_empty {
                            self.list_items(list, item, name)?;
                        }
                    }
                },
            }
            self.pop();
        }
    }

    /// The items of a wrapped list, its start read.
    fn list_items(
        &mut self,
        list: &mut dyn contracts::record::RecordList,
        item: &'static str,
        wrapper: &str,
    ) -> Result<(), Refusal> {
        loop {
            match self.node()? {
                Node::End(end) => return self.closes(end, wrapper),
                Node::Text(text) if is_xml_space(&text) => {}
                Node::Text(_) => return Err(self.malformed("text where list items are expected")),
                Node::Start(child, child_empty) => {
                    if child.name != item {
                        return Err(
                            self.malformed(format_args!("a list holds only <{item}> elements"))
                        );
                    }
                    if list.len() >= self.limits.items_max {
                        return Err(self.trail.refuse(
                            ErrorCode::TooMany,
                            format_args!("more than {} items", self.limits.items_max),
                        ));
                    }
                    self.push(Step::Index(list.len()));
                    self.record(list.push_default(), &child, child_empty, &mut NoHook, &[])?;
                    self.pop();
                }
            }
        }
    }

    /// `<Ext k="key">JSON</Ext>`.
    fn ext(
        &mut self,
        extras: &mut Extras,
        schema: &'static Schema,
        start: &Tag<'a>,
        empty: bool,
        reserved: &[&str],
    ) -> Result<(), Refusal> {
        let mut key = None;
        for (name, value) in self.attributes(start)? {
            if name != EXT_KEY || key.is_some() {
                return Err(self.malformed(format_args!("<{EXT}> takes one attribute, {EXT_KEY}")));
            }
            key = Some(value);
        }
        let Some(key) = key else {
            return Err(self.malformed(format_args!("<{EXT}> without its {EXT_KEY} attribute")));
        };
        let value = self.text_content(EXT, empty)?;
        // Judged at the depth the national dialect nests this record's keys: one
        // object for the message, then one level per step of the path.
        let mut check = json::Reader::nested(&value, self.steps + 1, self.limits.depth_max);
        // The value without the whitespace around it, as the national dialect keeps it.
        let json = match check.skip_value() {
            Ok(json) if check.finish().is_ok() => json.to_owned(),
            _ => return Err(self.malformed(format_args!("<{EXT}> does not hold one JSON value"))),
        };
        self.add_extra(extras, schema, &key, json, reserved)
    }

    /// An element the schema does not name: kept as an extra holding its text
    /// as a JSON string, if it is only text.
    fn unknown_element(
        &mut self,
        extras: &mut Extras,
        schema: &'static Schema,
        start: &Tag<'a>,
        empty: bool,
        reserved: &[&str],
    ) -> Result<(), Refusal> {
        let key = start.name;
        if start.has_attributes() {
            return Err(self.malformed(format_args!(
                "unknown element with attributes (carry such data in <{EXT}>)"
            )));
        }
        let mut text: Option<Cow<'a, str>> = None;
        if !empty {
            loop {
                match self.node()? {
                    Node::Text(piece) => {
                        text = Some(match text {
                            None => piece,
                            Some(before) => Cow::Owned(before.into_owned() + &piece),
                        })
                    }
                    Node::End(end) => {
                        self.closes(end, key)?;
                        break;
                    }
                    Node::Start(_, child_empty) => {
                        // Skip the rest (bounded by depth) so a nesting bomb is named as such.
                        if !child_empty {
                            self.skip()?;
                        }
                        return Err(self.malformed(format_args!(
                            "unknown element with child elements (carry such data in <{EXT}>)"
                        )));
                    }
                }
            }
        }
        let mut raw = Vec::new();
        json::write_string(&mut raw, text.as_deref().unwrap_or(""));
        let raw = String::from_utf8(raw).map_err(|_| self.malformed("unreadable text"))?;
        self.add_extra(extras, schema, key, raw, reserved)
    }

    /// Skips the rest of the current element.
    fn skip(&mut self) -> Result<(), Refusal> {
        let base = self.depth;
        while self.depth >= base {
            self.node()?;
        }
        Ok(())
    }

    fn add_extra(
        &mut self,
        extras: &mut Extras,
        schema: &'static Schema,
        key: &str,
        raw: String,
        reserved: &[&str],
    ) -> Result<(), Refusal> {
        if schema.index_of(key).is_some() || reserved.contains(&key) {
            return Err(self.malformed("an extra key that names a field of the record"));
        }
        extras
            .room_for(key, raw.len())
            .map_err(|(code, detail)| self.trail.refuse(code, detail))?;
        extras.0.push((key.to_owned(), raw));
        Ok(())
    }

    /// Stores a scalar's wire text. Empty text means absent.
    fn scalar(&self, slot: &mut dyn ScalarSlot, text: &str) -> Result<(), Refusal> {
        if text.is_empty() {
            return Ok(());
        }
        let result =
            match slot.kind() {
                Kind::Money => match S::MONEY {
                    MoneyUnit::Yuan => slot.set_national(text),
                    MoneyUnit::Fen => Money::parse_fen(text)
                        .map_err(ValueError::from)
                        .and_then(|m| slot.set(Scalar::Money(m))),
                },
                Kind::Date => parse_date(S::CLOCK, text).and_then(|d| slot.set(Scalar::Date(d))),
                Kind::DateTime => parse_date_time(S::CLOCK, text, false)
                    .and_then(|t| slot.set(Scalar::DateTime(t))),
                Kind::Stamp => parse_date_time(S::CLOCK, text, true)
                    .and_then(|t| slot.set(Scalar::DateTime(t))),
                Kind::Code(set) => match S::codes(set) {
                    None => slot.set_national(text),
                    Some(table) => match table.to_national(text) {
                        Some(national) => slot.set_national(national),
                        None => match text.strip_prefix(CODE_ESCAPE) {
                            Some(national) if table.to_wire(national).is_none() => {
                                slot.set_national(national)
                            }
                            _ => Err(ValueError::Code(contracts::codes::CodeError {
                                table: code_set_table_name(set),
                            })),
                        },
                    },
                },
                _ => slot.set_national(text),
            };
        result.map_err(|e| self.trail.invalid(&e))
    }
}

fn parse_date(clock: Clock, text: &str) -> Result<Date, ValueError> {
    match clock {
        Clock::Compact => Ok(Date::parse_compact(text)?),
        Clock::Iso if text.len() == 10 => Ok(Date::parse(text)?),
        Clock::Iso => Err(TimeError {
            expected: "yyyy-MM-dd",
        }
        .into()),
    }
}

fn parse_date_time(clock: Clock, text: &str, millis: bool) -> Result<DateTime, ValueError> {
    let b = text.as_bytes();
    match (clock, millis) {
        (Clock::Compact, false) if b.len() == 14 => Ok(DateTime::parse_compact(text)?),
        (Clock::Compact, false) => Err(TimeError {
            expected: "yyyyMMddHHmmss",
        }
        .into()),
        (Clock::Compact, true) if b.len() == 17 => Ok(DateTime::parse_compact(text)?),
        (Clock::Compact, true) => Err(TimeError {
            expected: "yyyyMMddHHmmssSSS",
        }
        .into()),
        (Clock::Iso, _) => {
            let expected = if millis {
                "yyyy-MM-ddTHH:mm:ss.SSS"
            } else {
                "yyyy-MM-ddTHH:mm:ss"
            };
            let shape_ok = b.len() == if millis { 23 } else { 19 }
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && b[16] == b':'
                && (!millis || b[19] == b'.');
            if !shape_ok {
                return Err(TimeError { expected }.into());
            }
            // The compact form of the same digits, checked by the contracts' parser.
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            if digits.len() != if millis { 17 } else { 14 } {
                return Err(TimeError { expected }.into());
            }
            DateTime::parse_compact(&digits).map_err(|_| TimeError { expected }.into())
        }
    }
}

/// Appends a scalar's wire text.
fn write_scalar<S: XmlDialect>(kind: Kind, value: Scalar<'_>, out: &mut String) {
    match value {
        Scalar::Money(m) => match S::MONEY {
            MoneyUnit::Yuan => m.write_to(out),
            MoneyUnit::Fen => {
                let _ = contracts::money::write_scaled(out, m.fen(), 0);
            }
        },
        Scalar::Date(d) => match S::CLOCK {
            Clock::Compact => d.write_compact(out),
            Clock::Iso => d.write_national(out),
        },
        Scalar::DateTime(t) => match (S::CLOCK, kind == Kind::Stamp) {
            (Clock::Compact, false) => t.write_compact(out),
            (Clock::Compact, true) => t.write_compact_millis(out),
            (Clock::Iso, stamp) => {
                let start = out.len();
                t.write_national(out);
                out.replace_range(start + 10..start + 11, "T");
                if stamp {
                    let _ = write!(out, ".{:03}", t.millis());
                }
            }
        },
        Scalar::Text(code) => match kind {
            Kind::Code(set) => match S::codes(set) {
                Some(table) => match table.to_wire(code) {
                    Some(wire) => out.push_str(wire),
                    None => {
                        out.push_str(CODE_ESCAPE);
                        out.push_str(code);
                    }
                },
                None => out.push_str(code),
            },
            _ => out.push_str(code),
        },
        other => other.write_national(kind, out),
    }
}

/// Writes XML text with the escapes that make it read back exactly.
pub struct Writer {
    out: String,
    /// Also write Private Use Area characters as character references (for
    /// GB18030, whose 2005 and 2022 editions map some of them differently).
    escape_pua: bool,
}

impl Writer {
    /// An empty writer.
    pub fn new(capacity: usize, escape_pua: bool) -> Writer {
        Writer {
            out: String::with_capacity(capacity),
            escape_pua,
        }
    }

    /// The text written.
    pub fn into_string(self) -> String {
        self.out
    }

    /// Appends markup as it is.
    pub fn raw(&mut self, markup: &str) {
        self.out.push_str(markup);
    }

    /// Appends character data: `&`, `<`, `>` and `\r` escaped (a literal `\r`
    /// would be read as a line feed).
    pub fn text(&mut self, text: &str) {
        self.escaped(text, false);
    }

    /// Appends an attribute value for double quotes: also `"`, `\t` and `\n`
    /// escaped, which attribute-value normalisation would turn into spaces.
    pub fn attribute_value(&mut self, text: &str) {
        self.escaped(text, true);
    }

    fn escaped(&mut self, text: &str, attribute: bool) {
        let bytes = text.as_bytes();
        let mut run = 0;
        let mut index = 0;
        while index < bytes.len() {
            let b = bytes[index];
            let escape: Option<&str> = match b {
                b'&' => Some("&amp;"),
                b'<' => Some("&lt;"),
                b'>' => Some("&gt;"),
                b'\r' => Some("&#xD;"),
                b'"' if attribute => Some("&quot;"),
                b'\n' if attribute => Some("&#xA;"),
                b'\t' if attribute => Some("&#x9;"),
                0xEE | 0xEF if self.escape_pua => None,
                _ => {
                    index += 1;
                    continue;
                }
            };
            match escape {
                Some(escape) => {
                    self.out.push_str(&text[run..index]);
                    self.out.push_str(escape);
                    index += 1;
                    run = index;
                }
                None => {
                    // A three-byte character from U+E000; escape it if it is in the Private Use Area.
                    let c = text[index..].chars().next().unwrap_or('\u{0}');
                    let width = c.len_utf8().max(1);
                    if ('\u{E000}'..='\u{F8FF}').contains(&c) {
                        self.out.push_str(&text[run..index]);
                        let _ = write!(self.out, "&#x{:X};", u32::from(c));
                        run = index + width;
                    }
                    index += width;
                }
            }
        }
        self.out.push_str(&text[run..]);
    }
}

/// One text an [`Encoder`] writes: its markup so far, and whether a line of
/// scalar elements is open in it (ended before the next other element).
struct Sink {
    w: Writer,
    line: bool,
}

impl Sink {
    fn raw(&mut self, markup: &str) {
        self.w.raw(markup);
    }

    fn name(&mut self, name: WireName) {
        // Most names have no prefix: no copy of nothing.
        if !name.prefix.is_empty() {
            self.w.raw(name.prefix);
        }
        self.w.raw(name.name);
    }

    /// Closes the start tag on the first child.
    fn open(&mut self, opened: &mut bool) {
        if !std::mem::replace(opened, true) {
            self.w.raw(">\n");
        }
    }

    /// A scalar as an element. Scalars of one record share a line: each line
    /// break between elements would be one more event for every reader.
    fn simple_element(&mut self, name: WireName, text: &str) {
        self.w.raw("<");
        self.name(name);
        self.w.raw(">");
        self.w.text(text);
        self.w.raw("</");
        self.name(name);
        self.w.raw(">");
        self.line = true;
    }

    /// Ends an open line of scalar elements.
    fn end_line(&mut self) {
        if std::mem::take(&mut self.line) {
            self.w.raw("\n");
        }
    }
}

/// Writes records in a dialect, into one text or two at once (the whole
/// message, and what [`contracts::record::redact`] would leave of it).
/// Each scalar is formatted once, whichever texts it goes into.
struct Encoder<S: XmlDialect> {
    sinks: Texts<Sink>,
    /// A scalar's text.
    scratch: String,
    dialect: PhantomData<S>,
}

/// What a frame adds to one record element when writing.
#[derive(Default)]
struct Extra<'r> {
    /// The transaction number, first.
    infno: Option<&'static str>,
    /// The body element, last.
    body: Option<(&'static str, &'r dyn Record)>,
}

impl<S: XmlDialect> Encoder<S> {
    /// An encoder of the whole text (`whole`), of the redacted one
    /// (`redacted`), or of both.
    fn new(capacity: usize, whole: bool, redacted: bool) -> Self {
        let sink = |wanted: bool| {
            wanted.then(|| {
                let mut w = Writer::new(capacity, S::CHARSET == Charset::Gb18030);
                w.raw("<?xml version=\"1.0\" encoding=\"");
                w.raw(S::CHARSET.label());
                w.raw("\"?>\n");
                Sink { w, line: false }
            })
        };
        Encoder {
            sinks: [sink(whole), sink(redacted)],
            scratch: String::with_capacity(32),
            dialect: PhantomData,
        }
    }

    /// The texts (whole, redacted), in the dialect's charset.
    fn finish(self) -> Texts<Vec<u8>> {
        self.sinks
            .map(|sink| sink.map(|sink| S::CHARSET.encode(sink.w.into_string())))
    }

    /// Markup around the records, in every text.
    fn raw(&mut self, markup: &str) {
        each(&mut self.sinks, Part::Kept, |_, sink| sink.raw(markup));
    }

    fn name(&mut self, name: WireName) {
        each(&mut self.sinks, Part::Kept, |_, sink| sink.name(name));
    }

    /// Formats a scalar into `self.scratch`.
    fn scalar(&mut self, kind: Kind, value: Scalar<'_>) {
        self.scratch.clear();
        write_scalar::<S>(kind, value, &mut self.scratch);
    }

    /// Writes `record` as the element `name`.
    fn record(&mut self, name: WireName, record: &dyn Record, extra: Extra<'_>) {
        let schema = record.schema();
        let names = S::name_cache().names::<S>(schema);
        // Whether the start tag is closed, by text.
        let mut opened = [false; 2];
        each(&mut self.sinks, Part::Kept, |_, sink| {
            sink.end_line();
            sink.raw("<");
            sink.name(name);
        });
        if S::PLACEMENT == Placement::Attributes {
            if let Some(infno) = extra.infno {
                each(&mut self.sinks, Part::Kept, |_, sink| {
                    sink.raw(" ");
                    sink.raw(S::FRAME.infno);
                    sink.raw("=\"");
                    sink.w.attribute_value(infno);
                    sink.raw("\"");
                });
            }
            for (index, def) in schema.fields.iter().enumerate() {
                if let (FieldRef::Scalar(Some(value)), Shape::Scalar(kind)) =
                    (record.field(index), def.shape)
                {
                    self.scalar(kind, value);
                    let text = &self.scratch;
                    each(&mut self.sinks, Part::of(kind), |_, sink| {
                        sink.raw(" ");
                        sink.name(names[index]);
                        sink.raw("=\"");
                        sink.w.attribute_value(text);
                        sink.raw("\"");
                    });
                }
            }
        } else if let Some(infno) = extra.infno {
            each(&mut self.sinks, Part::Kept, |i, sink| {
                sink.open(&mut opened[i]);
                sink.simple_element(WireName::plain(S::FRAME.infno), infno);
            });
        }
        for (index, def) in schema.fields.iter().enumerate() {
            match (record.field(index), def.shape) {
                (FieldRef::Scalar(Some(value)), Shape::Scalar(kind))
                    if S::PLACEMENT == Placement::Elements =>
                {
                    self.scalar(kind, value);
                    let text = &self.scratch;
                    each(&mut self.sinks, Part::of(kind), |i, sink| {
                        sink.open(&mut opened[i]);
                        sink.simple_element(names[index], text);
                    });
                }
                (FieldRef::Record(Some(child)), _) => {
                    each(&mut self.sinks, Part::Kept, |i, sink| {
                        sink.open(&mut opened[i])
                    });
                    self.record(names[index], child, Extra::default());
                }
                (FieldRef::List(list), _) if !list.is_empty() => {
                    each(&mut self.sinks, Part::Kept, |i, sink| {
                        sink.open(&mut opened[i])
                    });
                    let name = names[index];
                    match S::FRAME.list_item {
                        Some(item) => {
                            each(&mut self.sinks, Part::Kept, |_, sink| {
                                sink.end_line();
                                sink.raw("<");
                                sink.name(name);
                                sink.raw(">\n");
                            });
                            for i in 0..list.len() {
                                if let Some(child) = list.get(i) {
                                    self.record(WireName::plain(item), child, Extra::default());
                                }
                            }
                            each(&mut self.sinks, Part::Kept, |_, sink| {
                                sink.end_line();
                                sink.raw("</");
                                sink.name(name);
                                sink.raw(">\n");
                            });
                        }
                        None => {
                            for i in 0..list.len() {
                                if let Some(child) = list.get(i) {
                                    self.record(name, child, Extra::default());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for (key, raw) in &record.extras().0 {
            each(&mut self.sinks, Part::Personal, |i, sink| {
                sink.open(&mut opened[i]);
                sink.end_line();
                sink.raw("<");
                sink.raw(EXT);
                sink.raw(" ");
                sink.raw(EXT_KEY);
                sink.raw("=\"");
                sink.w.attribute_value(key);
                sink.raw("\">");
                sink.w.text(raw);
                sink.raw("</");
                sink.raw(EXT);
                sink.raw(">\n");
            });
        }
        if let Some((body_name, body)) = extra.body {
            each(&mut self.sinks, Part::Kept, |i, sink| {
                sink.open(&mut opened[i])
            });
            self.record(WireName::plain(body_name), body, Extra::default());
        }
        each(&mut self.sinks, Part::Kept, |i, sink| {
            if opened[i] {
                sink.end_line();
                sink.raw("</");
                sink.name(name);
                sink.raw(">\n");
            } else {
                sink.raw("/>\n");
            }
        });
    }
}

/// Decodes a request in dialect `S`.
pub fn decode_request<S: XmlDialect>(bytes: &[u8], limits: &Limits) -> Result<Request, Refusal> {
    let mut envelope = RequestEnvelope::default();
    let mut hook = RequestHook {
        infno: None,
        infno_seen: false,
        body: None,
    };
    decode_message::<S>(
        bytes,
        limits,
        "request",
        S::FRAME.request_root,
        &mut envelope,
        &mut hook,
        REQUEST_RESERVED,
    )?;
    let infno = hook
        .infno
        .ok_or_else(|| Refusal::new(ErrorCode::MissingField, "infno"))?;
    let input = hook.body.unwrap_or_else(|| RequestBody::empty(infno));
    Ok(Request { envelope, input })
}

/// Decodes an answer in dialect `S` to a request of transaction `infno`.
pub fn decode_answer<S: XmlDialect>(
    infno: Infno,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Answer, Refusal> {
    let mut envelope = AnswerEnvelope::default();
    let mut hook = AnswerHook {
        infno,
        output: None,
    };
    decode_message::<S>(
        bytes,
        limits,
        "answer",
        S::FRAME.answer_root,
        &mut envelope,
        &mut hook,
        ANSWER_RESERVED,
    )?;
    if envelope.infcode.is_none() {
        return Err(Refusal::new(ErrorCode::MissingField, "infcode"));
    }
    Ok(Answer {
        envelope,
        output: hook.output,
    })
}

/// Reads one message of dialect `S` (a `kind`: request or answer) into
/// `envelope` and `hook`: its root, which must be the element `root_name`,
/// the envelope and the body (under the dialect's header element when it
/// has one; `reserved` names the fields the hook takes), then nothing but
/// white space and comments.
fn decode_message<S: XmlDialect>(
    bytes: &[u8],
    limits: &Limits,
    kind: &str,
    root_name: &str,
    envelope: &mut dyn Record,
    hook: &mut dyn for<'a> Hook<'a, S>,
    reserved: &[&str],
) -> Result<(), Refusal> {
    limits.check_size(bytes)?;
    let text = S::CHARSET.decode(bytes)?;
    let mut d = Decoder::<S>::new(&text, limits);
    let (root, empty) = d.root()?;
    if root.name != root_name {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            format!("a {} {kind}'s root element is <{root_name}>", S::NAME),
        ));
    }
    match S::FRAME.header {
        None => d.record(envelope, &root, empty, hook, reserved)?,
        Some(header) => d.framed(&root, empty, header, envelope, hook, reserved)?,
    }
    d.epilog()
}

impl<'a, S: XmlDialect> Decoder<'a, '_, S> {
    /// A root holding a header element (the envelope) and the body.
    fn framed(
        &mut self,
        root: &Tag<'a>,
        empty: bool,
        header: &'static str,
        envelope: &mut dyn Record,
        hook: &mut dyn Hook<'a, S>,
        reserved: &[&str],
    ) -> Result<(), Refusal> {
        for (key, _) in self.attributes(root)? {
            if !is_namespace_attribute(key) {
                return Err(self.malformed("attributes on the root element"));
            }
        }
        if empty {
            return Ok(());
        }
        let mut header_seen = false;
        loop {
            match self.node()? {
                Node::End(end) => return self.closes(end, root.name),
                Node::Text(text) if is_xml_space(&text) => {}
                Node::Text(_) => return Err(self.malformed("text where elements are expected")),
                Node::Start(child, child_empty) => {
                    let name = child.name;
                    if name == header {
                        if std::mem::replace(&mut header_seen, true) {
                            return Err(Refusal::new(
                                ErrorCode::DuplicateField,
                                format!("{header}: given twice"),
                            ));
                        }
                        self.record(envelope, &child, child_empty, hook, reserved)?;
                    } else if !hook.child(self, name, &child, child_empty, true)? {
                        return Err(self.malformed(format_args!(
                            "unexpected element under the root (expected <{header}> and its body)"
                        )));
                    }
                }
            }
        }
    }
}

/// Encodes a request in dialect `S`.
pub fn encode_request<S: XmlDialect>(request: &Request) -> Vec<u8> {
    let mut e = Encoder::<S>::new(1024, true, false);
    let root = WireName::plain(S::FRAME.request_root);
    let infno = request.infno().code();
    let body = (S::FRAME.input, request.input.record());
    match S::FRAME.header {
        None => e.record(
            root,
            &request.envelope,
            Extra {
                infno: Some(infno),
                body: Some(body),
            },
        ),
        Some(header) => {
            e.raw("<");
            e.name(root);
            e.raw(">\n");
            e.record(
                WireName::plain(header),
                &request.envelope,
                Extra {
                    infno: Some(infno),
                    body: None,
                },
            );
            e.record(WireName::plain(body.0), body.1, Extra::default());
            e.raw("</");
            e.name(root);
            e.raw(">\n");
        }
    }
    let [whole, _] = e.finish();
    whole.unwrap_or_default()
}

/// Encodes an answer in dialect `S`. An absent output is left out.
pub fn encode_answer<S: XmlDialect>(answer: &Answer) -> Vec<u8> {
    let [whole, _] = encode_answer_as::<S>(answer, true, false);
    whole.unwrap_or_default()
}

/// Encodes an answer in dialect `S` as [`contracts::record::redact`] would
/// leave it (personal fields and extras left out), without copying it: the
/// same bytes as redacting a clone and encoding that.
pub fn encode_answer_redacted<S: XmlDialect>(answer: &Answer) -> Vec<u8> {
    let [_, redacted] = encode_answer_as::<S>(answer, false, true);
    redacted.unwrap_or_default()
}

/// [`encode_answer`] and [`encode_answer_redacted`] in one pass.
pub fn encode_answer_and_redacted<S: XmlDialect>(answer: &Answer) -> (Vec<u8>, Vec<u8>) {
    let [whole, redacted] = encode_answer_as::<S>(answer, true, true);
    (whole.unwrap_or_default(), redacted.unwrap_or_default())
}

/// The answer's texts asked for: whole, redacted.
fn encode_answer_as<S: XmlDialect>(answer: &Answer, whole: bool, redacted: bool) -> Texts<Vec<u8>> {
    let mut e = Encoder::<S>::new(1024, whole, redacted);
    let root = WireName::plain(S::FRAME.answer_root);
    let body = answer
        .output
        .as_ref()
        .map(|b| (S::FRAME.output, b.record()));
    match S::FRAME.header {
        None => e.record(root, &answer.envelope, Extra { infno: None, body }),
        Some(header) => {
            e.raw("<");
            e.name(root);
            e.raw(">\n");
            e.record(WireName::plain(header), &answer.envelope, Extra::default());
            if let Some((name, body)) = body {
                e.record(WireName::plain(name), body, Extra::default());
            }
            e.raw("</");
            e.name(root);
            e.raw(">\n");
        }
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup by fingerprint finds what a scan of every name would, for
    /// every field of every record of both XML dialects, from every hint;
    /// and misses names that are not there (same length, same first bytes).
    #[test]
    fn lookup_by_fingerprint_finds_what_a_scan_finds() {
        fn check<S: XmlDialect>() {
            let mut schemas = vec![
                RequestEnvelope::static_schema(),
                AnswerEnvelope::static_schema(),
            ];
            for &infno in Infno::ALL {
                schemas.push(infno.input_schema());
                schemas.push(infno.output_schema());
            }
            let mut checked = 0;
            while let Some(schema) = schemas.pop() {
                let names = Names::of::<S>(schema);
                for (i, name) in names.iter().enumerate() {
                    let wire = name.to_text();
                    for start in 0..=names.len() {
                        let mut hint = start;
                        assert_eq!(
                            Decoder::<S>::find(&names, &wire, &mut hint),
                            Some(i),
                            "{wire}"
                        );
                        assert_eq!(hint, i + 1);
                    }
                    for other in [format!("{wire}X"), format!("{}Y", &wire[..wire.len() - 1])] {
                        let scan = names.iter().position(|n| n.matches(&other));
                        assert_eq!(Decoder::<S>::find(&names, &other, &mut 0), scan, "{other}");
                    }
                    checked += 1;
                }
                for def in schema.fields {
                    if let Shape::Record(child) | Shape::List(child) = def.shape {
                        schemas.push(child());
                    }
                }
            }
            assert!(checked > 100, "{checked}");
        }
        check::<crate::tj::Tj>();
        check::<crate::he::He>();
    }

    #[test]
    fn writer_escapes_what_reading_would_change() {
        let mut w = Writer::new(16, true);
        w.text("a&<>\r\n\t\"\u{E78D}中");
        w.attribute_value("|\t\n\"");
        assert_eq!(
            w.into_string(),
            "a&amp;&lt;&gt;&#xD;\n\t\"&#xE78D;中|&#x9;&#xA;&quot;"
        );
    }

    proptest::proptest! {
        /// What the writer writes, the reader reads back as it was, in text
        /// and in attribute values, with or without the private use area
        /// escaped (whether a value takes the writer's plain path or not).
        #[test]
        fn written_text_reads_back(
            text in "(\\PC|[&<>\"'\r\n\t\u{E000}-\u{E010}\u{F8FF}])*",
            escape_pua in proptest::prelude::any::<bool>(),
        ) {
            let mut w = Writer::new(16, escape_pua);
            w.text(&text);
            let written = w.into_string();
            let read = tokens::text(&written).map(|t| t.into_owned());
            proptest::prop_assert_eq!(read, Ok(text.clone()));
            proptest::prop_assert!(!written.contains('<') && !written.contains('\r'));
            let mut w = Writer::new(16, escape_pua);
            w.attribute_value(&text);
            let written = w.into_string();
            let read = tokens::attribute_value(&written).map(|t| t.into_owned());
            proptest::prop_assert_eq!(read, Ok(text.clone()));
            proptest::prop_assert_eq!(
                written.contains(|c| ('\u{E000}'..='\u{F8FF}').contains(&c)),
                !escape_pua && text.contains(|c| ('\u{E000}'..='\u{F8FF}').contains(&c))
            );
        }
    }
}
