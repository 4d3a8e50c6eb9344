//! Moving finished layouts into `OUT`, all or nothing, and safe against a kill at any point.
//!
//! The staging directory `OUT/.ocibuild-staging-*` holds a lock file locked (`flock`) for as
//! long as its run lives; a later run removes every staging directory whose lock it can take
//! (its owner is gone). Each layout is moved in with one `renameat2(RENAME_EXCHANGE)` (the new
//! layout and the old one swap places atomically) or, where there was none, one
//! `RENAME_NOREPLACE` rename; so at every instant each `OUT/<service>` is the old complete
//! layout or the new one. A failed step undoes the earlier ones in reverse order, restoring
//! every old layout; the old layouts end in the staging directory, removed with it.

use super::BuildError;
use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Prefix of staging directories in `OUT`.
pub const STAGING_PREFIX: &str = ".ocibuild-staging-";
const LOCK: &str = ".lock";

/// A staging directory, locked for the life of this value, removed when dropped.
pub struct Staging {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Staging {
    /// Create and lock a staging directory in `out`.
    pub fn create(out: &Path) -> io::Result<Staging> {
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(out)?;
        let lock = File::create(dir.path().join(LOCK))?;
        flock(&lock, libc::LOCK_EX | libc::LOCK_NB)?;
        Ok(Staging { dir, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remove the directory now (with the old layouts in it).
    pub fn close(self) -> io::Result<()> {
        self.dir.close()
    }
}

fn flock(f: &File, op: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; flock has no memory effects.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Remove the staging directories of earlier runs of `out` that are gone (killed, or crashed):
/// those whose lock file can be locked. A directory without a lock file is another run's that
/// has only just been created, or left by a version without locks: it is removed only once
/// it is a minute old.
pub fn remove_leftovers(out: &Path) {
    let Ok(list) = fs::read_dir(out) else { return };
    for entry in list.flatten() {
        let name = entry.file_name();
        if !name.as_bytes().starts_with(STAGING_PREFIX.as_bytes()) {
            continue;
        }
        let dir = entry.path();
        if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let abandoned = match File::open(dir.join(LOCK)) {
            Ok(lock) => flock(&lock, libc::LOCK_EX | libc::LOCK_NB).is_ok(),
            Err(_) => fs::symlink_metadata(&dir)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 60)),
        };
        if abandoned {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// The renames a move is made of (a seam: tests make the N-th fail, or stop as a kill would).
pub trait Renames {
    /// Swap `a` and `b` atomically (both exist).
    fn exchange(&mut self, a: &Path, b: &Path) -> io::Result<()>;
    /// Rename `from` to `to`, which must not exist.
    fn rename_new(&mut self, from: &Path, to: &Path) -> io::Result<()>;
}

/// The system's renames (`renameat2`).
pub struct System;

fn renameat2(a: &Path, b: &Path, flags: libc::c_uint) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Renames for System {
    fn exchange(&mut self, a: &Path, b: &Path) -> io::Result<()> {
        renameat2(a, b, libc::RENAME_EXCHANGE)
    }
    fn rename_new(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        renameat2(from, to, libc::RENAME_NOREPLACE)
    }
}

/// One move done: the layout `staged` now at `dest`, and whether an old one was swapped out
/// (it is now at `staged`).
struct Done<'a> {
    staged: PathBuf,
    dest: &'a Path,
    swapped: bool,
}

/// Move each `(name, dest)` layout from `staging/<name>` to `dest`, all or nothing.
pub fn move_into_place(
    staging: &Path,
    layouts: &[(&str, &Path)],
    ops: &mut dyn Renames,
) -> Result<(), BuildError> {
    let mut done: Vec<Done<'_>> = Vec::new();
    for (name, dest) in layouts {
        let staged = staging.join(name);
        let swapped = fs::symlink_metadata(dest).is_ok();
        let r = if swapped {
            ops.exchange(&staged, dest)
        } else {
            ops.rename_new(&staged, dest)
        };
        if let Err(e) = r {
            let undone = undo(&done, ops);
            return Err(BuildError::Output {
                path: dest.to_path_buf(),
                message: format!("moving the new layout into place: {e}; {undone}"),
            });
        }
        done.push(Done {
            staged,
            dest,
            swapped,
        });
    }
    Ok(())
}

/// Undo `done` in reverse order; says what the output directory holds now.
fn undo(done: &[Done<'_>], ops: &mut dyn Renames) -> String {
    let mut stuck = Vec::new();
    for d in done.iter().rev() {
        let r = if d.swapped {
            ops.exchange(&d.staged, d.dest)
        } else {
            ops.rename_new(d.dest, &d.staged)
        };
        if let Err(e) = r {
            stuck.push(format!("{} ({e})", d.dest.display()));
        }
    }
    if stuck.is_empty() {
        "every earlier layout was restored".into()
    } else {
        format!(
            "these hold the new layout and could not be put back: {}",
            stuck.join(", ")
        )
    }
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
