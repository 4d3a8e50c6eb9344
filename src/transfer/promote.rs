//! Promotion without rebuilding: new tags for an image already in the registry. The image's
//! top document is read once and put again under each tag (by reference, one manifest PUT per
//! tag); no blob is touched, so the registry's own check that everything under the document
//! is present is the only one needed.

use super::{put_tag, Registry, TagWrite, TransferError};
use crate::digest::Digest;
use crate::oci::Doc;

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retagged {
    /// The image's top document digest (an index, or a single manifest).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Each tag asked for (once, in order), and what writing it did.
    pub tags: Vec<(String, TagWrite)>,
}

/// Point each of `tags` of `repo` at the image `from` (a tag or a digest) names. Stops at the
/// first tag the registry refuses; the tags written before it stay (each names a complete
/// image).
pub async fn retag<R: Registry>(
    registry: &R,
    repo: &str,
    from: &str,
    tags: &[String],
) -> Result<Retagged, TransferError> {
    let fetched = registry
        .get_manifest(repo, from)
        .await
        .map_err(TransferError::Check)?
        .ok_or_else(|| TransferError::Missing {
            repository: repo.to_string(),
            reference: from.to_string(),
        })?;
    let top = Doc {
        digest: fetched.digest,
        media_type: fetched.media_type,
        bytes: fetched.bytes,
    };
    let mut written: Vec<(String, TagWrite)> = Vec::with_capacity(tags.len());
    for t in tags {
        if written.iter().any(|(w, _)| w == t) {
            continue;
        }
        let w = put_tag(registry, repo, &top, t).await?;
        written.push((t.clone(), w));
    }
    Ok(Retagged {
        digest: top.digest,
        media_type: top.media_type,
        tags: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::memory::{Fake, MountMode};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A registry holding one index under `tag` in `repo`; returns the index's digest.
    fn holding(fake: &Fake, repo: &str, tag: &str, body: &str) -> Digest {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{{"x":"{body}"}}}}"#
        );
        let digest = Digest::of(doc.as_bytes());
        let mut s = fake.state.lock().unwrap();
        for r in [tag.to_string(), digest.to_string()] {
            s.docs.insert((repo.into(), r), doc.as_bytes().to_vec());
        }
        s.tags.insert((repo.into(), tag.into()), digest.clone());
        digest
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_promotion_puts_the_same_document_under_each_tag_and_touches_no_blob() {
        let fake = Fake::new(MountMode::Link);
        let d = holding(&fake, "shop/cart", "abc1234", "one");
        let r = block_on(retag(&fake, "shop/cart", "abc1234", &tags(&["prod", "v1"]))).unwrap();
        assert_eq!(r.digest, d);
        assert_eq!(r.media_type, "application/vnd.oci.image.index.v1+json");
        assert_eq!(
            r.tags,
            [
                ("prod".into(), TagWrite::Written),
                ("v1".into(), TagWrite::Written)
            ]
        );
        assert_eq!(
            fake.log(),
            ["manifest shop/cart prod", "manifest shop/cart v1"]
        );
        let s = fake.state.lock().unwrap();
        assert_eq!(s.tags[&("shop/cart".into(), "prod".into())], d);
        assert!(s.blobs.is_empty());
    }

    #[test]
    fn by_digest_and_again_writes_only_what_is_missing() {
        let fake = Fake::new(MountMode::Link);
        let d = holding(&fake, "shop/cart", "abc1234", "one");
        block_on(retag(&fake, "shop/cart", d.as_str(), &tags(&["prod"]))).unwrap();
        let again = block_on(retag(
            &fake,
            "shop/cart",
            d.as_str(),
            &tags(&["prod", "stable", "prod"]),
        ))
        .unwrap();
        assert_eq!(
            again.tags,
            [
                ("prod".into(), TagWrite::Unchanged),
                ("stable".into(), TagWrite::Written)
            ]
        );
        assert_eq!(
            fake.log(),
            ["manifest shop/cart prod", "manifest shop/cart stable"]
        );
    }

    #[test]
    fn an_unknown_source_is_named_and_nothing_is_written() {
        let fake = Fake::new(MountMode::Link);
        holding(&fake, "shop/cart", "abc1234", "one");
        let e = block_on(retag(&fake, "shop/cart", "nope", &tags(&["prod"]))).unwrap_err();
        assert!(matches!(&e, TransferError::Missing { reference, .. } if reference == "nope"));
        assert!(
            e.to_string().starts_with("shop/cart has no image nope"),
            "{e}"
        );
        assert!(fake.log().is_empty());
    }

    #[test]
    fn an_immutable_repository_keeps_a_tag_on_the_same_image_and_refuses_a_move() {
        let fake = Fake::new(MountMode::Link);
        fake.state.lock().unwrap().immutable = true;
        let old = holding(&fake, "shop/cart", "prod", "old");
        let new = holding(&fake, "shop/cart", "abc1234", "new");
        // `abc1234` already names the image: nothing to write, even on an immutable repository.
        let same = block_on(retag(&fake, "shop/cart", "abc1234", &tags(&["abc1234"]))).unwrap();
        assert_eq!(same.tags, [("abc1234".into(), TagWrite::Unchanged)]);
        let e = block_on(retag(&fake, "shop/cart", "abc1234", &tags(&["prod"]))).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(old.as_str()) && msg.contains(new.as_str()),
            "{msg}"
        );
        assert!(matches!(e, TransferError::TagImmutable { .. }));
        assert!(fake.log().is_empty());
    }

    #[test]
    fn a_moved_tag_says_what_it_named_before() {
        let fake = Fake::new(MountMode::Link);
        let old = holding(&fake, "shop/cart", "prod", "old");
        holding(&fake, "shop/cart", "abc1234", "new");
        let r = block_on(retag(&fake, "shop/cart", "abc1234", &tags(&["prod"]))).unwrap();
        assert_eq!(r.tags, [("prod".into(), TagWrite::Moved(old))]);
    }
}
