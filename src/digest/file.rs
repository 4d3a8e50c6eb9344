//! A blob's file, opened safely: never through a symlink (`O_NOFOLLOW`), never anything but a
//! regular file (a fifo or device is refused without blocking), read with a size bound when
//! it is a document, hashed in one pass when its digest must be checked.
//!
//! Every reader of a layout's blobs, of its `oci-layout` and `index.json`, and of the layer
//! cache's files goes through here, so a symlink planted in `blobs/` can never make a host file
//! part of an image, and a `/dev/zero` or a 1 GiB `index.json` can never exhaust memory.

use super::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Refuse `root/<rel>` for each `rel` that exists and is not a real directory (a symlink to
/// one included): a layout's or cache's inner directories must not lead elsewhere. `root`
/// itself, given by the user, may be a symlink.
pub fn no_symlinked_dirs(root: &Path, rels: &[&str]) -> io::Result<()> {
    for rel in rels {
        let p = root.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if !m.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a directory (a symlink?): it must be one",
                        p.display()
                    ),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Take every write permission off an open file (blobs are never written in place). A file
/// already read-only is left alone, so its change time, part of the cache's stamps, stays.
pub fn make_read_only(file: &File) -> io::Result<()> {
    let mut perms = file.metadata()?.permissions();
    if !perms.readonly() {
        perms.set_readonly(true);
        file.set_permissions(perms)?;
    }
    Ok(())
}

/// Open `path` for reading if it is a regular file, and not through a symlink.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidData,
                "is a symbolic link: blobs must be regular files",
            ),
            _ => e,
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "is not a regular file: blobs and layout documents must be regular files",
        ));
    }
    Ok(file)
}

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file holds more than the bound.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

/// The whole of regular file `path`, refused if it holds more than `max` bytes (never reads
/// more than `max + 1`).
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    read_at_most(open_regular(path)?, max)
}

/// The whole of the user's own file `path` (symlinks followed, as for a Docker config or a CI
/// event payload), refused if it holds more than `max` bytes.
pub fn read_user_file(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    read_at_most(File::open(path)?, max)
}

fn read_at_most(f: File, max: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    f.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(bytes)
}

/// The digest and size of regular file `path`, read once.
pub fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut f = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total = total.saturating_add(n as u64);
    }
    Ok((Digest::of_hash(hasher.finalize().into()), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn symlinks_fifos_and_directories_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        fs::write(&real, b"abc").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = open_regular(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(open_regular(t.path()).is_err());
        let fifo = t.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = open_regular(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read_bounded(Path::new("/dev/zero"), 10).is_err());
        assert_eq!(hash_file(&real).unwrap(), (Digest::of(b"abc"), 3));
    }

    #[test]
    fn bounded_reads_stop_at_the_bound() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, vec![b'x'; 11]).unwrap();
        assert!(matches!(read_bounded(&f, 10), Err(ReadError::TooLarge(10))));
        assert_eq!(read_bounded(&f, 11).unwrap().len(), 11);
    }
}
