//! `ocibuild verify`: what is attached to a pushed image, read from the registry. For the image
//! index and each platform manifest: the artifacts that refer to it (the referrers API where
//! the registry has one, else the referrers tag schema) and the cosign-format signatures under
//! `sha256-<hex>.sig`. With a public key, every one of those manifests must carry a signature
//! that the key verifies over a payload naming exactly that digest; otherwise the run fails.

use super::{access, AppError};
use crate::config::{AuthMode, Config};
use crate::digest::Digest;
use crate::oci::referrers;
use crate::registry::client::RegistryClient;
use crate::sign::{cosign, VerifyingKey};
use crate::spec::{MEDIA_TYPE_CYCLONEDX, MEDIA_TYPE_IN_TOTO, MEDIA_TYPE_SPDX};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// Config file.
    pub config: Option<PathBuf>,
    /// Services (empty: all).
    pub services: Vec<String>,
    /// Registry (default: the config's).
    pub registry: Option<String>,
    /// Plain HTTP.
    pub insecure: bool,
    /// The tag to read (default `latest`), unless `digest` is given.
    pub tag: Option<String>,
    /// The image index (or manifest) digest.
    pub digest: Option<String>,
    /// Public key (PEM) the signatures must verify with.
    pub key: Option<PathBuf>,
}

/// An artifact found referring to a manifest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Found {
    /// `sbom`, `provenance`, `signature` or `other`.
    pub kind: &'static str,
    /// Its artifact type.
    pub artifact_type: String,
    /// Its manifest digest.
    pub digest: String,
    /// `referrers API` or `tag sha256-<hex>`.
    pub via: String,
}

/// One signature found for a manifest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignatureCheck {
    /// The digest of its payload.
    pub payload: String,
    /// The `docker-reference` the payload names (empty if unreadable).
    pub identity: String,
    /// With a key: whether the key verifies it over a payload naming this manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// Why it does not count, if it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The index, or one platform manifest, and what is attached to it.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectCheck {
    /// Its digest.
    pub digest: String,
    /// `index` (or `manifest` for a single-manifest image), else the platform.
    pub what: String,
    /// Artifacts referring to it.
    pub attached: Vec<Found>,
    /// Signatures under its `.sig` tag.
    pub signatures: Vec<SignatureCheck>,
}

impl SubjectCheck {
    /// With a key: whether one signature verifies.
    pub fn signed(&self) -> bool {
        self.signatures.iter().any(|s| s.valid == Some(true))
    }
}

/// One service's image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageCheck {
    /// Service name.
    pub service: String,
    /// `host/repository@digest`.
    pub reference: String,
    /// The index first, then each platform manifest.
    pub subjects: Vec<SubjectCheck>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Per service.
    pub services: Vec<ImageCheck>,
    /// Whether signatures were checked with a key.
    pub key_checked: bool,
}

impl VerifyReport {
    /// What fails the run: images that could not be read and, with a key, manifests without
    /// a signature the key verifies.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.services {
            if let Some(e) = &s.error {
                out.push(format!("{}: {e}", s.service));
                continue;
            }
            if !self.key_checked {
                continue;
            }
            for sub in s.subjects.iter().filter(|x| !x.signed()) {
                let name = match sub.what.as_str() {
                    "index" | "manifest" => format!("the {}", sub.what),
                    platform => format!("the {platform} manifest"),
                };
                let why = match sub.signatures.len() {
                    0 => format!("is not signed (no tag {})", sig_tag_of(&sub.digest)),
                    n => format!("has {n} signature(s), none that the key verifies"),
                };
                out.push(format!("{}: {name} {} {why}", s.service, sub.digest));
            }
        }
        out
    }
}

/// Read what is attached to each requested service's image.
pub fn verify(req: &VerifyRequest) -> Result<VerifyReport, AppError> {
    let config = Config::find_and_load(req.config.as_deref())?;
    super::check_services(&config, &req.services)?;
    let digest = match &req.digest {
        Some(d) => Some(d.parse::<Digest>().map_err(|e| {
            AppError::Usage(format!("--digest {d:?}: {e} (give sha256:<64 hex digits>)"))
        })?),
        None => None,
    };
    let key = match &req.key {
        Some(path) => Some(VerifyingKey::load(path)?),
        None => None,
    };
    let registry = access::destination(&config, req.registry.as_deref(), req.insecure)?;
    let runtime = super::runtime()?;
    let ecr = match registry.auth_mode() {
        AuthMode::Ecr => Some(runtime.block_on(access::connect_ecr(&registry))?),
        _ => None,
    };
    let client = runtime.block_on(access::destination_client(&registry, ecr.as_ref()))?;
    let tag = req.tag.clone().unwrap_or_else(|| "latest".into());
    let mut services = Vec::new();
    for s in config.select(&req.services)? {
        let repository = registry.repository_path(&s.repository);
        let look = Look {
            client: &client,
            repository: &repository,
            key: key.as_ref(),
        };
        let check = runtime.block_on(look.image(&s.name, &registry.host, digest.as_ref(), &tag));
        services.push(check);
    }
    Ok(VerifyReport {
        services,
        key_checked: key.is_some(),
    })
}

/// One repository's reads.
struct Look<'a> {
    client: &'a RegistryClient,
    repository: &'a str,
    key: Option<&'a VerifyingKey>,
}

impl Look<'_> {
    async fn image(
        &self,
        service: &str,
        host: &str,
        digest: Option<&Digest>,
        tag: &str,
    ) -> ImageCheck {
        let mut check = ImageCheck {
            service: service.to_string(),
            reference: String::new(),
            subjects: vec![],
            error: None,
        };
        match self.subjects(digest, tag).await {
            Ok((top, subjects)) => {
                check.reference = format!("{host}/{}@{top}", self.repository);
                for (d, what) in subjects {
                    match self.subject(&d, what).await {
                        Ok(s) => check.subjects.push(s),
                        Err(e) => {
                            check.error = Some(e);
                            break;
                        }
                    }
                }
            }
            Err(e) => check.error = Some(e),
        }
        check
    }

    /// The top digest and every subject: the top document, then its platform manifests.
    async fn subjects(
        &self,
        digest: Option<&Digest>,
        tag: &str,
    ) -> Result<(Digest, Vec<(Digest, String)>), String> {
        let (repo, c) = (self.repository, self.client);
        let top = match digest {
            Some(d) => d.clone(),
            None => c
                .manifest_digest(repo, tag)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{repo} has no tag {tag}: push it, or name the image with --tag or --digest"))?,
        };
        let doc = c
            .get_manifest(repo, top.as_str())
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{repo} has no manifest {top}"))?;
        let mut out = Vec::new();
        if crate::oci::read::is_index(&doc.media_type) {
            out.push((top.clone(), "index".to_string()));
            out.extend(platform_manifests(&doc.bytes)?);
        } else {
            out.push((top.clone(), "manifest".to_string()));
        }
        Ok((top, out))
    }

    async fn subject(&self, digest: &Digest, what: String) -> Result<SubjectCheck, String> {
        Ok(SubjectCheck {
            digest: digest.to_string(),
            what,
            attached: self.referrers(digest).await?,
            signatures: self.signatures(digest).await?,
        })
    }

    /// The referrers of `digest`: the API's answer, else the referrers tag's index.
    async fn referrers(&self, digest: &Digest) -> Result<Vec<Found>, String> {
        let (repo, c) = (self.repository, self.client);
        let listed = crate::transfer::referrers_list(c, repo, digest, true).await;
        let Some((bytes, via)) = listed.map_err(|e| e.to_string())? else {
            return Ok(vec![]);
        };
        let listed = referrers::parse_index(&bytes).map_err(|e| e.to_string())?;
        Ok(listed
            .into_iter()
            .map(|r| Found {
                kind: kind_of(&r.artifact_type),
                artifact_type: r.artifact_type,
                digest: r.digest.to_string(),
                via: via.clone(),
            })
            .collect())
    }
}

/// The signature tag of a subject digest (the reports carry digests as text).
fn sig_tag_of(digest: &str) -> String {
    match digest.parse::<Digest>() {
        Ok(d) => cosign::signature_tag(&d),
        Err(_) => format!("{digest}.sig"),
    }
}

/// Most signatures read per manifest (a pile beyond that is not verified one by one).
const MAX_SIGNATURES: usize = 100;

impl Look<'_> {
    /// The signatures under `digest`'s `.sig` tag, each checked with the key when one is
    /// given: its payload must be cosign's, name exactly `digest`, and verify.
    async fn signatures(&self, digest: &Digest) -> Result<Vec<SignatureCheck>, String> {
        let (repo, c) = (self.repository, self.client);
        let tag = cosign::signature_tag(digest);
        let Some(m) = c
            .get_manifest(repo, &tag)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(vec![]);
        };
        let found = cosign::signatures_in(&m.bytes).map_err(|e| format!("{tag}: {e}"))?;
        let mut out = Vec::new();
        for (payload_digest, signature) in found.into_iter().take(MAX_SIGNATURES) {
            let mut check = SignatureCheck {
                payload: payload_digest.to_string(),
                identity: String::new(),
                valid: self.key.map(|_| false),
                problem: None,
            };
            match c.get_blob(repo, &payload_digest).await {
                Err(e) => check.problem = Some(format!("its payload cannot be read: {e}")),
                Ok(payload) => match cosign::parse_payload(&payload) {
                    Err(e) => check.problem = Some(e.to_string()),
                    Ok(p) => {
                        check.identity = p.docker_reference;
                        if p.manifest_digest != *digest {
                            check.problem =
                                Some(format!("its payload names {}", p.manifest_digest));
                        } else if let Some(key) = self.key {
                            let ok = key.verify(&payload, &signature);
                            check.valid = Some(ok);
                            if !ok {
                                check.problem = Some("the key does not verify it".into());
                            }
                        }
                    }
                },
            }
            out.push(check);
        }
        Ok(out)
    }
}

/// `sbom`, `provenance`, `signature` or `other`, by artifact type.
pub fn kind_of(artifact_type: &str) -> &'static str {
    match artifact_type {
        MEDIA_TYPE_SPDX | MEDIA_TYPE_CYCLONEDX => "sbom",
        MEDIA_TYPE_IN_TOTO => "provenance",
        "application/vnd.dev.cosign.artifact.sig.v1+json" => "signature",
        _ => "other",
    }
}

/// The platform manifests an index lists (attestation manifests and artifacts left out).
fn platform_manifests(index: &[u8]) -> Result<Vec<(Digest, String)>, String> {
    let v: Value =
        serde_json::from_slice(index).map_err(|e| format!("the index is not JSON: {e}"))?;
    let Some(entries) = v.get("manifests").and_then(Value::as_array) else {
        return Err("the index lists no manifests".into());
    };
    let mut out = Vec::new();
    for e in entries {
        if e.get("artifactType").is_some()
            || e.pointer("/annotations/vnd.docker.reference.type")
                .is_some()
        {
            continue;
        }
        let Some(d) = e
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|d| d.parse().ok())
        else {
            return Err("an index entry has no valid digest".into());
        };
        let p = |k: &str| e.pointer(&format!("/platform/{k}")).and_then(Value::as_str);
        let platform = match (p("os"), p("architecture"), p("variant")) {
            (Some(os), Some(arch), v) => crate::oci::platform_string(os, arch, v),
            _ => "unknown platform".to_string(),
        };
        out.push((d, platform));
    }
    Ok(out)
}
