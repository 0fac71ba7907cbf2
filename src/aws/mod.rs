//! AWS: credentials, the IAM role flow, and the MONGODB-AWS SASL conversation signed with
//! SigV4.
//!
//! - [`Credentials`]: access key, secret, optional token; zeroized; caches signing keys.
//! - [`CredentialsProvider`]: the service's own credentials (default chain, static,
//!   profile), then STS AssumeRole into the db user's IAM role (with role chaining through
//!   `assume_role_arn`), cached; [`role_arn`] maps db users to role ARNs.
//! - [`ClientConversation`]: client-first / server-first validation / client-final.
//! - [`StsHost`]: the server-named STS host's validation and the region derived from it.
//! - [`signer`]: the SigV4 signature of STS `GetCallerIdentity` (fast path + reference).

mod conversation;
mod credentials;
pub mod provider;
pub mod role_arn;
pub mod signer;
mod sts_error;
mod sts_host;
mod web_identity;

pub use conversation::{
    ClientConversation, CLIENT_NONCE_LEN, GS2_CB_FLAG, MAX_SERVER_FIRST_LEN, SERVER_NONCE_LEN,
};
pub use credentials::Credentials;
pub use provider::{
    CredentialsProvider, DatabaseAws, DatabaseSettings, ProviderSettings, SourceConfig,
};
pub use sts_host::StsHost;
