//! Inter-region clearing, for clearing officers: a day's gateway journal
//! reconciled against each region's statement ([`crate::reconcile`]), cleared
//! into what each region owes and receives ([`positions`]), written as the
//! day's report ([`crate::report`]), from the command line ([`command`]).

pub mod api;
pub mod claims;
pub mod command;
pub mod positions;

pub use positions::{clear, Bilateral, Clearing, ClearingError, Pair, Position};
