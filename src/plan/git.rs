//! A thin wrapper over the `git` command line: the few read-only questions change detection
//! and tagging ask. (The git CLI is on every CI runner and understands every repository
//! layout, shallow clones included; a library binding would add a C dependency for no gain.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// A git failure, with what to do when we know.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);

/// A repository (any directory inside a work tree).
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    /// The repository containing `dir`.
    pub fn open(dir: &Path) -> Result<Git, GitError> {
        let g = Git {
            dir: dir.to_path_buf(),
        };
        g.run(&["rev-parse", "--git-dir"]).map_err(|e| {
            GitError(format!(
                "{} is not inside a git repository ({}): change detection and the sha/timestamp tags need one; name services with --service or --all",
                dir.display(),
                e.0
            ))
        })?;
        Ok(g)
    }

    fn run_bytes(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| GitError(format!("running git: {e}: install git")))?;
        if !out.status.success() {
            return Err(GitError(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout)
    }

    fn run(&self, args: &[&str]) -> Result<String, GitError> {
        Ok(String::from_utf8_lossy(&self.run_bytes(args)?)
            .trim()
            .to_string())
    }

    /// The work tree's top directory.
    pub fn toplevel(&self) -> Result<PathBuf, GitError> {
        Ok(PathBuf::from(self.run(&["rev-parse", "--show-toplevel"])?))
    }

    /// The full commit id of `rev`.
    pub fn commit(&self, rev: &str) -> Result<String, GitError> {
        self.run(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .map_err(|_| GitError(format!("no commit {rev:?} in this clone")))
    }

    /// Whether the clone has `rev`.
    pub fn has_commit(&self, rev: &str) -> bool {
        self.commit(rev).is_ok()
    }

    /// Whether this is a shallow clone.
    pub fn is_shallow(&self) -> bool {
        self.run(&["rev-parse", "--is-shallow-repository"])
            .map(|s| s == "true")
            .unwrap_or(false)
    }

    /// The merge base of two revisions.
    pub fn merge_base(&self, a: &str, b: &str) -> Result<String, GitError> {
        self.run(&["merge-base", a, b])
    }

    /// Paths (relative to the top directory) that differ between `base` and `head`. A rename
    /// counts as a deletion of the old path and an addition of the new one.
    pub fn changed_paths(&self, base: &str, head: &str) -> Result<Vec<String>, GitError> {
        let out = self.run_bytes(&[
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            base,
            head,
            "--",
        ])?;
        Ok(out
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }

    /// Committer time of `rev`, in seconds since the epoch.
    pub fn commit_time(&self, rev: &str) -> Result<u64, GitError> {
        self.run(&["log", "-1", "--format=%ct", rev])?
            .parse()
            .map_err(|_| GitError(format!("cannot read the commit time of {rev}")))
    }

    /// `v`-prefixed tags pointing at `rev`.
    pub fn release_tags(&self, rev: &str) -> Result<Vec<String>, GitError> {
        Ok(self
            .run(&["tag", "--points-at", rev, "--list", "v*"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// Whether `ancestor` is on the history of `rev` (both must exist).
    pub fn is_ancestor(&self, ancestor: &str, rev: &str) -> bool {
        self.run(&["merge-base", "--is-ancestor", ancestor, rev])
            .is_ok()
    }

    /// The current branch, if HEAD is on one.
    pub fn branch(&self) -> Option<String> {
        self.run(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .ok()
    }
}
