//! The registry side: an OCI Distribution client (`client`), its one error type (`error`) and
//! where credentials come from (`auth`). Knows nothing of layouts, builds or AWS; the push
//! module drives it and a future ECR module supplies credentials through [`auth`] types.

pub mod auth;
pub mod client;
pub mod error;
