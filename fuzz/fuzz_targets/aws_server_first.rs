//! cargo-fuzz target `aws_server_first`: see `harness::aws_server_first` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::aws_server_first(data));
