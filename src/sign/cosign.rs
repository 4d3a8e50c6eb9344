//! cosign's signature scheme, as pure functions: the simple-signing payload, the tag
//! `sha256-<hex>.sig` a signed manifest's signatures live under, and the signature manifest.
//!
//! The signature manifest is an OCI image manifest (its `mediaType` set, sent with that
//! Content-Type: containers/image refuses any other type under the tag) whose layers are the
//! payloads, one per signature, media type `application/vnd.dev.cosign.simplesigning.v1+json`,
//! the base64 DER signature in the annotation `dev.cosignproject.cosign/signature`. Its config
//! is the one cosign writes (go-containerregistry's empty image with the layers appended:
//! `rootfs.diff_ids` = the layer digests, one empty history entry per layer), rendered as
//! canonical JSON so the same signatures always give the same bytes.
//!
//! What containers/image (skopeo 1.18, podman) does when it reads one: it fetches every layer
//! (each bounded at 4 MiB), ignores layers of other media types (counted as "non-signature
//! attachments"), verifies each simple-signing layer against the policy's key and accepts the
//! image as soon as one signature is accepted; signatures by other keys are only reasons in the
//! error when none is. When it writes signatures, it appends layers to what the tag holds, skips
//! a layer equal in media type, size, digest and annotations, and rewrites the config the same
//! way (diff_ids appended). `merge_signatures` does the same, so ours and theirs coexist.

use super::SignError;
use crate::digest::Digest;
use crate::spec::{canonical_json, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The media type of a signature's payload layer.
pub const MEDIA_TYPE_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The largest payload parsed (containers/image's bound for signature bodies).
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;
/// The largest signature manifest parsed (the registry client's bound for documents).
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// The simple-signing payload: {"critical":{"identity":{"docker-reference":REF},"image":{"docker-manifest-digest":DIGEST},"type":"cosign container image signature"},"optional":null}
pub fn payload(docker_reference: &str, manifest_digest: &Digest) -> Vec<u8> {
    let value = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest.as_str()},
            "type": PAYLOAD_TYPE,
        },
        "optional": Value::Null,
    });
    // Cannot fail: a tree of strings and null always serializes.
    canonical_json(&value).unwrap_or_default()
}

/// What a simple-signing payload claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub docker_reference: String,
    pub manifest_digest: Digest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayload {
    critical: RawCritical,
    optional: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCritical {
    identity: RawIdentity,
    image: RawImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Read a simple-signing payload, as strictly as containers/image does: exactly the fields
/// above (`optional` null or an object), `type` exactly cosign's, a sha256 digest.
pub fn parse_payload(bytes: &[u8]) -> Result<Payload, SignError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(SignError::Payload(format!(
            "{} bytes, more than the {MAX_PAYLOAD} a payload may have",
            bytes.len()
        )));
    }
    let raw: RawPayload = serde_json::from_slice(bytes)
        .map_err(|e| SignError::Payload(format!("not a simple-signing payload: {e}")))?;
    if !(raw.optional.is_null() || raw.optional.is_object()) {
        return Err(SignError::Payload(
            "optional must be null or an object".into(),
        ));
    }
    if raw.critical.kind != PAYLOAD_TYPE {
        return Err(SignError::Payload(format!(
            "critical.type is {:?}, not {PAYLOAD_TYPE:?}",
            raw.critical.kind.chars().take(80).collect::<String>()
        )));
    }
    let manifest_digest = raw
        .critical
        .image
        .docker_manifest_digest
        .parse()
        .map_err(|e| SignError::Payload(format!("critical.image.docker-manifest-digest: {e}")))?;
    Ok(Payload {
        docker_reference: raw.critical.identity.docker_reference,
        manifest_digest,
    })
}

/// The tag the signatures of manifest `subject` live under: `sha256-<hex>.sig`.
pub fn signature_tag(subject: &Digest) -> String {
    format!("sha256-{}.sig", subject.hex())
}

/// One signature: the payload signed and the base64 DER signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub signature_b64: String,
}

/// A signature manifest to PUT under the signature tag, with the blobs it references that the
/// registry may not have yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureManifest {
    pub manifest: Vec<u8>,
    pub media_type: String,
    pub blobs: Vec<(Digest, Vec<u8>)>,
}

/// A descriptor of the signature manifest; fields we do not know are kept as they are.
#[derive(Clone, Serialize, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, SignError> {
    if bytes.len() > MAX_MANIFEST {
        return Err(SignError::Manifest(format!(
            "{} bytes, more than the {MAX_MANIFEST} a manifest may have",
            bytes.len()
        )));
    }
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| SignError::Manifest(format!("not an OCI image manifest: {e}")))?;
    if m.schema_version != 2 {
        return Err(SignError::Manifest(format!(
            "schemaVersion {}, expected 2",
            m.schema_version
        )));
    }
    match m.media_type.as_deref() {
        None | Some(MEDIA_TYPE_MANIFEST) => Ok(m),
        Some(other) => Err(SignError::Manifest(format!(
            "media type {:?}: cosign signatures live in an OCI image manifest ({MEDIA_TYPE_MANIFEST}); delete the tag or choose another registry",
            other.chars().take(80).collect::<String>()
        ))),
    }
}

fn is_signature_layer(l: &Descriptor) -> bool {
    l.media_type == MEDIA_TYPE_SIMPLESIGNING && l.annotations.contains_key(ANNOTATION_SIGNATURE)
}

/// The signature manifest holding `existing`'s layers (another tool's included, with their
/// annotations) and one layer per new (payload digest, signature); a signature already there
/// is not added again, so merging the same signatures twice changes nothing (the existing
/// bytes are returned as they are, with no blobs).
pub fn merge_signatures(
    existing: Option<&[u8]>,
    new: &[Signature],
) -> Result<SignatureManifest, SignError> {
    let mut manifest = match existing {
        Some(bytes) => parse_manifest(bytes)?,
        None => Manifest {
            schema_version: 2,
            media_type: None,
            config: empty_descriptor(),
            layers: Vec::new(),
            rest: BTreeMap::new(),
        },
    };
    let mut blobs: Vec<(Digest, Vec<u8>)> = Vec::new();
    let mut added = false;
    for sig in new {
        added |= add_signature(&mut manifest.layers, sig, &mut blobs);
    }
    if let (Some(bytes), false) = (existing, added) {
        return Ok(SignatureManifest {
            manifest: bytes.to_vec(),
            media_type: MEDIA_TYPE_MANIFEST.to_string(),
            blobs,
        });
    }
    let config = config_blob(&manifest.layers)?;
    let config_digest = Digest::of(&config);
    manifest.config = Descriptor {
        media_type: MEDIA_TYPE_CONFIG.to_string(),
        digest: config_digest.as_str().to_string(),
        size: config.len() as u64,
        annotations: BTreeMap::new(),
        rest: BTreeMap::new(),
    };
    manifest.media_type = Some(MEDIA_TYPE_MANIFEST.to_string());
    blobs.insert(0, (config_digest, config));
    let bytes = canonical_json(&manifest)
        .map_err(|e| SignError::Manifest(format!("cannot serialize: {e}")))?;
    Ok(SignatureManifest {
        manifest: bytes,
        media_type: MEDIA_TYPE_MANIFEST.to_string(),
        blobs,
    })
}

/// Append a layer for `sig` unless an equal one is there; the payload joins `blobs` unless a
/// layer already references it. Whether a layer was added.
fn add_signature(
    layers: &mut Vec<Descriptor>,
    sig: &Signature,
    blobs: &mut Vec<(Digest, Vec<u8>)>,
) -> bool {
    let digest = Digest::of(&sig.payload);
    let present = layers.iter().any(|l| {
        is_signature_layer(l)
            && l.digest == digest.as_str()
            && l.annotations.get(ANNOTATION_SIGNATURE) == Some(&sig.signature_b64)
    });
    if present {
        return false;
    }
    // A payload some layer already references is in the registry: no blob to send.
    let stored = layers.iter().any(|l| l.digest == digest.as_str());
    layers.push(Descriptor {
        media_type: MEDIA_TYPE_SIMPLESIGNING.to_string(),
        digest: digest.as_str().to_string(),
        size: sig.payload.len() as u64,
        annotations: BTreeMap::from([(
            ANNOTATION_SIGNATURE.to_string(),
            sig.signature_b64.clone(),
        )]),
        rest: BTreeMap::new(),
    });
    if !stored && !blobs.iter().any(|(d, _)| *d == digest) {
        blobs.push((digest, sig.payload.clone()));
    }
    true
}

fn empty_descriptor() -> Descriptor {
    Descriptor {
        media_type: MEDIA_TYPE_CONFIG.to_string(),
        digest: String::new(),
        size: 0,
        annotations: BTreeMap::new(),
        rest: BTreeMap::new(),
    }
}

/// The config cosign writes for a signature image with `layers`: an empty image with every
/// layer appended (diff_ids = the layer digests, one empty history entry per layer).
fn config_blob(layers: &[Descriptor]) -> Result<Vec<u8>, SignError> {
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let history: Vec<Value> = layers
        .iter()
        .map(|_| serde_json::json!({ "created": ZERO_TIME }))
        .collect();
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "created": ZERO_TIME,
        "history": history,
        "os": "",
        "rootfs": {"diff_ids": diff_ids, "type": "layers"},
    });
    canonical_json(&config).map_err(|e| SignError::Manifest(format!("cannot serialize: {e}")))
}

/// Every (payload digest, signature) in signature manifest `manifest`, in layer order; layers
/// that are not simple-signing signatures (attestations, another tool's) are left out.
pub fn signatures_in(manifest: &[u8]) -> Result<Vec<(Digest, String)>, SignError> {
    let m = parse_manifest(manifest)?;
    let mut out = Vec::new();
    for l in m.layers.iter().filter(|l| is_signature_layer(l)) {
        let digest: Digest = l
            .digest
            .parse()
            .map_err(|e| SignError::Manifest(format!("a signature layer's digest: {e}")))?;
        if let Some(sig) = l.annotations.get(ANNOTATION_SIGNATURE) {
            out.push((digest, sig.clone()));
        }
    }
    Ok(out)
}
