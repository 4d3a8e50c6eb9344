//! The names that go into registry URLs, validated when made: a [`Repository`] (the
//! distribution spec's name grammar) and a [`Reference`] (a tag, or a digest). The client
//! builds every request path from these alone, segment by segment, so nothing read from a
//! file, a command line or a server can reach another path, another repository or the query.

use crate::digest::Digest;
use crate::spec::{check_repository, check_tag};
use std::fmt;

/// A repository name that follows the distribution grammar (`team/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository(String);

impl Repository {
    /// `s` if it is a valid repository name, else why not.
    pub fn parse(s: &str) -> Result<Repository, String> {
        check_repository(s)?;
        Ok(Repository(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its path components (each `[a-z0-9._-]+`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest is asked for by: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
    Tag(String),
    /// A digest (`sha256:<64 hex>`).
    Digest(Digest),
}

impl Reference {
    /// `s` as a digest when it has the `algorithm:` form, else as a tag; refused if it is
    /// neither, with why.
    pub fn parse(s: &str) -> Result<Reference, String> {
        if s.contains(':') {
            return s.parse::<Digest>().map(Reference::Digest).map_err(|e| {
                format!("{s:?} is neither a tag (no ':' allowed) nor a valid digest: {e}")
            });
        }
        check_tag(s)?;
        Ok(Reference::Tag(s.to_string()))
    }

    /// The text that goes into the URL.
    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(t) => t,
            Reference::Digest(d) => d.as_str(),
        }
    }

    /// The digest, when the reference is one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_their_path_are_refused() {
        for bad in [
            "../../other",
            "a/../b",
            "a?x=1",
            "a#f",
            "a%2fb",
            "A",
            "a//b",
            "",
            "/a",
        ] {
            assert!(Repository::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Repository::parse("team/app")
                .unwrap()
                .components()
                .collect::<Vec<_>>(),
            ["team", "app"]
        );
        for bad in [
            "../../other/manifests/x",
            "v1?x=1",
            "v1#f",
            "v1/x",
            "..",
            ".",
            "",
            "sha256:abc",
            "md5:x",
            "-v",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
        let d = Digest::of(b"x");
        assert_eq!(
            Reference::parse(d.as_str()).unwrap(),
            Reference::Digest(d.clone())
        );
        assert_eq!(
            Reference::parse("v1.2").unwrap(),
            Reference::Tag("v1.2".into())
        );
    }
}
