//! CycloneDX 1.6 JSON for one platform manifest: the image is the metadata's `container`
//! component (its `pkg:oci` purl, the manifest's SHA-256, the registry base as the ancestor in
//! its pedigree); each package found in its own layers is a `library` component (name,
//! version, purl, SHA-256 when known, where it was found as an `ocibuild:path` property),
//! and the image depends on each.
//!
//! Deterministic: packages sorted, `bom-ref`s numbered in that order, `serialNumber` a UUID
//! derived from the manifest digest, the timestamp from the subject's epoch; canonical JSON.

use super::{tool_name_version, uuid_of, Package};
pub use super::{BaseImage, SbomSubject};
use crate::spec::{canonical_json, rfc3339_utc};
use serde_json::{json, Value};

const IMAGE: &str = "image";

fn component(i: usize, p: &Package) -> Value {
    let mut v = json!({
        "type": "library",
        "bom-ref": format!("package-{}", i + 1),
        "name": p.name,
        "version": p.version,
        "purl": p.purl,
        "properties": [{ "name": "ocibuild:path", "value": p.path }],
    });
    if let (Some(sha), Some(obj)) = (&p.sha256, v.as_object_mut()) {
        obj.insert(
            "hashes".into(),
            json!([{ "alg": "SHA-256", "content": sha }]),
        );
    }
    v
}

fn image(s: &SbomSubject) -> Value {
    let mut v = json!({
        "type": "container",
        "bom-ref": IMAGE,
        "name": s.repository,
        "version": s.manifest_digest.as_str(),
        "purl": s.image_purl(),
        "hashes": [{ "alg": "SHA-256", "content": s.manifest_digest.hex() }],
    });
    if let (Some(b), Some(obj)) = (&s.base, v.as_object_mut()) {
        let (repo, _) = b.repository_and_tag();
        obj.insert(
            "pedigree".into(),
            json!({ "ancestors": [{
                "type": "container",
                "bom-ref": "base-image",
                "name": repo,
                "version": b.digest.as_str(),
                "purl": b.purl(&s.platform.arch),
                "hashes": [{ "alg": "SHA-256", "content": b.digest.hex() }],
            }]}),
        );
    }
    v
}

/// The CycloneDX 1.6 JSON document of `s`.
pub fn cyclonedx(s: &SbomSubject) -> Vec<u8> {
    let packages = s.sorted_packages();
    let components: Vec<Value> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| component(i, p))
        .collect();
    let refs: Vec<String> = (1..=packages.len())
        .map(|i| format!("package-{i}"))
        .collect();
    let (tool, version) = tool_name_version(s.tool);
    let mut tool = json!({ "type": "application", "name": tool });
    if let (Some(v), Some(obj)) = (version, tool.as_object_mut()) {
        obj.insert("version".into(), json!(v));
    }
    let doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_of("cyclonedx", s.manifest_digest)),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339_utc(s.created),
            "tools": { "components": [tool] },
            "component": image(s),
        },
        "components": components,
        "dependencies": [{ "ref": IMAGE, "dependsOn": refs }],
    });
    // A tree of strings, numbers and booleans always serializes.
    canonical_json(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::tests::subject_fixture;

    #[test]
    fn the_image_is_the_subject_its_base_an_ancestor_and_it_depends_on_each_package() {
        let (digest, base_digest, platform, packages) = subject_fixture();
        let mut s = SbomSubject {
            repository: "localhost:5000/shop/cart",
            manifest_digest: &digest,
            platform: &platform,
            base: Some(BaseImage {
                name: "localhost:5000/base/static@sha256:00",
                digest: &base_digest,
            }),
            packages: &packages,
            created: 0,
            tool: "ocibuild-0.1.0",
        };
        let bytes = cyclonedx(&s);
        assert_eq!(bytes, cyclonedx(&s), "same subject, same bytes");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["metadata"]["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["metadata"]["tools"]["components"][0]["version"], "0.1.0");
        let img = &v["metadata"]["component"];
        assert_eq!(img["hashes"][0]["content"], digest.hex());
        let anc = &img["pedigree"]["ancestors"][0];
        assert_eq!(anc["name"], "localhost:5000/base/static");
        assert_eq!(anc["version"], base_digest.as_str());
        let comps = v["components"].as_array().unwrap();
        assert_eq!(comps.len(), packages.len());
        let deps = v["dependencies"][0]["dependsOn"].as_array().unwrap();
        assert_eq!(deps.len(), packages.len());
        // Another manifest: another serial number.
        let other = crate::digest::Digest::of(b"other");
        s.manifest_digest = &other;
        let w: Value = serde_json::from_slice(&cyclonedx(&s)).unwrap();
        assert_ne!(w["serialNumber"], v["serialNumber"]);
    }
}
