//! What each pushed image carries besides itself: an SBOM per platform manifest, a provenance
//! statement about the index and its manifests, and (with a key) signatures of each. Made here,
//! before the transfer, from what the build knows (the packages found in its layers, the
//! base's digest), the config file and the CI run; stored by `transfer` after the manifests and
//! before the tags.

use super::{AppError, Env};
use crate::attest::packages::Package;
use crate::attest::provenance::{self, GitHubRun, Provenance};
use crate::attest::{cyclonedx, spdx, BaseImage, SbomSubject};
use crate::build::ServiceReport;
use crate::config::{AttestSettings, Config, SbomFormat};
use crate::digest::Digest;
use crate::oci::referrers::{self, Subject};
use crate::oci::{Doc, ImageGraph, PlatformImage};
use crate::sign::{cosign, SigningKey};
use crate::spec::{MEDIA_TYPE_CYCLONEDX, MEDIA_TYPE_IN_TOTO, MEDIA_TYPE_SPDX};
use crate::transfer::{AttachKind, Attachment, Signed};
use std::collections::HashMap;

/// What to attach, settled once per push.
pub struct Attach {
    /// Formats and switches (config, then flags).
    pub settings: AttestSettings,
    /// `SOURCE_DATE_EPOCH`: the SBOMs' creation time and every artifact's `created`.
    pub epoch: u64,
    /// The GitHub Actions run, if this is one.
    pub github: Option<GitHubRun>,
    /// The commit built, if known.
    pub commit: Option<String>,
    /// The config file, as the provenance names it.
    pub config_path: String,
    /// Its digest.
    pub config_digest: Digest,
    /// The signing key, when one is configured (loaded before any work).
    pub key: Option<SigningKey>,
    /// The packages the build found, per platform manifest digest (empty for pushed
    /// layouts that were not built in this run: their SBOMs list the image and its base).
    pub packages: HashMap<String, Vec<Package>>,
}

/// `ocibuild-<version>`.
pub fn tool() -> String {
    format!("ocibuild-{}", env!("CARGO_PKG_VERSION"))
}

impl Attach {
    /// The attachment plan of a push: `settings` already merged from the config and flags.
    pub fn new(
        config: &Config,
        settings: AttestSettings,
        epoch: u64,
        commit: Option<String>,
        env: Env<'_>,
    ) -> Result<Attach, AppError> {
        let key = match &settings.sign_key {
            Some(path) => Some(SigningKey::load(path, env("COSIGN_PASSWORD").as_deref())?),
            None => None,
        };
        let config_path = config.file.file_name().map_or_else(
            || "ocibuild.toml".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Attach {
            settings,
            epoch,
            github: github_run(env),
            commit: commit.or_else(|| env("GITHUB_SHA")),
            config_path,
            config_digest: config.digest.clone(),
            key,
            packages: HashMap::new(),
        })
    }

    /// Remember the packages `built` found, per platform manifest.
    pub fn add_packages(&mut self, built: &[ServiceReport]) {
        for p in built.iter().flat_map(|s| &s.platforms) {
            let mut found: Vec<Package> =
                p.layers.iter().flat_map(|l| l.packages.clone()).collect();
            found.sort();
            found.dedup();
            self.packages.insert(p.manifest_digest.clone(), found);
        }
    }

    /// The artifacts for `graph`, pushed as `repository` (`host/path`) for `service`: an SBOM
    /// per platform manifest, and the provenance statement about the whole.
    pub fn artifacts(
        &self,
        service: &str,
        repository: &str,
        graph: &ImageGraph,
    ) -> Vec<Attachment> {
        let mut out = Vec::new();
        if self.settings.sbom != SbomFormat::None {
            let mut seen = Vec::new();
            for img in &graph.images {
                if !seen.contains(&&img.doc.digest) {
                    seen.push(&img.doc.digest);
                    out.extend(self.sbom(repository, img));
                }
            }
        }
        if self.settings.provenance {
            out.push(self.provenance(service, repository, graph));
        }
        out
    }

    /// The SBOM of one platform image (none when its platform string cannot be read).
    fn sbom(&self, repository: &str, img: &PlatformImage) -> Option<Attachment> {
        let platform: crate::platform::Platform = img.platform.parse().ok()?;
        let base_digest = img.base.as_ref().and_then(|b| b.digest.parse().ok());
        let base = match (&img.base, &base_digest) {
            (Some(b), Some(d)) => Some(BaseImage {
                name: &b.name,
                digest: d,
            }),
            _ => None,
        };
        let none = Vec::new();
        let tool = tool();
        let subject = SbomSubject {
            repository,
            manifest_digest: &img.doc.digest,
            platform: &platform,
            base,
            packages: self.packages.get(img.doc.digest.as_str()).unwrap_or(&none),
            created: self.epoch,
            tool: &tool,
        };
        let (artifact_type, document) = match self.settings.sbom {
            SbomFormat::Cyclonedx => (MEDIA_TYPE_CYCLONEDX, cyclonedx::cyclonedx(&subject)),
            _ => (MEDIA_TYPE_SPDX, spdx::spdx(&subject)),
        };
        Some(Attachment {
            kind: AttachKind::Sbom,
            artifact: referrers::artifact(
                artifact_type,
                document,
                &self::subject(&img.doc),
                &crate::spec::rfc3339_utc(self.epoch),
            ),
        })
    }

    fn provenance(&self, service: &str, repository: &str, graph: &ImageGraph) -> Attachment {
        let subjects = top_and_manifests(graph);
        let tool = tool();
        let p = Provenance {
            repository,
            subjects: &subjects,
            service,
            config_path: &self.config_path,
            config_digest: &self.config_digest,
            commit: self.commit.as_deref(),
            base: graph
                .base
                .as_ref()
                .map(|b| (b.name.as_str(), b.digest.as_str())),
            github: self.github.as_ref(),
            tool: &tool,
        };
        let statement = provenance::statement(&p);
        Attachment {
            kind: AttachKind::Provenance,
            artifact: referrers::artifact(
                MEDIA_TYPE_IN_TOTO,
                statement,
                &subject(&graph.top),
                &crate::spec::rfc3339_utc(self.epoch),
            ),
        }
    }

    /// With a key: a signature of the top document and of each platform manifest, each over
    /// cosign's payload naming `repository` (`host/path`) and that digest.
    pub fn signatures(&self, repository: &str, graph: &ImageGraph) -> Vec<Signed> {
        let Some(key) = &self.key else {
            return vec![];
        };
        top_and_manifests(graph)
            .into_iter()
            .map(|subject| {
                let payload = cosign::payload(repository, &subject);
                let signature_b64 = key.sign(&payload);
                Signed {
                    subject,
                    signature: cosign::Signature {
                        payload,
                        signature_b64,
                    },
                }
            })
            .collect()
    }
}

/// The digests of `graph`'s top document, then of each platform manifest: what provenance
/// is about and what is signed.
fn top_and_manifests(graph: &ImageGraph) -> Vec<Digest> {
    let mut out = vec![graph.top.digest.clone()];
    out.extend(graph.manifest_docs().iter().map(|d| d.digest.clone()));
    out
}

/// A document as an artifact's subject.
pub fn subject(doc: &Doc) -> Subject {
    Subject {
        media_type: doc.media_type.clone(),
        digest: doc.digest.clone(),
        size: doc.bytes.len() as u64,
    }
}

/// The GitHub Actions run, when `GITHUB_ACTIONS` is `true` and the run's variables are set.
fn github_run(env: Env<'_>) -> Option<GitHubRun> {
    if env("GITHUB_ACTIONS").as_deref() != Some("true") {
        return None;
    }
    let v = |k: &str| env(k).unwrap_or_default();
    Some(GitHubRun {
        server_url: env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
        repository: v("GITHUB_REPOSITORY"),
        sha: v("GITHUB_SHA"),
        git_ref: v("GITHUB_REF"),
        workflow_ref: v("GITHUB_WORKFLOW_REF"),
        run_id: v("GITHUB_RUN_ID"),
        run_attempt: v("GITHUB_RUN_ATTEMPT"),
        event_name: v("GITHUB_EVENT_NAME"),
        runner_environment: v("RUNNER_ENVIRONMENT"),
        repository_id: v("GITHUB_REPOSITORY_ID"),
        repository_owner_id: v("GITHUB_REPOSITORY_OWNER_ID"),
    })
}
