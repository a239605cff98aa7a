//! Authentication building blocks, free of storage and HTTP: the service
//! layer and the transports combine them.
//!
//! - [`keys`]: tenant API keys (stored as SHA-256) and channel secrets;
//! - [`credentials`]: what a request presents, classified by shape;
//! - [`jwt`]: client tokens (HS256; RS256/ES256 with [`jwk`] keys for tenant-signed ones);
//! - [`admin`]: the admin gate (token and address allow-list, [`cidr`]);
//! - [`ct`]: constant-time comparison for secrets.

pub mod admin;
pub mod cidr;
pub mod credentials;
pub mod ct;
mod error;
pub mod jwk;
pub mod jwt;
pub mod keys;

pub use cidr::{AllowList, Cidr, CidrError};
pub use credentials::Credential;
pub use error::AuthError;
pub use jwt::{Claims, JwtError};
pub use keys::{random_hex, RandomError};
