//! Maven packages in jars and wars: a bounded reader of zip central directories (zip64
//! included) and stored or deflated entries, and the `META-INF/maven/**/pom.properties` they
//! hold, in the archive and in its `BOOT-INF/lib/*.jar` / `WEB-INF/lib/*.jar` (one level).
//!
//! Caps: [`MAX_ENTRIES`] central directory entries, [`MAX_DIRECTORY`] bytes of directory,
//! [`SMALL_MAX`] for a `pom.properties`, [`NESTED_MAX`] inflated for a nested jar. Every offset
//! and length from the archive is checked against its size; bad input is an `Err`, never a
//! panic. An archive's SHA-256 is given to its packages only when it holds exactly one
//! `pom.properties` (a shaded jar holding several is none of them).

use super::packages::{sha256_of, Ecosystem, LayerFile, Package, SMALL_MAX};
use super::purl;
use crate::digest::file::open_regular;
use crate::digest::Digest;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The most central directory entries read.
pub const MAX_ENTRIES: u64 = 1 << 20;
/// The largest central directory read.
pub const MAX_DIRECTORY: u64 = 128 << 20;
/// The largest nested jar inflated.
pub const NESTED_MAX: u64 = 256 << 20;

/// Bytes readable at offsets: a file or a buffer.
pub(super) trait ReadAt {
    /// Total length.
    fn size(&self) -> u64;
    /// Fill `buf` from `off`; an error if the bytes are not all there.
    fn read_exact_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()>;
    /// `len` bytes at `off`, checked against the size first (no allocation beyond it).
    fn bytes_at(&self, off: u64, len: u64) -> Result<Vec<u8>, String> {
        let end = off.checked_add(len).ok_or("offset overflows")?;
        if end > self.size() {
            return Err(format!("{len} bytes at {off} lie past the end"));
        }
        let n = usize::try_from(len).map_err(|_| "too large")?;
        let mut buf = vec![0u8; n];
        self.read_exact_at(off, &mut buf)
            .map_err(|e| format!("not read ({e})"))?;
        Ok(buf)
    }
}

/// An open file and its size.
pub(super) struct FileAt {
    file: File,
    size: u64,
}

impl FileAt {
    pub(super) fn open(f: &LayerFile) -> Result<FileAt, String> {
        let file = open_regular(&f.disk_path).map_err(|e| format!("not opened ({e})"))?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        Ok(FileAt { file, size })
    }
}

impl ReadAt for FileAt {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, off)
    }
}

impl ReadAt for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| (**self).get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

pub(super) fn le16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(i..i.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(super) fn le32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(i..i.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(super) fn le64(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(i..i.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// One central directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ZipEntry {
    pub name: String,
    method: u16,
    compressed: u64,
    size: u64,
    offset: u64,
}

const EOCD: u32 = 0x0605_4b50;
const EOCD64_LOCATOR: u32 = 0x0706_4b50;
const EOCD64: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

/// Where the central directory is: (entries, size, offset).
fn directory(src: &dyn ReadAt) -> Result<(u64, u64, u64), String> {
    let len = src.size();
    if len < 22 {
        return Err("not a zip archive (too short)".into());
    }
    let tail_len = len.min(22 + 65_535);
    let tail_at = len - tail_len;
    let tail = src.bytes_at(tail_at, tail_len)?;
    let pos = (0..=tail.len() - 22)
        .rev()
        .find(|&i| le32(&tail, i) == Some(EOCD))
        .ok_or("not a zip archive (no end of central directory)")?;
    let field = |i: usize| le32(&tail, pos + i).ok_or("truncated end record");
    let count = u64::from(le16(&tail, pos + 10).ok_or("truncated end record")?);
    let (size, offset) = (u64::from(field(12)?), u64::from(field(16)?));
    if count != 0xFFFF && size != 0xFFFF_FFFF && offset != 0xFFFF_FFFF {
        return Ok((count, size, offset));
    }
    // Zip64: the locator sits just before the end record and points at the zip64 record.
    let eocd_at = tail_at + pos as u64;
    let loc_at = eocd_at.checked_sub(20).ok_or("truncated zip64 locator")?;
    let loc = src.bytes_at(loc_at, 20)?;
    if le32(&loc, 0) != Some(EOCD64_LOCATOR) {
        return Err("zip64 locator missing".into());
    }
    let rec = src.bytes_at(le64(&loc, 8).ok_or("bad locator")?, 56)?;
    if le32(&rec, 0) != Some(EOCD64) {
        return Err("zip64 end record missing".into());
    }
    let get = |i| le64(&rec, i).ok_or("truncated zip64 end record");
    Ok((get(32)?, get(40)?, get(48)?))
}

/// The central directory's entries.
pub(super) fn entries(src: &dyn ReadAt) -> Result<Vec<ZipEntry>, String> {
    let (count, size, offset) = directory(src)?;
    if count > MAX_ENTRIES || size > MAX_DIRECTORY {
        return Err(format!(
            "central directory of {count} entries, {size} bytes: over the limits"
        ));
    }
    let cd = src.bytes_at(offset, size)?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while (out.len() as u64) < count {
        out.push(entry_at(&cd, &mut at)?);
    }
    Ok(out)
}

fn entry_at(cd: &[u8], at: &mut usize) -> Result<ZipEntry, String> {
    let i = *at;
    let bad = || format!("bad central directory entry at {i}");
    if le32(cd, i) != Some(CENTRAL) {
        return Err(bad());
    }
    let h16 = |o: usize| le16(cd, i + o).map(usize::from).ok_or_else(bad);
    let h32 = |o: usize| le32(cd, i + o).map(u64::from).ok_or_else(bad);
    let (n, m, k) = (h16(28)?, h16(30)?, h16(32)?);
    let name_at = i + 46;
    let name = cd.get(name_at..name_at + n).ok_or_else(bad)?;
    let extra = cd.get(name_at + n..name_at + n + m).ok_or_else(bad)?;
    let mut e = ZipEntry {
        name: String::from_utf8_lossy(name).into_owned(),
        method: h16(10)? as u16,
        compressed: h32(20)?,
        size: h32(24)?,
        offset: h32(42)?,
    };
    zip64_extra(extra, &mut e);
    *at = name_at + n + m + k;
    Ok(e)
}

/// Apply a zip64 extended information field: the 0xFFFFFFFF fields, in order.
fn zip64_extra(extra: &[u8], e: &mut ZipEntry) {
    let mut i = 0usize;
    while let (Some(id), Some(len)) = (le16(extra, i), le16(extra, i + 2)) {
        let body = extra.get(i + 4..i + 4 + usize::from(len)).unwrap_or(&[]);
        if id == 1 {
            let mut j = 0usize;
            for field in [&mut e.size, &mut e.compressed, &mut e.offset] {
                if *field == 0xFFFF_FFFF {
                    if let Some(v) = le64(body, j) {
                        *field = v;
                        j += 8;
                    }
                }
            }
        }
        i += 4 + usize::from(len);
    }
}

/// An entry's bytes (stored or deflated), refused if it inflates to more than `max`.
pub(super) fn data(src: &dyn ReadAt, e: &ZipEntry, max: u64) -> Result<Vec<u8>, String> {
    if e.size > max || e.compressed > max {
        return Err(format!("{}: larger than {max} bytes", e.name));
    }
    let local = src.bytes_at(e.offset, 30)?;
    if le32(&local, 0) != Some(LOCAL) {
        return Err(format!("{}: bad local header", e.name));
    }
    let skip =
        30 + u64::from(le16(&local, 26).unwrap_or(0)) + u64::from(le16(&local, 28).unwrap_or(0));
    let start = e.offset.checked_add(skip).ok_or("offset overflows")?;
    let raw = src.bytes_at(start, e.compressed)?;
    match e.method {
        0 if e.compressed == e.size => Ok(raw),
        8 => {
            let n = usize::try_from(e.size).map_err(|_| "too large")?;
            let mut out = vec![0u8; n];
            let got = libdeflater::Decompressor::new()
                .deflate_decompress(&raw, &mut out)
                .map_err(|err| format!("{}: bad deflate data ({err})", e.name))?;
            if got != n {
                return Err(format!("{}: inflated size differs", e.name));
            }
            Ok(out)
        }
        m => Err(format!("{}: compression method {m} not read", e.name)),
    }
}

/// `groupId`, `artifactId`, `version` of a `pom.properties` (Java properties: `k=v` or `k: v`,
/// `#` and `!` comments).
pub(super) fn pom_properties(text: &[u8]) -> Option<(String, String, String)> {
    let text = String::from_utf8_lossy(text);
    let (mut g, mut a, mut v) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(i) = line.find(['=', ':']) else {
            continue;
        };
        let (key, value) = (line[..i].trim(), line[i + 1..].trim());
        let slot = match key {
            "groupId" => &mut g,
            "artifactId" => &mut a,
            "version" => &mut v,
            _ => continue,
        };
        if !value.is_empty() && value.len() <= 256 {
            *slot = Some(value.to_string());
        }
    }
    Some((g?, a?, v?))
}

fn is_pom(name: &str) -> bool {
    name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties")
}

fn is_nested_jar(name: &str) -> bool {
    (name.starts_with("BOOT-INF/lib/") || name.starts_with("WEB-INF/lib/"))
        && name.ends_with(".jar")
}

/// The packages an archive's own `pom.properties` declare (not its nested jars').
fn archive_packages(
    src: &dyn ReadAt,
    entries: &[ZipEntry],
    path: &str,
    sha256: impl FnOnce() -> Result<String, String>,
) -> Result<Vec<Package>, String> {
    let found: Vec<(String, String, String)> = entries
        .iter()
        .filter(|e| is_pom(&e.name))
        .filter_map(|e| data(src, e, SMALL_MAX).ok())
        .filter_map(|b| pom_properties(&b))
        .collect();
    let sha = match found.len() {
        1 => Some(sha256()?),
        _ => None,
    };
    Ok(found
        .into_iter()
        .map(|(g, a, v)| Package {
            ecosystem: Ecosystem::Maven,
            name: format!("{g}:{a}"),
            purl: purl::maven(&g, &a, &v),
            version: v,
            path: path.to_string(),
            sha256: sha.clone(),
        })
        .collect())
}

/// The Maven packages of a jar or war and of its nested library jars; problems with a nested
/// jar are pushed to `warnings` and the others still read.
pub(super) fn maven_packages(
    f: &LayerFile,
    warnings: &mut Vec<String>,
) -> Result<Vec<Package>, String> {
    let src = FileAt::open(f)?;
    let entries = entries(&src)?;
    let mut out = archive_packages(&src, &entries, &f.image_path, || sha256_of(f))?;
    for e in entries.iter().filter(|e| is_nested_jar(&e.name)) {
        let path = format!("{}!/{}", f.image_path, e.name);
        let nested = data(&src, e, NESTED_MAX).and_then(|bytes| {
            let inner = self::entries(&bytes.as_slice())?;
            let sha = || Ok(Digest::of(&bytes).hex().to_string());
            archive_packages(&bytes.as_slice(), &inner, &path, sha)
        });
        match nested {
            Ok(p) => out.extend(p),
            Err(why) => warnings.push(format!("{path}: {why}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "zip_tests.rs"]
pub(super) mod tests;
