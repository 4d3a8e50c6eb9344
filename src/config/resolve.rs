//! Relative paths in the file are relative to the file's directory: which directory that is,
//! and the resolution of the paths the model holds against it. Imports `model`; reads nothing
//! from the file system.

use super::model::BaseRef;
use std::path::{Path, PathBuf};

/// The directory relative paths in `file` are resolved against (`.` for a bare file name).
pub(super) fn config_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(super) fn resolve_base(base: BaseRef, dir: &Path) -> BaseRef {
    match base {
        BaseRef::Layout {
            spelled,
            dir: d,
            reference,
        } => BaseRef::Layout {
            spelled,
            dir: dir.join(d),
            reference,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_and_layout_bases() {
        assert_eq!(config_dir(Path::new("ocibuild.toml")), PathBuf::from("."));
        assert_eq!(config_dir(Path::new("a/b.toml")), PathBuf::from("a"));
        let base = BaseRef::try_from("oci:base:v1".to_string()).unwrap();
        let BaseRef::Layout { dir, .. } = resolve_base(base, Path::new("/proj")) else {
            panic!()
        };
        assert_eq!(dir, PathBuf::from("/proj/base"));
        assert_eq!(
            resolve_base(BaseRef::Scratch, Path::new("/p")),
            BaseRef::Scratch
        );
    }
}
