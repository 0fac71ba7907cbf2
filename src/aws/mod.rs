//! AWS: credentials, and the MONGODB-AWS SASL conversation signed with SigV4.
//!
//! - [`Credentials`]: access key, secret, optional token; zeroized; caches signing keys.
//! - [`ClientConversation`]: client-first / server-first validation / client-final.
//! - [`StsHost`]: the server-named STS host's validation and the region derived from it.
//! - [`signer`]: the SigV4 signature of STS `GetCallerIdentity` (fast path + reference).

mod conversation;
mod credentials;
pub mod signer;
mod sts_host;

pub use conversation::{
    ClientConversation, CLIENT_NONCE_LEN, GS2_CB_FLAG, MAX_SERVER_FIRST_LEN, SERVER_NONCE_LEN,
};
pub use credentials::Credentials;
pub use sts_host::StsHost;
