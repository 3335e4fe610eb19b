//! The one abstraction every wire dialect implements.
//!
//! The gateway asks four questions and never names a dialect: decode a
//! request from the caller's dialect, encode it for the upstream's, decode
//! the upstream's answer, encode the answer for the caller. Adding a region's
//! dialect is adding an implementation here and a line in [`DIALECTS`].

use contracts::{Answer, ErrorCode, Infno, Refusal, Request};

/// Which fields of a record a decoder has been given, to refuse a field given
/// twice (a record has at most 128 fields).
#[derive(Default)]
pub(crate) struct Seen(u128);

impl Seen {
    /// Marks `index`; `false` if it was marked already.
    pub(crate) fn insert(&mut self, index: usize) -> bool {
        let bit = 1u128 << (index % 128);
        let fresh = self.0 & bit == 0;
        self.0 |= bit;
        fresh
    }
}

/// Bounds every decoder enforces, whatever the bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes a message may have.
    pub body_bytes_max: usize,
    /// The deepest nesting of objects, arrays or elements.
    pub depth_max: usize,
    /// The most elements one list (fee lines, diagnoses, rows) may have.
    pub items_max: usize,
    /// The most attributes one XML element may have.
    pub attributes_max: usize,
}

impl Limits {
    /// 16 MiB, depth 32, 10,000 items a list, 128 attributes an element.
    pub const DEFAULT: Limits = Limits {
        body_bytes_max: 16 * 1024 * 1024,
        depth_max: 32,
        items_max: contracts::validate::FEE_LINES_MAX,
        attributes_max: 128,
    };

    /// Refuses a body beyond `body_bytes_max`.
    pub fn check_size(&self, bytes: &[u8]) -> Result<(), Refusal> {
        if bytes.len() > self.body_bytes_max {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!("{} bytes, at most {}", bytes.len(), self.body_bytes_max),
            ));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// A wire dialect: bytes to the canonical model and back.
///
/// Lifecycle of one call through the gateway, caller dialect X, upstream Y:
/// `X.decode_request` → (validate, route) → `Y.encode_request` → upstream →
/// `Y.decode_answer` → `X.encode_answer`. A refusal at any step is answered
/// with `X.encode_answer(infno, &Answer::refusal(..))`.
///
/// Encoding never fails: every canonical message has a form in every dialect,
/// and `decode(encode(m)) == m`.
pub trait Dialect: Send + Sync + 'static {
    /// The dialect's name in configuration and URLs: `national`, `tj`, `he`.
    fn name(&self) -> &'static str;
    /// The HTTP media type of its messages.
    fn media_type(&self) -> &'static str;
    /// Decodes a request. Checks form only; business rules are
    /// [`contracts::validate::validate_request`]'s.
    fn decode_request(&self, bytes: &[u8], limits: &Limits) -> Result<Request, Refusal>;
    /// Encodes a request.
    fn encode_request(&self, request: &Request) -> Vec<u8>;
    /// Decodes an answer to a request of transaction `infno`.
    fn decode_answer(&self, infno: Infno, bytes: &[u8], limits: &Limits)
        -> Result<Answer, Refusal>;
    /// Encodes an answer; `infno` is `None` when the request could not even be read.
    fn encode_answer(&self, infno: Option<Infno>, answer: &Answer) -> Vec<u8>;
    /// Encodes the answer as [`contracts::record::redact`] leaves it (no
    /// personal field, no extras): what the journal keeps. Every dialect
    /// here writes it straight from the borrowed answer; this default is the
    /// definition they are tested against.
    fn encode_answer_redacted(&self, infno: Option<Infno>, answer: &Answer) -> Vec<u8> {
        let mut kept = answer.clone();
        if let Some(output) = kept.output.as_mut() {
            contracts::record::redact(output.record_mut());
        }
        contracts::record::redact(&mut kept.envelope);
        self.encode_answer(infno, &kept)
    }

    /// [`Dialect::encode_answer`] for the caller and
    /// [`Dialect::encode_answer_redacted`] for the journal, the same bytes as
    /// each, in one pass where the dialect can (each scalar formatted once).
    fn encode_answer_and_redacted(
        &self,
        infno: Option<Infno>,
        answer: &Answer,
    ) -> (Vec<u8>, Vec<u8>) {
        (
            self.encode_answer(infno, answer),
            self.encode_answer_redacted(infno, answer),
        )
    }
}

/// Every dialect the gateway speaks.
pub static DIALECTS: &[&dyn Dialect] =
    &[&crate::national::National, &crate::tj::Tj, &crate::he::He];

/// A dialect by name.
pub fn dialect(name: &str) -> Result<&'static dyn Dialect, Refusal> {
    DIALECTS
        .iter()
        .copied()
        .find(|d| d.name() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = DIALECTS.iter().map(|d| d.name()).collect();
            Refusal::new(
                ErrorCode::UnknownDialect,
                format!("{name:?}; known: {}", known.join(", ")),
            )
        })
}

impl std::fmt::Debug for dyn Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dialect({})", self.name())
    }
}
