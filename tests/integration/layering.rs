//! The module layering ARCHITECTURE.md states, enforced (as go-containerregistry's depcheck
//! does): each module of `src/` may name only the crate modules listed for it, so no import
//! runs from a lower layer to a higher one; only `ecr` names the AWS SDK; only `registry`
//! names the HTTP client; `cli` names nothing but `app`.

use crate::common::repo;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Each top-level module and the crate modules it may name (its own is always allowed).
const ALLOWED: &[(&str, &[&str])] = &[
    ("main", &["cli"]),
    ("lib", &[]),
    ("cli", &["app"]),
    (
        "app",
        &[
            "attest",
            "base",
            "build",
            "config",
            "digest",
            "ecr",
            "inventory",
            "layer",
            "oci",
            "plan",
            "platform",
            "registry",
            "sign",
            "spec",
            "transfer",
        ],
    ),
    ("transfer", &["digest", "oci", "registry", "sign", "spec"]),
    (
        "build",
        &[
            "attest", "base", "config", "digest", "image", "layer", "layout", "oci", "platform",
            "spec",
        ],
    ),
    ("attest", &["digest", "platform", "spec"]),
    (
        "ecr",
        &["config", "digest", "inventory", "registry", "spec"],
    ),
    ("plan", &["config", "digest", "platform", "spec"]),
    (
        "base",
        &[
            "config",
            "digest",
            "layout",
            "oci",
            "platform",
            "reference",
            "registry",
            "spec",
        ],
    ),
    (
        "oci",
        &["digest", "layout", "platform", "reference", "spec"],
    ),
    ("image", &["config", "digest", "platform", "spec"]),
    ("inventory", &["spec"]),
    ("layer", &["config", "digest", "platform", "spec"]),
    ("registry", &["digest", "reference", "spec"]),
    ("layout", &["digest", "spec"]),
    ("sign", &["digest", "spec"]),
    ("config", &["digest", "platform", "reference", "spec"]),
    ("reference", &["digest", "spec"]),
    ("platform", &[]),
    ("spec", &[]),
    ("digest", &[]),
];

/// External crates only one module may name.
const OWNED: &[(&str, &str)] = &[
    ("aws_sdk_ecr", "ecr"),
    ("aws_config", "ecr"),
    ("aws_smithy", "ecr"),
    ("reqwest", "registry"),
    ("rustls", "registry"),
    ("clap", "cli"),
    ("indicatif", "cli"),
    ("p256", "sign"),
    ("scrypt", "sign"),
    ("crypto_secretbox", "sign"),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate modules named in `text` as `crate::<name>` (or `ocibuild::<name>` in main.rs).
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "ocibuild::"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Text without `//` comments (doc comments name modules in prose).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn modules_import_only_downwards_and_vendors_stay_in_their_module() {
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == top) else {
            wrong.push(format!(
                "{}: module {top} is not in the layering table",
                rel.display()
            ));
            continue;
        };
        let code = code_of(&fs::read_to_string(f).unwrap());
        for m in named_modules(&code) {
            if m != top && !allowed.contains(&m.as_str()) {
                wrong.push(format!("{}: {top} may not import {m}", rel.display()));
            }
        }
        for (krate, owner) in OWNED {
            let named =
                code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}"));
            if named && top != *owner {
                wrong.push(format!("{}: only {owner} may use {krate}", rel.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_imports() {
    let code =
        code_of("use crate::app::x;\n// crate::cli in a comment\nlet y = crate::oci::read::f();");
    let found: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(found, ["app", "oci"]);
}
