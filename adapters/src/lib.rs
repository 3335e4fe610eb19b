//! Wire dialects of the cross-region settlement interface. Each module turns
//! one dialect's bytes into the canonical model of `contracts` and back; the
//! gateway reaches them only through [`Dialect`].

pub mod dialect;
pub mod he;
pub mod json;
pub mod national;
mod texts;
pub mod tj;
pub mod trail;
pub mod xml;

pub use dialect::{dialect, Dialect, Limits, DIALECTS};
