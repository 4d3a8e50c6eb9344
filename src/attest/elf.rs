//! Go modules in ELF executables: the `.go.buildinfo` section (Go 1.18+ inline-string format,
//! flag 0x2) gives the main module (`mod`) and its dependencies (`dep`, each possibly replaced by
//! the `=>` line after it).
//!
//! Only the ELF header, the section headers, the section name table and that section are read
//! (at offsets, each bounded): never the whole binary, except to hash it when it is a Go
//! binary (the main module's SHA-256). Bad input is an `Err` or no package, never a panic.

use super::packages::{sha256_of, Ecosystem, LayerFile, Package};
use super::purl;
use super::zip::{FileAt, ReadAt};

/// The largest section header table read.
const MAX_HEADERS: u64 = 4 << 20;
/// The largest section name table read.
const MAX_NAMES: u64 = 1 << 20;
/// The largest `.go.buildinfo` section read.
const MAX_BUILDINFO: u64 = 16 << 20;

const MAGIC: &[u8] = b"\xff Go buildinf:";

/// Integers of either byte order.
#[derive(Clone, Copy)]
struct Order {
    big: bool,
}

impl Order {
    fn u16(self, b: &[u8], i: usize) -> Option<u64> {
        let a: [u8; 2] = b.get(i..i.checked_add(2)?)?.try_into().ok()?;
        Some(u64::from(if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }))
    }
    fn u32(self, b: &[u8], i: usize) -> Option<u64> {
        let a: [u8; 4] = b.get(i..i.checked_add(4)?)?.try_into().ok()?;
        Some(u64::from(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }))
    }
    fn u64(self, b: &[u8], i: usize) -> Option<u64> {
        let a: [u8; 8] = b.get(i..i.checked_add(8)?)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }
}

/// A section: (name offset, type, file offset, size).
struct Section {
    name: u64,
    kind: u64,
    offset: u64,
    size: u64,
}

/// The contents of section `wanted`, if the file is an ELF file that has it; `Ok(None)` for a
/// file that is not ELF.
pub(super) fn section(src: &dyn ReadAt, wanted: &str) -> Result<Option<Vec<u8>>, String> {
    if src.size() < 64 {
        return Ok(None);
    }
    let h = src.bytes_at(0, 64)?;
    if &h[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let wide = match h[4] {
        1 => false,
        2 => true,
        c => return Err(format!("ELF class {c} unknown")),
    };
    let o = Order { big: h[5] == 2 };
    let bad = || "bad ELF header".to_string();
    let (shoff, entsize, num, strndx) = if wide {
        (
            o.u64(&h, 0x28),
            o.u16(&h, 0x3A),
            o.u16(&h, 0x3C),
            o.u16(&h, 0x3E),
        )
    } else {
        (
            o.u32(&h, 0x20),
            o.u16(&h, 0x2E),
            o.u16(&h, 0x30),
            o.u16(&h, 0x32),
        )
    };
    let (shoff, entsize, num, strndx) = (
        shoff.ok_or_else(bad)?,
        entsize.ok_or_else(bad)?,
        num.ok_or_else(bad)?,
        strndx.ok_or_else(bad)?,
    );
    let min = if wide { 64 } else { 40 };
    if num == 0 || entsize < min || entsize * num > MAX_HEADERS || strndx >= num {
        return Ok(None);
    }
    let table = src.bytes_at(shoff, entsize * num)?;
    let at = |i: u64| -> Option<Section> {
        let b = table.get(usize::try_from(i * entsize).ok()?..)?;
        Some(if wide {
            Section {
                name: o.u32(b, 0)?,
                kind: o.u32(b, 4)?,
                offset: o.u64(b, 0x18)?,
                size: o.u64(b, 0x20)?,
            }
        } else {
            Section {
                name: o.u32(b, 0)?,
                kind: o.u32(b, 4)?,
                offset: o.u32(b, 0x10)?,
                size: o.u32(b, 0x14)?,
            }
        })
    };
    let names = at(strndx).ok_or_else(bad)?;
    if names.size > MAX_NAMES {
        return Err("section name table too large".into());
    }
    let names = src.bytes_at(names.offset, names.size)?;
    for i in 0..num {
        let s = at(i).ok_or_else(bad)?;
        let Some(name) = usize::try_from(s.name).ok().and_then(|n| names.get(n..)) else {
            continue;
        };
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        if &name[..end] == wanted.as_bytes() && s.kind != 8 {
            if s.size > MAX_BUILDINFO {
                return Err(format!("{wanted} section too large"));
            }
            return src.bytes_at(s.offset, s.size).map(Some);
        }
    }
    Ok(None)
}

/// An unsigned LEB128 varint at `*at`, advancing it.
fn uvarint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let c = *b.get(*at)?;
        *at += 1;
        v |= u64::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A varint-length-prefixed string at `*at`.
fn string<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let n = usize::try_from(uvarint(b, at)?).ok()?;
    let s = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

/// The Go version and module information of a `.go.buildinfo` section.
pub(super) fn buildinfo(sec: &[u8]) -> Result<(String, String), String> {
    if sec.len() < 32 || &sec[..14] != MAGIC {
        return Err("no Go build information header".into());
    }
    if sec[15] & 0x2 == 0 {
        return Err("Go build information before Go 1.18 (pointer format) not read".into());
    }
    let mut at = 32;
    let bad = || "truncated Go build information".to_string();
    let version = string(sec, &mut at).ok_or_else(bad)?;
    let mut modinfo = string(sec, &mut at).ok_or_else(bad)?;
    // The module information is framed by 16-byte sentinels.
    let n = modinfo.len();
    modinfo = if n >= 33 && modinfo[n - 17] == b'\n' {
        &modinfo[16..n - 16]
    } else {
        &[]
    };
    Ok((
        String::from_utf8_lossy(version).into_owned(),
        String::from_utf8_lossy(modinfo).into_owned(),
    ))
}

/// The modules of a module information text: the main module first, then dependencies, each
/// replaced where a `=>` line follows it (a replacement by a local directory, without a
/// version, keeps the module path with version `(devel)`).
pub(super) fn modules(modinfo: &str) -> Vec<(bool, String, String)> {
    let mut out: Vec<(bool, String, String)> = Vec::new();
    for line in modinfo.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (path, version) = (
            f.get(1).copied().unwrap_or(""),
            f.get(2).copied().unwrap_or(""),
        );
        match f.first().copied() {
            Some("mod") if !path.is_empty() => out.push((true, path.into(), version.into())),
            Some("dep") if !path.is_empty() => out.push((false, path.into(), version.into())),
            Some("=>") => {
                if let Some(last) = out.last_mut() {
                    if version.is_empty() {
                        last.2 = "(devel)".into();
                    } else if !path.is_empty() {
                        (last.1, last.2) = (path.into(), version.into());
                    }
                }
            }
            _ => {}
        }
    }
    out.retain(|m| !m.2.is_empty());
    out
}

/// The Go modules of an executable, or none if it is not a Go ELF binary.
pub(super) fn go_packages(f: &LayerFile) -> Result<Vec<Package>, String> {
    let src = FileAt::open(f)?;
    let Some(sec) = section(&src, ".go.buildinfo")? else {
        return Ok(Vec::new());
    };
    let (_, modinfo) = buildinfo(&sec)?;
    let mods = modules(&modinfo);
    let sha = match mods.iter().any(|m| m.0) {
        true => Some(sha256_of(f)?),
        false => None,
    };
    Ok(mods
        .into_iter()
        .map(|(main, path, version)| Package {
            ecosystem: Ecosystem::Go,
            purl: purl::golang(&path, &version),
            name: path,
            version,
            path: f.image_path.clone(),
            sha256: if main { sha.clone() } else { None },
        })
        .collect())
}

#[cfg(test)]
#[path = "elf_tests.rs"]
pub(super) mod tests;
