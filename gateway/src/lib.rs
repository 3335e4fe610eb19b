//! The jjj-gateway server and its command-line tools. `main` only parses the
//! command line and calls into here, so tests reach everything as a library.

pub mod certs;
pub mod clearing;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod export;
pub mod identity;
pub mod journal;
pub mod limit;
pub mod load;
pub mod metrics;
pub mod pipeline;
pub mod reconcile;
pub mod report;
pub mod route;
pub mod sandbox;
pub mod server;
pub mod settlements;
pub mod state;
pub mod supervision;
pub mod telemetry;
pub mod tls;
pub mod translate;
pub mod upstream;
