//! ocibuild: build reproducible multi-arch OCI images from build outputs, without a daemon.
//!
//! Flow: `config` (what to build) -> `base` (resolve base images, from layouts or registries)
//! -> `layer` (walk, tar, hash, compress) + `image` (config, manifests, index) -> `layout` (OCI
//! image layout on disk), orchestrated by `build`; `push` sends layouts through `registry`.
//! The `cli` module is the only place that prints or picks exit codes.
//! Dependencies point down this list: `cli` > `build`, `push` > `base`, `image`, `layer` >
//! `layout`, `registry` > `config`, `reference`, `platform`, `spec`, `digest`.

pub mod app;
pub mod base;
pub mod build;
pub mod cli;
pub mod config;
pub mod digest;
pub mod ecr;
pub mod image;
pub mod layer;
pub mod layout;
pub mod oci;
pub mod plan;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod spec;
pub mod transfer;
