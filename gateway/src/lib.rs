//! The jjj-gateway server and its command-line tools. `main` only parses the
//! command line and calls into here, so tests reach everything as a library.

pub mod cli;
pub mod sandbox;
pub mod translate;
