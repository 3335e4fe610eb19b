//! Where a decoder is in a message, kept cheaply while decoding and rendered
//! only when a refusal must name the field: `input.feedetail[3].cnt`.

use contracts::record::ValueError;
use contracts::{ErrorCode, Refusal};

/// One step into a message.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// A named field.
    Name(&'a str),
    /// A list element.
    Index(usize),
}

/// The steps from the message's root to the field being decoded.
#[derive(Debug, Default)]
pub struct Trail<'a>(Vec<Step<'a>>);

impl<'a> Trail<'a> {
    /// At the root.
    pub fn new() -> Trail<'a> {
        Trail(Vec::with_capacity(8))
    }
    /// Steps into a field.
    pub fn push(&mut self, step: Step<'a>) {
        self.0.push(step);
    }
    /// Steps back out.
    pub fn pop(&mut self) {
        self.0.pop();
    }
    /// The path as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.0 {
            match step {
                Step::Name(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Step::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
    /// A refusal naming this place.
    pub fn refuse(&self, code: ErrorCode, what: impl std::fmt::Display) -> Refusal {
        let at = self.render();
        if at.is_empty() {
            Refusal::new(code, what.to_string())
        } else {
            Refusal::new(code, format!("{at}: {what}"))
        }
    }
    /// A refusal for a value the field's kind does not accept. The value itself
    /// is never repeated: it may be personal data.
    pub fn invalid(&self, error: &ValueError) -> Refusal {
        self.refuse(ErrorCode::InvalidValue, error)
    }
}
