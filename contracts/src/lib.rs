//! The canonical model of the Beijing–Tianjin–Hebei cross-region settlement
//! interface: money, codes, every transaction's request and answer, the rules
//! that a message must satisfy, and the catalogue of refusals.
//!
//! Nothing here knows a wire format. The `adapters` crate turns bytes of each
//! dialect into these types and back; the gateway reasons only about these.

pub mod codes;
pub mod error;
pub mod hex;
pub mod message;
pub mod model;
pub mod money;
pub mod record;
pub mod sample;
pub mod statement;
pub mod time;
pub mod transaction;
pub mod validate;

pub use codes::{
    Admdvs, ClrType, IdNumber, Insutype, MdtrtCertType, MedType, Province, PsnCertType,
};
pub use error::{ErrorCode, Refusal};
pub use message::{Answer, Request};
pub use money::{Age, Money, Price, Quantity, Ratio};
pub use record::{Record, RecordType, Region, Secret, Stamp};
pub use time::{Date, DateTime};
pub use transaction::{AnswerBody, Effect, Infno, RequestBody, Traits};
