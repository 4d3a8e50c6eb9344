//! A minimal, deterministic tar writer: POSIX ustar headers, PAX extended headers where a value
//! does not fit (long or non-UTF-8-safe names, big files, large ids or times), and nothing that
//! depends on the host (no user or group names, no device numbers, no access times).
//!
//! Why not the `tar` crate: its builder writes GNU long-name records rather than PAX and fills
//! headers from file metadata; here every byte of every header is decided by the caller, so
//! the output depends only on the entries given. (The `tar` crate reads our output back in tests.)

use std::io::{self, Read, Write};

const BLOCK: usize = 512;
const ZERO_BLOCK: [u8; BLOCK] = [0; BLOCK];
/// Largest value of an 11-digit octal field (size, mtime).
const MAX_OCTAL_11: u64 = 0o77777777777;
/// Largest value of a 7-digit octal field (uid, gid).
const MAX_OCTAL_7: u64 = 0o7777777;

/// What one entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A regular file of this many bytes; the bytes follow the header.
    File(u64),
    /// A directory.
    Dir,
    /// A symbolic link to this target (bytes, kept exactly).
    Symlink(&'a [u8]),
    /// A hard link to an earlier entry of the archive.
    Hardlink(&'a [u8]),
}

/// The metadata written for an entry; everything else in the header is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (including setuid/setgid/sticky when wanted).
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// Why a file's contents could not be copied into the archive.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading the file failed.
    #[error("reading failed")]
    Read(#[source] io::Error),
    /// Writing the archive failed.
    #[error("writing the layer failed")]
    Write(#[source] io::Error),
    /// The file ended before the size recorded when it was walked.
    #[error("the file shrank while the layer was being built")]
    Shrank,
    /// The file had more bytes than recorded when it was walked.
    #[error("the file grew while the layer was being built")]
    Grew,
    /// The file was written to (or replaced) while the layer was being built.
    #[error("the file changed while the layer was being built (its modification time or identity is not the one listed): wait for whatever writes it to finish, then build again")]
    Changed,
}

/// Writes tar entries to `W`.
pub struct TarWriter<W: Write> {
    out: W,
}

fn octal(field: &mut [u8], value: u64) {
    // width-1 digits, zero padded, then NUL.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// One PAX record: "<len> <key>=<value>\n", where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

impl<W: Write> TarWriter<W> {
    /// Start an archive on `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Write one entry's header(s). For a file, exactly `size` bytes must follow through
    /// [`TarWriter::write_file_data`].
    pub fn append_header(&mut self, path: &[u8], kind: Kind<'_>, meta: &Meta) -> io::Result<()> {
        let mut name = path.to_vec();
        if kind == Kind::Dir && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let (typeflag, size, link): (u8, u64, &[u8]) = match kind {
            Kind::File(n) => (b'0', n, b""),
            Kind::Dir => (b'5', 0, b""),
            Kind::Symlink(t) => (b'2', 0, t),
            Kind::Hardlink(t) => (b'1', 0, t),
        };
        let mut pax = Vec::new();
        if name.len() > 100 {
            pax_record(&mut pax, "path", &name);
        }
        if link.len() > 100 {
            pax_record(&mut pax, "linkpath", link);
        }
        if size > MAX_OCTAL_11 {
            pax_record(&mut pax, "size", size.to_string().as_bytes());
        }
        if meta.mtime > MAX_OCTAL_11 {
            pax_record(&mut pax, "mtime", meta.mtime.to_string().as_bytes());
        }
        if meta.uid > MAX_OCTAL_7 {
            pax_record(&mut pax, "uid", meta.uid.to_string().as_bytes());
        }
        if meta.gid > MAX_OCTAL_7 {
            pax_record(&mut pax, "gid", meta.gid.to_string().as_bytes());
        }
        if !pax.is_empty() {
            if std::str::from_utf8(&name).is_err() || std::str::from_utf8(link).is_err() {
                // Non-UTF-8 names are kept byte-exact; say so, as POSIX asks.
                let mut with_charset = Vec::new();
                pax_record(&mut with_charset, "hdrcharset", b"BINARY");
                with_charset.extend_from_slice(&pax);
                pax = with_charset;
            }
            let pax_meta = Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: meta.mtime.min(MAX_OCTAL_11),
            };
            self.raw_header(b"././@PaxHeader", b'x', pax.len() as u64, b"", &pax_meta)?;
            self.out.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        let short = |b: &[u8]| b[..b.len().min(100)].to_vec();
        let capped = Meta {
            mode: meta.mode,
            uid: meta.uid.min(MAX_OCTAL_7),
            gid: meta.gid.min(MAX_OCTAL_7),
            mtime: meta.mtime.min(MAX_OCTAL_11),
        };
        self.raw_header(
            &short(&name),
            typeflag,
            size.min(MAX_OCTAL_11),
            &short(link),
            &capped,
        )
    }

    fn raw_header(
        &mut self,
        name: &[u8],
        typeflag: u8,
        size: u64,
        link: &[u8],
        meta: &Meta,
    ) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(meta.mode & 0o7777));
        octal(&mut h[108..116], meta.uid);
        octal(&mut h[116..124], meta.gid);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], meta.mtime);
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        // devmajor/devminor: zero-filled octal, as GNU tar and Go write them.
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.write_all(&h)
    }

    fn pad(&mut self, written: u64) -> io::Result<()> {
        let rem = (written % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&ZERO_BLOCK[..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Copy exactly `size` bytes of a file's contents from `src`, then pad the block.
    pub fn write_file_data(&mut self, src: &mut impl Read, size: u64) -> Result<(), DataError> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = src.read(&mut buf[..want]).map_err(DataError::Read)?;
            if n == 0 {
                return Err(DataError::Shrank);
            }
            self.out.write_all(&buf[..n]).map_err(DataError::Write)?;
            left -= n as u64;
        }
        if src.read(&mut buf[..1]).map_err(DataError::Read)? != 0 {
            return Err(DataError::Grew);
        }
        self.pad(size).map_err(DataError::Write)
    }

    /// Write the two zero blocks that end an archive and give back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&ZERO_BLOCK)?;
        self.out.write_all(&ZERO_BLOCK)?;
        Ok(self.out)
    }
}

#[cfg(test)]
#[path = "tar_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    const META: Meta = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
    };

    fn archive(build: impl FnOnce(&mut TarWriter<Vec<u8>>)) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        build(&mut w);
        w.finish().unwrap()
    }

    #[test]
    fn header_fields_are_normalised() {
        let data = b"#!/bin/sh\necho hi\n";
        let bytes = archive(|w| {
            w.append_header(
                b"app/run.sh",
                Kind::File(data.len() as u64),
                &Meta {
                    mode: 0o4755,
                    uid: 1000,
                    gid: 1001,
                    mtime: 1_700_000_000,
                },
            )
            .unwrap();
            w.write_file_data(&mut &data[..], data.len() as u64)
                .unwrap();
        });
        assert_eq!(bytes.len(), 512 * 4);
        let h = &bytes[..512];
        assert_eq!(&h[..10], b"app/run.sh");
        assert_eq!(&h[100..108], b"0004755\0");
        assert_eq!(&h[108..116], b"0001750\0");
        assert_eq!(&h[124..136], b"00000000022\0");
        assert_eq!(&h[136..148], b"14524770400\0");
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert!(
            h[265..329].iter().all(|&b| b == 0),
            "uname/gname must be empty"
        );
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.header().mode().unwrap(), 0o4755);
        assert_eq!(e.header().uid().unwrap(), 1000);
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s.as_bytes(), data);
    }

    #[test]
    fn long_and_non_utf8_names_use_pax_and_round_trip() {
        let long: Vec<u8> = format!("app/{}/file.txt", "d".repeat(150)).into_bytes();
        let odd: Vec<u8> = b"app/caf\xe9-latin1.txt".to_vec();
        let long_odd: Vec<u8> = [&b"app/"[..], &[0xff; 120][..]].concat();
        let long_link = vec![b'x'; 200];
        let bytes = archive(|w| {
            for p in [&long, &odd, &long_odd] {
                w.append_header(p, Kind::File(0), &META).unwrap();
                w.write_file_data(&mut &b""[..], 0).unwrap();
            }
            w.append_header(b"app/l", Kind::Symlink(&long_link), &META)
                .unwrap();
            w.append_header(
                b"app/big-ids",
                Kind::Dir,
                &Meta {
                    uid: 1 << 40,
                    gid: 3 << 30,
                    ..META
                },
            )
            .unwrap();
        });
        let mut ar = tar::Archive::new(&bytes[..]);
        let got: Vec<(Vec<u8>, Option<Vec<u8>>, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path_bytes().into_owned(),
                    e.link_name_bytes().map(|l| l.into_owned()),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(got[0].0, long);
        assert_eq!(got[1].0, odd);
        assert_eq!(got[2].0, long_odd);
        assert_eq!(got[3].1.as_deref(), Some(&long_link[..]));
        assert_eq!(got[4].0, b"app/big-ids/");
        // The tar crate reads the uid from the ustar field; check the PAX record is there.
        let text = bytes.iter().map(|&b| b as char).collect::<String>();
        assert!(
            text.contains(" uid=1099511627776\n"),
            "uid PAX record missing"
        );
        assert!(text.contains("hdrcharset=BINARY"));
        let _ = std::ffi::OsStr::from_bytes(&odd);
    }

    #[test]
    fn huge_sizes_and_times_go_to_pax_records() {
        // Headers only: the 16 GiB of data never exist.
        let mut w = TarWriter::new(Vec::new());
        let size = 1u64 << 34;
        let meta = Meta {
            mtime: 1 << 40,
            ..META
        };
        w.append_header(b"big", Kind::File(size), &meta).unwrap();
        let bytes = w.out;
        assert_eq!(
            bytes.len(),
            512 * 3,
            "pax header, its records, the file header"
        );
        assert_eq!(bytes[156], b'x');
        let records = String::from_utf8_lossy(&bytes[512..1024]);
        assert!(records.contains(" size=17179869184\n"), "{records}");
        assert!(records.contains(" mtime=1099511627776\n"), "{records}");
        // the ustar fields hold what fits, and the file header still checksums
        assert_eq!(&bytes[1024 + 124..1024 + 136], b"77777777777\0");
        let header = tar::Header::from_byte_slice(&bytes[1024..1536]);
        assert_eq!(header.cksum().unwrap(), {
            let mut h = bytes[1024..1536].to_vec();
            h[148..156].copy_from_slice(b"        ");
            h.iter().map(|&b| u32::from(b)).sum::<u32>()
        });
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [1usize, 5, 90, 95, 96, 97, 990, 995] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", &vec![b'a'; n]);
            let s = String::from_utf8(out.clone()).unwrap();
            let len: usize = s.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(len, out.len(), "value length {n}");
        }
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        w.append_header(b"f", Kind::File(10), &META).unwrap();
        let e = w.write_file_data(&mut &b"short"[..], 10).unwrap_err();
        assert!(matches!(e, DataError::Shrank), "{e}");
        let mut w = TarWriter::new(Vec::new());
        w.append_header(b"f", Kind::File(2), &META).unwrap();
        let e = w.write_file_data(&mut &b"longer"[..], 2).unwrap_err();
        assert!(matches!(e, DataError::Grew), "{e}");
    }

    #[test]
    fn hardlinks_and_symlinks() {
        let bytes = archive(|w| {
            w.append_header(b"a", Kind::File(0), &META).unwrap();
            w.append_header(b"b", Kind::Hardlink(b"a"), &META).unwrap();
            w.append_header(
                b"c",
                Kind::Symlink(b"../x"),
                &Meta {
                    mode: 0o777,
                    ..META
                },
            )
            .unwrap();
        });
        let mut ar = tar::Archive::new(&bytes[..]);
        let kinds: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().header().entry_type())
            .collect();
        assert_eq!(
            kinds,
            [
                tar::EntryType::Regular,
                tar::EntryType::Link,
                tar::EntryType::Symlink
            ]
        );
    }
}
