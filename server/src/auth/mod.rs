//! Authentication and authorization building blocks. For now: the admin IP
//! allow-list ([`cidr`]); API keys and client JWTs come with the REST API.

pub mod cidr;

pub use cidr::{AllowList, Cidr, CidrError};
