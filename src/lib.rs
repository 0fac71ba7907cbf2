//! libdocauth: the security-critical core of a MongoDB / Amazon DocumentDB access proxy.
//!
//! This is the safe Rust API. The C ABI in [`ffi`] is a thin layer over it and the only
//! place with raw pointers.
//!
//! - [`aws`] signs MONGODB-AWS SASL payloads (SigV4 STS GetCallerIdentity).
//! - [`policy`] decides database access: Teleport-compatible roles, evaluated by Rego.
//! - [`session`] runs a proxied session: TLS + MONGODB-AWS upstream, judged relay, audit.
//! - [`wire`] parses MongoDB wire messages and names every database a command can reach.
//!
//! `unsafe` is refused everywhere but in [`ffi`]; there, every unsafe operation is in its own
//! block with its own `// SAFETY:` comment (the clippy lints below, run by `make test`).

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::multiple_unsafe_ops_per_block)]

pub mod aws;
mod error;
#[allow(unsafe_code)]
pub mod ffi;
/// cbindgen:ignore
pub mod metrics;
mod operator_file;
pub mod policy;
/// cbindgen:ignore
pub mod session;
/// cbindgen:ignore
pub mod wire;

pub use error::{Error, Result, ResultCode};

/// The crate version, as `docauth_version()` reports it.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
