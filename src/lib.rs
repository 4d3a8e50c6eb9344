//! ocibuild: build reproducible multi-arch OCI images from build outputs, without a daemon.
//!
//! Layers, top to bottom (ARCHITECTURE.md; enforced by `tests/integration/layering.rs`):
//! `cli` (flags in, text out, exit codes) > `app` (one use case per command) > `build`,
//! `transfer`, `ecr`, `plan` > `base` > `oci` (the image graph and its one reader) > `image`,
//! `layer`, `layout`, `registry`, `attest` (packages found in layers, SBOMs, provenance), `sign`
//! (keys, cosign's signatures) > `config`, `reference`, `platform`, `spec`, `digest`;
//! `inventory` (a repository's images grouped, pure) stands beside them, over `spec`.
//! The `cli` module is the only place that prints or picks exit codes.

pub mod app;
pub mod attest;
pub mod base;
pub mod build;
pub mod cli;
pub mod config;
pub mod digest;
pub mod ecr;
pub mod image;
pub mod inventory;
pub mod layer;
pub mod layout;
pub mod oci;
pub mod plan;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod sign;
pub mod spec;
pub mod transfer;
