//! The regional platforms' stand-ins: who is insured, what their policy pays.

pub mod policy;
pub mod population;
