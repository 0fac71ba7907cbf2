//! cargo-fuzz target `aws_sts_response`: see `harness::aws_sts_response` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::aws_sts_response(data));
