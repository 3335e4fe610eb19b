//! The canonical messages, one module per part of the conversation.

pub mod clearing;
pub mod envelope;
pub mod fee;
pub mod filing;
pub mod person;
pub mod reconciliation;
pub mod reversal;
pub mod settlement;
pub mod visit;
