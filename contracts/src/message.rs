//! Whole messages: an envelope and a body.

use crate::model::envelope::{AnswerEnvelope, RequestEnvelope};
use crate::transaction::{AnswerBody, Infno, RequestBody};

/// A request in canonical form: the envelope and the transaction's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The envelope.
    pub envelope: RequestEnvelope,
    /// The input; its variant is the transaction.
    pub input: RequestBody,
}

impl Request {
    /// The transaction.
    pub fn infno(&self) -> Infno {
        self.input.infno()
    }
}

/// An answer in canonical form. Answers do not name their transaction: it is
/// known from the request they answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The envelope.
    pub envelope: AnswerEnvelope,
    /// The output; `None` when the platform sent `null`, `{}` or nothing.
    pub output: Option<AnswerBody>,
}

impl Answer {
    /// A failure answer carrying a refusal.
    pub fn refusal(refusal: &crate::error::Refusal) -> Answer {
        Answer {
            envelope: AnswerEnvelope {
                infcode: Some(i64::from(refusal.code.number())),
                err_msg: Some(refusal.err_msg()),
                respond_time: Some(crate::record::Stamp(crate::time::DateTime::now())),
                ..AnswerEnvelope::default()
            },
            output: None,
        }
    }
}
