//! Test support shared by the integration tests: moto set up as the DocumentDB guide sets up
//! AWS (`moto`), and in-process MongoDB peers for the session tests (`session_peers`).

#![allow(dead_code, unused_imports)]

mod moto;
mod session_peers;

pub use moto::*;
pub use session_peers::*;
