//! Authentication and authorisation: the master token, issued JWTs with roles and tag scopes,
//! the permission table, and the one middleware that applies them with rate limiting.

pub mod gate;
pub mod jwt;
pub mod master;
pub mod permissions;
pub mod principal;

pub use master::{default_hmac_secret, random_token, MasterToken, TokenSource};
pub use principal::{Access, Caller, Principal};
