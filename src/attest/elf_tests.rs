//! Tests of the Go build information reader on ELF files written here (64- and 32-bit, both
//! byte orders), and property tests: arbitrary and mutated ELF files never panic.
//! `PROPTEST_CASES=10000 cargo test --lib attest::elf` runs them longer.

use super::*;
use proptest::prelude::*;

const START: &[u8] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
const END: &[u8] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A Go 1.18+ `.go.buildinfo` section holding `modinfo`.
pub(in crate::attest) fn buildinfo_section(modinfo: &str) -> Vec<u8> {
    let mut s = MAGIC.to_vec();
    s.extend_from_slice(&[8, 2]);
    s.resize(32, 0);
    let version = b"go1.22.1";
    varint(version.len(), &mut s);
    s.extend_from_slice(version);
    let framed = [START, modinfo.as_bytes(), END].concat();
    varint(framed.len(), &mut s);
    s.extend_from_slice(&framed);
    s
}

/// An ELF file with sections `.shstrtab` and `name` holding `body`.
pub(in crate::attest) fn elf_with(name: &str, body: &[u8], wide: bool, big: bool) -> Vec<u8> {
    let put = |v: &mut Vec<u8>, x: u64, n: usize| {
        let b = x.to_le_bytes();
        if big {
            v.extend(b[..n].iter().rev());
        } else {
            v.extend_from_slice(&b[..n]);
        }
    };
    let word = if wide { 8 } else { 4 };
    let (ehsize, shentsize) = if wide { (64u64, 64u64) } else { (52, 40) };
    let names = [b"\0.shstrtab\0".as_slice(), name.as_bytes(), b"\0"].concat();
    let names_at = ehsize;
    let body_at = names_at + names.len() as u64;
    let sh_at = body_at + body.len() as u64;
    let mut f = vec![
        0x7f,
        b'E',
        b'L',
        b'F',
        if wide { 2 } else { 1 },
        if big { 2 } else { 1 },
        1,
    ];
    f.resize(16, 0);
    put(&mut f, 2, 2); // ET_EXEC
    put(&mut f, 62, 2);
    put(&mut f, 1, 4);
    put(&mut f, 0, word); // entry
    put(&mut f, 0, word); // phoff
    put(&mut f, sh_at, word);
    put(&mut f, 0, 4); // flags
    put(&mut f, ehsize, 2);
    put(&mut f, 0, 2);
    put(&mut f, 0, 2);
    put(&mut f, shentsize, 2);
    put(&mut f, 3, 2); // sections
    put(&mut f, 1, 2); // names are section 1
    f.extend_from_slice(&names);
    f.extend_from_slice(body);
    let header = |f: &mut Vec<u8>, name: u64, kind: u64, off: u64, size: u64| {
        put(f, name, 4);
        put(f, kind, 4);
        put(f, 0, word); // flags
        put(f, 0, word); // addr
        put(f, off, word);
        put(f, size, word);
        put(f, 0, 4);
        put(f, 0, 4);
        put(f, 1, word);
        put(f, 0, word);
    };
    header(&mut f, 0, 0, 0, 0);
    header(&mut f, 1, 3, names_at, names.len() as u64);
    header(&mut f, 11, 1, body_at, body.len() as u64);
    f
}

const MODINFO: &str = "path\texample.com/shop/catalog\n\
mod\texample.com/shop/catalog\t(devel)\t\n\
dep\tgithub.com/Google/uuid\tv1.6.0\th1:abc=\n\
dep\tgolang.org/x/net\tv0.20.0\th1:def=\n\
=>\tgithub.com/fork/net\tv0.21.0\th1:ghi=\n\
dep\texample.com/local\tv1.0.0\n\
=>\t../local\t\t\n\
build\t-compiler=gc\n";

#[test]
fn modules_and_replacements_come_from_the_buildinfo_section_in_every_elf_shape() {
    let sec = buildinfo_section(MODINFO);
    for (wide, big) in [(true, false), (true, true), (false, false), (false, true)] {
        let f = elf_with(".go.buildinfo", &sec, wide, big);
        let src: &[u8] = &f;
        let got = section(&src, ".go.buildinfo").unwrap().unwrap();
        assert_eq!(got, sec, "wide {wide} big {big}");
    }
    let (version, modinfo) = buildinfo(&sec).unwrap();
    assert_eq!(version, "go1.22.1");
    assert_eq!(
        modules(&modinfo),
        vec![
            (true, "example.com/shop/catalog".into(), "(devel)".into()),
            (false, "github.com/Google/uuid".into(), "v1.6.0".into()),
            (false, "github.com/fork/net".into(), "v0.21.0".into()),
            (false, "example.com/local".into(), "(devel)".into()),
        ]
    );
}

#[test]
fn a_go_binary_gives_its_modules_and_the_main_module_its_hash() {
    let bin = elf_with(".go.buildinfo", &buildinfo_section(MODINFO), true, false);
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("catalog");
    std::fs::write(&disk, &bin).unwrap();
    let f = LayerFile {
        image_path: "/app/catalog".into(),
        disk_path: disk,
        size: bin.len() as u64,
        executable: true,
    };
    let got = go_packages(&f).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[0].sha256.as_deref(),
        Some(crate::digest::Digest::of(&bin).hex())
    );
    assert_eq!(got[1].purl, "pkg:golang/github.com/google/uuid@v1.6.0");
    assert!(got[1..]
        .iter()
        .all(|p| p.sha256.is_none() && p.path == "/app/catalog"));
}

#[test]
fn other_files_give_no_section_and_old_formats_a_reason() {
    let src: &[u8] = b"#!/bin/sh\necho not an ELF file at all, just a script here....\n";
    assert_eq!(section(&src, ".go.buildinfo").unwrap(), None);
    let c = elf_with(".text", b"\x90\x90", true, false);
    assert_eq!(section(&c.as_slice(), ".go.buildinfo").unwrap(), None);
    let mut old = buildinfo_section(MODINFO);
    old[15] = 0;
    assert!(buildinfo(&old).unwrap_err().contains("before Go 1.18"));
}

fn read_all(bytes: &[u8]) {
    let src: &[u8] = bytes;
    if let Ok(Some(sec)) = section(&src, ".go.buildinfo") {
        if let Ok((_, m)) = buildinfo(&sec) {
            let _ = modules(&m);
        }
    }
}

proptest! {
    // proptest's defaults: 256 cases, or PROPTEST_CASES.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        read_all(&bytes);
        read_all(&[b"\x7fELF\x02\x01".as_slice(), &bytes].concat());
        read_all(&[b"\x7fELF\x01\x02".as_slice(), &bytes].concat());
        let _ = buildinfo(&[MAGIC, &[8, 2], &bytes].concat());
        let _ = modules(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_binaries_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        wide in any::<bool>(),
    ) {
        let mut f = elf_with(".go.buildinfo", &buildinfo_section(MODINFO), wide, false);
        for (i, b) in &flips {
            let at = i.index(f.len());
            f[at] = *b;
        }
        read_all(&f);
    }
}
