//! The national dialect: the national platform's JSON interface, as hospital
//! systems everywhere and the Beijing platform speak it.
//!
//! Reading is forgiving where real systems differ and exact about money:
//! `infcode` and amounts come as numbers or strings, amounts with any number
//! of written decimals (`9`, `296.2`, `1200.000`) but never more significant
//! ones than a fen; `null` and `""` mean absent; keys the standard does not
//! name are kept and sent on. Writing is strict: amounts are numbers with
//! exactly their kind's decimals, times in the standard's forms, absent fields
//! left out, lists always lists.

use crate::dialect::{Dialect, Limits, Seen};
use crate::json::{write_string, JsonError, Reader, Token};
use crate::texts::{each, Part, Texts};
use crate::trail::{Step, Trail};
use contracts::model::envelope::{AnswerEnvelope, RequestEnvelope};
use contracts::record::{Extras, FieldMut, FieldRef, Kind, Record, Shape};
use contracts::{Answer, AnswerBody, ErrorCode, Infno, Refusal, Request, RequestBody};

/// The national JSON dialect.
pub struct National;

/// The national dialect's name, as configuration and [`Dialect::name`] give it.
pub const NAME: &str = "national";

impl Dialect for National {
    fn name(&self) -> &'static str {
        NAME
    }

    fn media_type(&self) -> &'static str {
        "application/json; charset=utf-8"
    }

    fn decode_request(&self, bytes: &[u8], limits: &Limits) -> Result<Request, Refusal> {
        decode_request(bytes, limits)
    }

    fn encode_request(&self, request: &Request) -> Vec<u8> {
        encode_request(request)
    }

    fn decode_answer(
        &self,
        infno: Infno,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Answer, Refusal> {
        decode_answer(infno, bytes, limits)
    }

    fn encode_answer(&self, _infno: Option<Infno>, answer: &Answer) -> Vec<u8> {
        encode_answer(answer)
    }

    fn encode_answer_redacted(&self, _infno: Option<Infno>, answer: &Answer) -> Vec<u8> {
        encode_answer_redacted(answer)
    }

    fn encode_answer_and_redacted(
        &self,
        _infno: Option<Infno>,
        answer: &Answer,
    ) -> (Vec<u8>, Vec<u8>) {
        encode_answer_and_redacted(answer)
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, Refusal> {
    // Some Windows systems start their UTF-8 with a byte-order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        Refusal::new(
            ErrorCode::WrongEncoding,
            format!("not UTF-8 at byte {}", e.valid_up_to()),
        )
    })
}

fn json_refusal(error: JsonError, trail: &Trail<'_>) -> Refusal {
    match error {
        JsonError::Syntax(at, what) => {
            trail.refuse(ErrorCode::Malformed, format_args!("{what} at byte {at}"))
        }
        JsonError::TooDeep(at) => trail.refuse(
            ErrorCode::TooDeep,
            format_args!("nested too deeply at byte {at}"),
        ),
    }
}

/// Decodes fields of one JSON object into records.
struct Decoder<'a, 't> {
    reader: Reader<'a>,
    limits: &'t Limits,
    trail: Trail<'static>,
}

impl<'a, 't> Decoder<'a, 't> {
    /// A decoder of `bytes` (within `limits`), past the opening brace of the
    /// message's object; `what` names the message in refusals.
    fn open(bytes: &'a [u8], limits: &'t Limits, what: &str) -> Result<Self, Refusal> {
        limits.check_size(bytes)?;
        let mut decoder = Decoder {
            reader: Reader::new(utf8(bytes)?, limits.depth_max),
            limits,
            trail: Trail::new(),
        };
        match decoder.next()? {
            Token::ObjectStart => Ok(decoder),
            _ => Err(Refusal::new(
                ErrorCode::Malformed,
                format!("{what} is a JSON object"),
            )),
        }
    }
}

impl<'a> Decoder<'a, '_> {
    fn next(&mut self) -> Result<Token<'a>, Refusal> {
        self.reader
            .next_token()
            .map_err(|e| json_refusal(e, &self.trail))
    }

    fn next_key(&mut self, first: bool) -> Result<Option<std::borrow::Cow<'a, str>>, Refusal> {
        self.reader
            .next_key(first)
            .map_err(|e| json_refusal(e, &self.trail))
    }

    fn skip_value(&mut self) -> Result<&'a str, Refusal> {
        self.reader
            .skip_value()
            .map_err(|e| json_refusal(e, &self.trail))
    }

    /// Reads a scalar's text: `None` for `null` and `""`.
    fn scalar_text(&mut self) -> Result<Option<std::borrow::Cow<'a, str>>, Refusal> {
        match self.next()? {
            Token::Null => Ok(None),
            Token::String(text) if text.is_empty() => Ok(None),
            Token::String(text) => Ok(Some(text)),
            Token::Number(text) => Ok(Some(text.into())),
            Token::Bool(_) => Err(self.trail.refuse(
                ErrorCode::InvalidValue,
                "expected a string or a number, found a boolean",
            )),
            Token::ObjectStart | Token::ArrayStart => Err(self
                .trail
                .refuse(ErrorCode::Malformed, "expected a string or a number")),
        }
    }

    /// Reads the rest of an object (its `{` consumed) into `record`.
    fn record(&mut self, record: &mut dyn Record) -> Result<(), Refusal> {
        let mut seen = Seen::default();
        let mut first = true;
        let mut hint = 0;
        while let Some(key) = self.next_key(first)? {
            first = false;
            self.field(record, &key, &mut seen, &mut hint)?;
        }
        Ok(())
    }

    /// Reads one key's value into `record`: a field of its schema, or an extra.
    fn field(
        &mut self,
        record: &mut dyn Record,
        key: &str,
        seen: &mut Seen,
        hint: &mut usize,
    ) -> Result<(), Refusal> {
        let schema = record.schema();
        let Some(index) = schema.index_of_from(key, *hint) else {
            return self.extra(record.extras_mut(), key);
        };
        *hint = index + 1;
        let def = &schema.fields[index];
        self.trail.push(Step::Name(def.name));
        if !seen.insert(index) {
            return Err(self.trail.refuse(ErrorCode::DuplicateField, "given twice"));
        }
        match record.field_mut(index) {
            FieldMut::Scalar(slot) => {
                if let Some(text) = self.scalar_text()? {
                    slot.set_national(&text)
                        .map_err(|e| self.trail.invalid(&e))?;
                }
            }
            FieldMut::Record(slot) => match self.next()? {
                Token::ObjectStart => self.record(slot.get_or_insert())?,
                Token::Null => {}
                Token::String(text) if text.is_empty() => {}
                _ => {
                    return Err(self
                        .trail
                        .refuse(ErrorCode::Malformed, "expected an object"))
                }
            },
            FieldMut::List(list) => match self.next()? {
                Token::ArrayStart => {
                    let mut first = true;
                    let mut count = 0;
                    while self
                        .reader
                        .next_element(first)
                        .map_err(|e| json_refusal(e, &self.trail))?
                    {
                        first = false;
                        if count == self.limits.items_max {
                            return Err(self.trail.refuse(
                                ErrorCode::TooMany,
                                format_args!("more than {} items", self.limits.items_max),
                            ));
                        }
                        self.trail.push(Step::Index(count));
                        match self.next()? {
                            Token::ObjectStart => self.record(list.push_default())?,
                            _ => {
                                return Err(self
                                    .trail
                                    .refuse(ErrorCode::Malformed, "expected an object"))
                            }
                        }
                        self.trail.pop();
                        count += 1;
                    }
                }
                Token::Null => {}
                Token::String(text) if text.is_empty() => {}
                _ => return Err(self.trail.refuse(ErrorCode::Malformed, "expected a list")),
            },
        }
        self.trail.pop();
        Ok(())
    }

    fn extra(&mut self, extras: &mut Extras, key: &str) -> Result<(), Refusal> {
        let raw = self.skip_value()?;
        extras
            .room_for(key, raw.len())
            .map_err(|(code, detail)| self.trail.refuse(code, detail))?;
        extras.0.push((key.to_owned(), raw.to_owned()));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Refusal> {
        self.reader
            .finish()
            .map_err(|e| json_refusal(e, &self.trail))
    }
}

/// Decodes a national request.
pub fn decode_request(bytes: &[u8], limits: &Limits) -> Result<Request, Refusal> {
    let mut decoder = Decoder::open(bytes, limits, "a request")?;
    let mut envelope = RequestEnvelope::default();
    let mut seen = Seen::default();
    let mut hint = 0;
    let mut input: Option<RequestBody> = None;
    let mut deferred_input: Option<(&str, usize)> = None;
    let mut infno: Option<Infno> = None;
    let mut infno_seen = false;
    let mut first = true;
    while let Some(key) = decoder.next_key(first)? {
        first = false;
        match &*key {
            "infno" => {
                decoder.trail.push(Step::Name("infno"));
                if std::mem::replace(&mut infno_seen, true) {
                    return Err(decoder
                        .trail
                        .refuse(ErrorCode::DuplicateField, "given twice"));
                }
                let text = decoder
                    .scalar_text()?
                    .ok_or_else(|| Refusal::new(ErrorCode::MissingField, "infno"))?;
                infno = Some(Infno::from_code(&text).ok_or_else(|| unknown_transaction(&text))?);
                decoder.trail.pop();
            }
            "input" => {
                if input.is_some() || deferred_input.is_some() {
                    return Err(Refusal::new(
                        ErrorCode::DuplicateField,
                        "input: given twice",
                    ));
                }
                match infno {
                    // The usual order: infno first, so the body is read in one pass.
                    Some(known) => input = Some(decode_input(&mut decoder, known)?),
                    None => {
                        let depth = decoder.reader.depth();
                        deferred_input = Some((decoder.skip_value()?, depth));
                    }
                }
            }
            other => decoder.field(&mut envelope, other, &mut seen, &mut hint)?,
        }
    }
    decoder.finish()?;
    let infno = infno.ok_or_else(|| Refusal::new(ErrorCode::MissingField, "infno"))?;
    let input = match (input, deferred_input) {
        (Some(body), _) => body,
        (None, Some((raw, depth))) => {
            let mut nested = Decoder {
                reader: Reader::nested(raw, depth, limits.depth_max),
                limits,
                trail: Trail::new(),
            };
            decode_input(&mut nested, infno)?
        }
        (None, None) => RequestBody::empty(infno),
    };
    Ok(Request { envelope, input })
}

fn unknown_transaction(text: &str) -> Refusal {
    // A transaction number is short and not personal; anything else is not repeated.
    if text.len() <= 8 && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Refusal::new(ErrorCode::UnknownTransaction, format!("infno {text}"))
    } else {
        Refusal::new(ErrorCode::UnknownTransaction, "infno")
    }
}

fn decode_input(decoder: &mut Decoder<'_, '_>, infno: Infno) -> Result<RequestBody, Refusal> {
    let mut body = RequestBody::empty(infno);
    decoder.trail.push(Step::Name("input"));
    match decoder.next()? {
        Token::ObjectStart => decoder.record(body.record_mut())?,
        Token::Null => {}
        Token::String(text) if text.is_empty() => {}
        _ => {
            return Err(decoder
                .trail
                .refuse(ErrorCode::Malformed, "expected an object"))
        }
    }
    decoder.trail.pop();
    Ok(body)
}

/// Decodes a national answer to a request of transaction `infno`.
pub fn decode_answer(infno: Infno, bytes: &[u8], limits: &Limits) -> Result<Answer, Refusal> {
    let mut decoder = Decoder::open(bytes, limits, "an answer")?;
    let mut envelope = AnswerEnvelope::default();
    let mut seen = Seen::default();
    let mut hint = 0;
    let mut output: Option<AnswerBody> = None;
    let mut output_seen = false;
    let mut first = true;
    while let Some(key) = decoder.next_key(first)? {
        first = false;
        if key == "output" {
            decoder.trail.push(Step::Name("output"));
            if std::mem::replace(&mut output_seen, true) {
                return Err(decoder
                    .trail
                    .refuse(ErrorCode::DuplicateField, "given twice"));
            }
            match decoder.next()? {
                Token::ObjectStart => {
                    let mut body = AnswerBody::empty(infno);
                    decoder.record(body.record_mut())?;
                    output = Some(body);
                }
                Token::Null => {}
                Token::String(text) if text.is_empty() => {}
                _ => {
                    return Err(decoder
                        .trail
                        .refuse(ErrorCode::Malformed, "expected an object"))
                }
            }
            decoder.trail.pop();
        } else {
            decoder.field(&mut envelope, &key, &mut seen, &mut hint)?;
        }
    }
    decoder.finish()?;
    if envelope.infcode.is_none() {
        return Err(Refusal::new(ErrorCode::MissingField, "infcode"));
    }
    Ok(Answer { envelope, output })
}

/// Writes a member's key, after a comma unless it is the first.
fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !std::mem::replace(first, false) {
        out.push(b',');
    }
    write_string(out, name);
    out.push(b':');
}

/// Writes records as strict JSON, into one text or two at once (the whole
/// message, and what [`contracts::record::redact`] would leave of it). Each
/// scalar is formatted once, whichever texts it goes into.
struct Encoder {
    outs: Texts<Vec<u8>>,
    /// A scalar's text.
    scratch: String,
}

impl Encoder {
    fn new(capacity: usize, whole: bool, redacted: bool) -> Encoder {
        let out = |wanted: bool| wanted.then(|| Vec::with_capacity(capacity));
        Encoder {
            outs: [out(whole), out(redacted)],
            scratch: String::with_capacity(32),
        }
    }

    /// Markup in every text.
    fn raw(&mut self, bytes: &[u8]) {
        each(&mut self.outs, Part::Kept, |_, out| {
            out.extend_from_slice(bytes)
        });
    }

    /// A key in every text.
    fn key(&mut self, first: &mut [bool; 2], name: &str) {
        each(&mut self.outs, Part::Kept, |i, out| {
            key(out, &mut first[i], name)
        });
    }

    /// Writes the fields of `record` (without braces).
    fn fields(&mut self, record: &dyn Record, first: &mut [bool; 2]) {
        let schema = record.schema();
        for (index, def) in schema.fields.iter().enumerate() {
            match (record.field(index), def.shape) {
                (FieldRef::Scalar(Some(value)), Shape::Scalar(kind)) => {
                    self.scratch.clear();
                    value.write_national(kind, &mut self.scratch);
                    let text = &self.scratch;
                    each(&mut self.outs, Part::of(kind), |i, out| {
                        key(out, &mut first[i], def.name);
                        match kind {
                            Kind::Money
                            | Kind::Price
                            | Kind::Quantity
                            | Kind::Ratio
                            | Kind::Age
                            | Kind::Int => out.extend_from_slice(text.as_bytes()),
                            _ => write_string(out, text),
                        }
                    });
                }
                (FieldRef::Record(Some(child)), _) => {
                    self.key(first, def.name);
                    self.record(child);
                }
                (FieldRef::List(list), _) => {
                    self.key(first, def.name);
                    self.raw(b"[");
                    for i in 0..list.len() {
                        if i > 0 {
                            self.raw(b",");
                        }
                        if let Some(child) = list.get(i) {
                            self.record(child);
                        }
                    }
                    self.raw(b"]");
                }
                _ => {}
            }
        }
        for (name, raw) in &record.extras().0 {
            each(&mut self.outs, Part::Personal, |i, out| {
                key(out, &mut first[i], name);
                out.extend_from_slice(raw.as_bytes());
            });
        }
    }

    fn record(&mut self, record: &dyn Record) {
        self.raw(b"{");
        let mut first = [true; 2];
        self.fields(record, &mut first);
        self.raw(b"}");
    }
}

/// Encodes a request in the national dialect.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut encoder = Encoder::new(1024, true, false);
    let mut first = [true; 2];
    encoder.raw(b"{");
    encoder.key(&mut first, "infno");
    each(&mut encoder.outs, Part::Kept, |_, out| {
        write_string(out, request.infno().code());
    });
    encoder.fields(&request.envelope, &mut first);
    encoder.key(&mut first, "input");
    encoder.record(request.input.record());
    encoder.raw(b"}");
    let [whole, _] = encoder.outs;
    whole.unwrap_or_default()
}

/// Encodes an answer in the national dialect. An absent output is `null`.
pub fn encode_answer(answer: &Answer) -> Vec<u8> {
    let [whole, _] = encode_answer_as(answer, true, false);
    whole.unwrap_or_default()
}

/// Encodes an answer in the national dialect as [`contracts::record::redact`]
/// would leave it (personal fields and extras left out), without copying it:
/// the same bytes as redacting a clone and encoding that.
pub fn encode_answer_redacted(answer: &Answer) -> Vec<u8> {
    let [_, redacted] = encode_answer_as(answer, false, true);
    redacted.unwrap_or_default()
}

/// [`encode_answer`] and [`encode_answer_redacted`] in one pass.
pub fn encode_answer_and_redacted(answer: &Answer) -> (Vec<u8>, Vec<u8>) {
    let [whole, redacted] = encode_answer_as(answer, true, true);
    (whole.unwrap_or_default(), redacted.unwrap_or_default())
}

/// The answer's texts asked for: whole, redacted.
fn encode_answer_as(answer: &Answer, whole: bool, redacted: bool) -> Texts<Vec<u8>> {
    let mut encoder = Encoder::new(1024, whole, redacted);
    let mut first = [true; 2];
    encoder.raw(b"{");
    encoder.fields(&answer.envelope, &mut first);
    encoder.key(&mut first, "output");
    match &answer.output {
        Some(body) => encoder.record(body.record()),
        None => encoder.raw(b"null"),
    }
    encoder.raw(b"}");
    encoder.outs
}
