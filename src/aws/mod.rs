//! AWS: credentials (the service's own, and the db user's role through STS AssumeRole), and
//! the MONGODB-AWS SASL conversation signed with SigV4.

mod credentials;
pub mod provider;
pub mod role_arn;
mod sts_error;

pub use credentials::Credentials;
pub use provider::{CredentialsProvider, DatabaseAws, ProviderSettings, SourceConfig};
