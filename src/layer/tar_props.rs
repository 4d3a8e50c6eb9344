//! Property tests of the tar writer: arbitrary trees (odd names: unicode, spaces, bytes that
//! are not UTF-8, names and link targets over 100 bytes; any modes, big ids and times;
//! symlinks, hard links, files of any size) read back by the `tar` crate equal the tree, and
//! the same tree always gives the same bytes. `PROPTEST_CASES=10000 cargo test --lib tar_props`
//! runs longer.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// What a generated entry is; a hard link names an earlier file by index (modulo the count).
#[derive(Debug, Clone)]
enum Gen {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(usize),
}

/// An entry of the tree: a hard link holds the path of an earlier file.
#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Item {
    path: Vec<u8>,
    node: Gen,
    meta: Meta,
}

/// Any byte but NUL and newline. (A newline in a PAX value is valid, and our writer's length
/// prefix covers it, but the `tar` crate's PAX reader splits records at newlines, so it
/// cannot be the independent check for those.)
fn odd_byte() -> impl Strategy<Value = u8> {
    (1u8..=254).prop_map(|b| if b == b'\n' { 255 } else { b })
}

fn component() -> impl Strategy<Value = Vec<u8>> {
    let odd = prop::collection::vec(odd_byte(), 1..12).prop_map(|mut v| {
        v.retain(|b| *b != b'/');
        v
    });
    prop_oneof![
        "[a-z0-9]{1,12}".prop_map(String::into_bytes),
        "[ a-zA-Z_.-]{1,10}".prop_map(String::into_bytes),
        "[\\p{L}\\p{N} ]{1,8}".prop_map(String::into_bytes),
        "[a-z]{60,130}".prop_map(String::into_bytes),
        odd,
    ]
    .prop_filter("a real name", |c| {
        !c.is_empty() && c.as_slice() != b"." && c.as_slice() != b".."
    })
}

fn item() -> impl Strategy<Value = Item> {
    let path = prop::collection::vec(component(), 1..4).prop_map(|c| c.join(&b'/'));
    let node = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(Gen::File),
        Just(Gen::Dir),
        prop::collection::vec(odd_byte(), 1..300).prop_map(Gen::Symlink),
        any::<usize>().prop_map(Gen::Hardlink),
    ];
    let id = prop_oneof![0u64..70_000, 0u64..=u64::from(u32::MAX)];
    let meta =
        (0u32..0o10000, id.clone(), id, 0u64..(1 << 40)).prop_map(|(mode, uid, gid, mtime)| Meta {
            mode,
            uid,
            gid,
            mtime,
        });
    (path, node, meta).prop_map(|(path, node, meta)| Item { path, node, meta })
}

/// Distinct paths; hard links resolved to earlier files' paths (a directory if none).
fn tree() -> impl Strategy<Value = Vec<(Vec<u8>, Node, Meta)>> {
    prop::collection::vec(item(), 0..25).prop_map(|items| {
        let mut seen = BTreeSet::new();
        let mut files: Vec<Vec<u8>> = Vec::new();
        let mut out = Vec::new();
        for it in items {
            if !seen.insert(it.path.clone()) {
                continue;
            }
            let node = match it.node {
                Gen::Hardlink(_) if files.is_empty() => Node::Dir,
                Gen::Hardlink(n) => Node::Hardlink(files[n % files.len()].clone()),
                Gen::File(d) => {
                    files.push(it.path.clone());
                    Node::File(d)
                }
                Gen::Dir => Node::Dir,
                Gen::Symlink(t) => Node::Symlink(t),
            };
            out.push((it.path, node, it.meta));
        }
        out
    })
}

fn kind_of(node: &Node) -> (Kind<'_>, Option<&[u8]>) {
    match node {
        Node::File(d) => (Kind::File(d.len() as u64), Some(d)),
        Node::Dir => (Kind::Dir, None),
        Node::Symlink(t) => (Kind::Symlink(t), None),
        Node::Hardlink(t) => (Kind::Hardlink(t), None),
    }
}

fn write(tree: &[(Vec<u8>, Node, Meta)]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for (path, node, meta) in tree {
        let (kind, data) = kind_of(node);
        w.append_header(path, kind, meta).unwrap();
        if let Some(d) = data {
            w.write_file_data(&mut &d[..], d.len() as u64).unwrap();
        }
    }
    w.finish().unwrap()
}

/// One entry as read back: path, type, link target, mode, uid, gid, mtime, data.
type Read = (Vec<u8>, u8, Vec<u8>, u32, u64, u64, u64, Vec<u8>);

fn read_back(bytes: &[u8]) -> Vec<Read> {
    let mut archive = ::tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut pax = std::collections::HashMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                pax.insert(x.key().unwrap().to_string(), x.value_bytes().to_vec());
            }
        }
        let num = |k: &str, h: u64| {
            pax.get(k)
                .map_or(h, |v| std::str::from_utf8(v).unwrap().parse().unwrap())
        };
        let h = e.header().clone();
        let path = e.path_bytes().into_owned();
        let link = e
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.push((
            path,
            h.entry_type().as_byte(),
            link,
            h.mode().unwrap(),
            num("uid", h.uid().unwrap()),
            num("gid", h.gid().unwrap()),
            num("mtime", h.mtime().unwrap()),
            data,
        ));
    }
    out
}

fn expected(tree: &[(Vec<u8>, Node, Meta)]) -> Vec<Read> {
    tree.iter()
        .map(|(path, node, m)| {
            let (kind, data) = kind_of(node);
            let (flag, link, path) = match kind {
                Kind::File(_) => (b'0', vec![], path.clone()),
                Kind::Dir => (b'5', vec![], [path.as_slice(), b"/"].concat()),
                Kind::Symlink(t) => (b'2', t.to_vec(), path.clone()),
                Kind::Hardlink(t) => (b'1', t.to_vec(), path.clone()),
            };
            let data = data.map(<[u8]>::to_vec).unwrap_or_default();
            (path, flag, link, m.mode, m.uid, m.gid, m.mtime, data)
        })
        .collect()
}

proptest! {
    // proptest's defaults: 256 cases, or PROPTEST_CASES.
    #[test]
    fn any_tree_reads_back_as_written_and_always_gives_the_same_bytes(tree in tree()) {
        let bytes = write(&tree);
        prop_assert_eq!(bytes.len() % 512, 0);
        prop_assert_eq!(read_back(&bytes), expected(&tree));
        prop_assert_eq!(write(&tree), bytes);
    }
}
