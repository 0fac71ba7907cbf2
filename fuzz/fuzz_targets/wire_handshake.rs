//! cargo-fuzz target `wire_handshake`: see `harness::wire_handshake` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire_handshake(data));
