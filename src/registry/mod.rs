//! The registry side: an OCI Distribution client (`client`, with its blob and manifest
//! operations in `blobs` and `manifests`), its one error type (`error`), the validated names
//! its URLs are built from (`names`), where requests and credentials may go (`origin`), capped
//! reads of what servers answer (`body`), where credentials come from (`auth`) and one client
//! per host made on demand (`clients`).
//! Knows nothing of layouts, builds or AWS; `push` and `base` drive it and the `ecr` module
//! supplies credentials through [`auth`] types.

pub mod auth;
pub mod blobs;
pub mod body;
pub mod client;
pub mod clients;
pub mod error;
pub mod manifests;
pub mod names;
pub mod origin;
pub mod tags;
#[cfg(test)]
mod tests;
