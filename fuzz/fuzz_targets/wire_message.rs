//! cargo-fuzz target `wire_message`: see `harness::wire_message` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire_message(data));
