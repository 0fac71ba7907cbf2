//! AWS: credentials, and the MONGODB-AWS SASL conversation signed with SigV4.

mod credentials;

pub use credentials::Credentials;
