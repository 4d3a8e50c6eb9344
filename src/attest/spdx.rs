//! SPDX 2.3 JSON for one platform manifest: the document DESCRIBES the image (a `CONTAINER`
//! package with its `pkg:oci` purl), the image is a DESCENDANT_OF its registry base and
//! CONTAINS each package found in its own layers (name, version, purl as a PACKAGE-MANAGER
//! external reference, SHA256 checksum when known).
//!
//! Deterministic: packages sorted, element ids numbered in that order, the namespace a UUID
//! derived from the manifest digest, `created` from the subject's epoch; canonical JSON.

use super::{uuid_of, Package};
pub use super::{BaseImage, SbomSubject};
use crate::spec::{canonical_json, rfc3339_utc};
use serde_json::{json, Value};

const IMAGE: &str = "SPDXRef-Image";
const BASE: &str = "SPDXRef-BaseImage";

fn purl_ref(purl: &str) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }])
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

fn container(id: &str, name: &str, digest: &crate::digest::Digest, purl: &str) -> Value {
    json!({
        "SPDXID": id,
        "name": name,
        "versionInfo": digest.as_str(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{ "algorithm": "SHA256", "checksumValue": digest.hex() }],
        "externalRefs": purl_ref(purl),
    })
}

fn package(id: &str, p: &Package) -> Value {
    let mut v = json!({
        "SPDXID": id,
        "name": p.name,
        "versionInfo": p.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "LIBRARY",
        "sourceInfo": format!("found in the image at {}", p.path),
        "externalRefs": purl_ref(&p.purl),
    });
    if let (Some(sha), Some(obj)) = (&p.sha256, v.as_object_mut()) {
        obj.insert(
            "checksums".into(),
            json!([{ "algorithm": "SHA256", "checksumValue": sha }]),
        );
    }
    v
}

/// The SPDX 2.3 JSON document of `s`.
pub fn spdx(s: &SbomSubject) -> Vec<u8> {
    let mut packages = vec![container(
        IMAGE,
        s.repository,
        s.manifest_digest,
        &s.image_purl(),
    )];
    let mut rels = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE)];
    if let Some(b) = &s.base {
        let (repo, _) = b.repository_and_tag();
        packages.push(container(BASE, repo, b.digest, &b.purl(&s.platform.arch)));
        rels.push(relationship(IMAGE, "DESCENDANT_OF", BASE));
    }
    for (i, p) in s.sorted_packages().into_iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        packages.push(package(&id, p));
        rels.push(relationship(IMAGE, "CONTAINS", &id));
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", s.repository, s.manifest_digest),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/{}-{}",
            s.image_name().to_lowercase(),
            uuid_of("spdx", s.manifest_digest)
        ),
        "creationInfo": {
            "created": rfc3339_utc(s.created),
            "creators": [format!("Tool: {}", s.tool)],
        },
        "packages": packages,
        "relationships": rels,
    });
    // A tree of strings, numbers and booleans always serializes.
    canonical_json(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::tests::subject_fixture;

    #[test]
    fn the_document_describes_the_image_built_on_its_base_and_containing_each_package() {
        let (digest, base_digest, platform, packages) = subject_fixture();
        let s = SbomSubject {
            repository: "localhost:5000/shop/cart",
            manifest_digest: &digest,
            platform: &platform,
            base: Some(BaseImage {
                name: "localhost:5000/base/static:v1",
                digest: &base_digest,
            }),
            packages: &packages,
            created: 86_400,
            tool: "ocibuild-0.1.0",
        };
        let bytes = spdx(&s);
        assert_eq!(bytes, spdx(&s), "same subject, same bytes");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["creationInfo"]["created"], "1970-01-02T00:00:00Z");
        let pk = v["packages"].as_array().unwrap();
        assert_eq!(pk.len(), 2 + packages.len());
        assert_eq!(
            pk[0]["externalRefs"][0]["referenceLocator"],
            format!(
                "pkg:oci/cart@sha256%3A{}?arch=arm64&repository_url=localhost:5000/shop/cart",
                digest.hex()
            )
        );
        assert_eq!(
            pk[1]["externalRefs"][0]["referenceLocator"],
            format!(
                "pkg:oci/static@sha256%3A{}?arch=arm64&repository_url=localhost:5000/base/static&tag=v1",
                base_digest.hex()
            )
        );
        let rels: Vec<(String, String, String)> = v["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let f = |k: &str| r[k].as_str().unwrap().to_string();
                (
                    f("spdxElementId"),
                    f("relationshipType"),
                    f("relatedSpdxElement"),
                )
            })
            .collect();
        assert!(rels.contains(&("SPDXRef-DOCUMENT".into(), "DESCRIBES".into(), IMAGE.into())));
        assert!(rels.contains(&(IMAGE.into(), "DESCENDANT_OF".into(), BASE.into())));
        let contains = rels.iter().filter(|r| r.1 == "CONTAINS").count();
        assert_eq!(contains, packages.len());
        // The jar's checksum is carried; the lockfile's package has none.
        let jar = pk.iter().find(|p| p["name"] == "org.example:lib").unwrap();
        assert_eq!(jar["checksums"][0]["checksumValue"], "ab".repeat(32));
        let npm = pk.iter().find(|p| p["name"] == "@scope/x").unwrap();
        assert!(npm.get("checksums").is_none());
    }
}
