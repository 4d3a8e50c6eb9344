//! Property tests of the one reader: arbitrary bytes, and valid documents with bytes flipped,
//! inserted or cut (each re-addressed by its new digest, so the parsers see them), never
//! panic: they read or give a typed error. `PROPTEST_CASES=10000 cargo test --lib read_props`
//! runs longer.

use super::*;
use crate::spec::{MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_GZIP};
use proptest::prelude::*;
use serde_json::json;

/// Bytes under their digest, a store the reader is driven over.
type Store = HashMap<Digest, Vec<u8>>;

fn put(store: &mut Store, bytes: Vec<u8>) -> (Digest, usize) {
    let d = Digest::of(&bytes);
    let n = bytes.len();
    store.insert(d.clone(), bytes);
    (d, n)
}

/// Drive a reader over `store` from `top` (at most a few rounds) to a graph or an error.
fn drive(top: Doc, store: &Store, want: Want) -> Result<ImageGraph> {
    let mut reader = GraphReader::new("prop", top, want)?;
    for _ in 0..8 {
        let wanted = reader.wanted()?;
        if wanted.is_empty() {
            break;
        }
        for n in wanted {
            let bytes = store.get(&n.digest).cloned().unwrap_or_default();
            reader.give(&n, bytes)?;
        }
    }
    reader.finish(&mut |_| Ok(vec![BlobAt::File("blob".into())]))
}

/// A mutation: flip, insert or cut bytes at positions taken modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Cut(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Cut(i, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if let Some(b) = bytes.get_mut(i % len) {
                    *b ^= x;
                }
            }
            Mutation::Insert(i, b) => {
                let at = (i % len).min(bytes.len());
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Cut(i, n) => {
                let at = (i % len).min(bytes.len());
                let end = at.saturating_add(*n).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// A valid index -> manifest -> config chain with `mutations` applied to document `which`
/// (0 config, 1 manifest, 2 index), each document naming the (mutated) one below it.
fn chain(which: usize, mutations: &[Mutation]) -> (Doc, Store) {
    let mut store = Store::new();
    let m = |i: usize, b: Vec<u8>| if i == which { mutate(b, mutations) } else { b };
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"tar").to_string()]}});
    let (c, cn) = put(
        &mut store,
        m(0, serde_json::to_vec(&config).unwrap_or_default()),
    );
    let manifest = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": c.as_str(), "size": cn},
        "layers": [{"mediaType": MEDIA_TYPE_LAYER_GZIP,
            "digest": Digest::of(b"layer").as_str(), "size": 5}]});
    let (md, mn) = put(
        &mut store,
        m(1, serde_json::to_vec(&manifest).unwrap_or_default()),
    );
    let index = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [
        {"mediaType": MEDIA_TYPE_MANIFEST, "digest": md.as_str(), "size": mn,
         "platform": {"os": "linux", "architecture": "amd64"}}]});
    let bytes = m(2, serde_json::to_vec(&index).unwrap_or_default());
    let top = Doc {
        digest: Digest::of(&bytes),
        media_type: MEDIA_TYPE_INDEX.into(),
        bytes,
    };
    (top, store)
}

fn wants() -> impl Strategy<Value = Want> {
    prop_oneof![
        Just(Want::Every),
        Just(Want::Platforms(vec!["linux/amd64"
            .parse()
            .unwrap_or_else(|_| unreachable!())])),
    ]
}

proptest! {
    // proptest's defaults: 256 cases, or PROPTEST_CASES.

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        index in any::<bool>(),
        want in wants(),
    ) {
        let _ = kind_of(&bytes);
        let media = if index { MEDIA_TYPE_INDEX } else { MEDIA_TYPE_MANIFEST };
        let top = Doc { digest: Digest::of(&bytes), media_type: media.into(), bytes };
        let _ = drive(top, &Store::new(), want);
    }

    #[test]
    fn mutated_valid_documents_read_or_give_a_typed_error(
        which in 0usize..3,
        mutations in prop::collection::vec(mutation(), 0..4),
        want in wants(),
    ) {
        let (top, store) = chain(which, &mutations);
        let _ = kind_of(&top.bytes);
        match drive(top, &store, want) {
            Ok(graph) => prop_assert!(!graph.images.is_empty()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn valid_chains_read(want in wants()) {
        let (top, store) = chain(0, &[]);
        let graph = drive(top, &store, want);
        prop_assert!(graph.is_ok(), "{:?}", graph.err());
    }
}
