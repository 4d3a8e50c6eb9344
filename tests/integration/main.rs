//! The integration tests: one binary that runs the real `ocibuild` executable on copies of the
//! fixtures and checks its output with tools nobody here wrote (skopeo, umoci, qemu).
//! The tools are installed by `scripts/test.sh`; a missing one fails the test that needs it.

mod common;
mod copy;
#[path = "../support/fake_http.rs"]
mod fake_http;

mod attest;
mod build;
mod ci;
mod dependencies;
mod ecr;
mod ecr_scan;
mod errors;
mod hardening;
mod hostile;
mod images;
mod layer_cache;
mod layering;
mod lifecycle_preview;
mod moto;
mod promote;
mod proxy;
mod push;
mod readme;
mod registry;
mod remote_base;
mod reproducible;
mod sign;
mod supply_chain;
mod tls;
mod token;
