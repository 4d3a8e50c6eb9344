//! `ocibuild images`: a table per service that fits a terminal, and the same as a Markdown
//! step summary in GitHub Actions.

use super::{human_bytes, short};
use crate::app::images::ServiceImages;
use crate::app::reports::Image;

/// Widest a cell is printed (longer ones end in `…`).
const MAX_CELL: usize = 36;

/// `2026-12-01T01:02:03Z` as `2026-12-01`.
fn day(t: Option<&str>) -> String {
    t.map(|t| t.get(..10).unwrap_or(t).to_string())
        .unwrap_or_else(|| "-".into())
}

/// `2026-12-01T01:02:03Z` as `2026-12-01 01:02`.
fn when(t: Option<&str>) -> String {
    t.map(|t| t.get(..16).unwrap_or(t).replace('T', " "))
        .unwrap_or_else(|| "-".into())
}

/// `s` as one safe cell: control characters (a registry's strings could move the cursor or
/// break a line) and `|` (a Markdown cell border) become `?` and `/`; at most `MAX_CELL` wide.
fn clip(s: &str) -> String {
    let clean = s.chars().map(|c| match c {
        c if c.is_control() || reorders(c) => '?',
        '|' => '/',
        c => c,
    });
    let mut c: String = clean.clone().take(MAX_CELL).collect();
    if clean.count() > MAX_CELL {
        c.pop();
        c.push('…');
    }
    c
}

/// Whether `c` reorders or hides text on a terminal (bidirectional overrides and isolates,
/// direction marks, zero-width joiners): a registry's string could make a digest read as
/// another.
fn reorders(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A whole message on one safe line: control characters and `|` replaced, nothing cut.
fn clip_line(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_control() || reorders(c) => ' ',
            '|' => '/',
            c => c,
        })
        .collect()
}

/// The tags that fit in a cell, then how many more (`v1, latest +3`).
fn tags(all: &[String]) -> String {
    const WIDE: usize = 24;
    let mut cell = String::new();
    for (n, t) in all.iter().enumerate() {
        let more = all.len() - n;
        let sep = if cell.is_empty() { "" } else { ", " };
        if !cell.is_empty() && cell.chars().count() + sep.len() + t.chars().count() > WIDE {
            return format!("{cell} +{more}");
        }
        cell.push_str(sep);
        cell.push_str(t);
    }
    cell
}

/// `amd64 6.1M, arm64 6.0M` (sizes in short units; the common `linux/` left out).
fn platforms(i: &Image) -> String {
    let cells: Vec<String> = i
        .platforms
        .iter()
        .map(|p| {
            let name = p.platform.strip_prefix("linux/").unwrap_or(&p.platform);
            match p.size {
                Some(s) => format!("{name} {}", compact(s)),
                None => name.to_string(),
            }
        })
        .collect();
    if cells.is_empty() {
        return "-".into();
    }
    cells.join(", ")
}

/// `n` bytes in at most five characters: `512B`, `2.0K`, `61M`, `1.2G`.
fn compact(n: u64) -> String {
    let h = human_bytes(n);
    let (num, unit) = h.split_once(' ').unwrap_or((h.as_str(), "B"));
    let num = match num.split_once('.') {
        Some((whole, _)) if whole.len() >= 2 => whole.to_string(),
        _ => num.to_string(),
    };
    format!("{num}{}", unit.chars().next().unwrap_or('B'))
}

/// Findings by severity over all platforms (`C1 H2`), `none`, or `-` when nothing was scanned.
fn scan(i: &Image) -> String {
    if i.platforms.iter().all(|p| p.scan_status.is_none()) {
        return "-".into();
    }
    let mut totals: Vec<(String, i64)> = Vec::new();
    for sev in crate::app::reports::SEVERITIES {
        let n: i64 = i
            .platforms
            .iter()
            .filter_map(|p| p.severities.get(sev))
            .sum();
        if n > 0 {
            totals.push((sev.chars().next().unwrap_or('?').to_string(), n));
        }
    }
    if totals.is_empty() {
        return "none".into();
    }
    let cells: Vec<String> = totals.iter().map(|(k, n)| format!("{k}{n}")).collect();
    cells.join(" ")
}

/// `2 sbom, provenance, 3 signature`.
fn attached(i: &Image) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for a in &i.attached {
        match counts.iter_mut().find(|(k, _)| *k == a.kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((a.kind, 1)),
        }
    }
    if counts.is_empty() {
        return "-".into();
    }
    let cells: Vec<String> = counts
        .iter()
        .map(|(k, n)| {
            if *n == 1 {
                k.to_string()
            } else {
                format!("{n} {k}")
            }
        })
        .collect();
    cells.join(", ")
}

fn row(i: &Image) -> [String; 7] {
    [
        clip(&when(i.pushed_at.as_deref())),
        clip(short(&i.digest).trim_start_matches("sha256:")),
        clip(&tags(&i.tags)),
        clip(&platforms(i)),
        scan(i),
        clip(&day(i.last_pull.as_deref())),
        clip(&attached(i)),
    ]
}

const HEAD: [&str; 7] = [
    "PUSHED",
    "DIGEST",
    "TAGS",
    "PLATFORMS",
    "SCAN",
    "PULLED",
    "ATTACHED",
];

/// The text tables.
pub fn images_text(services: &[ServiceImages]) {
    for s in services {
        println!("{} {}", s.service, s.repository);
        if let Some(e) = &s.error {
            println!("  error: {}", clip_line(e));
            continue;
        }
        if s.listing.images.is_empty() {
            println!("  no tagged images");
        }
        let rows: Vec<[String; 7]> = s.listing.images.iter().map(row).collect();
        let mut widths = HEAD.map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        // Scan and pull columns only where a registry told them (ECR).
        let shown: Vec<bool> = (0..7)
            .map(|c| !matches!(c, 4 | 5) || rows.iter().any(|r| r[c] != "-"))
            .collect();
        let line = |cells: [&str; 7]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .zip(&shown)
                .filter(|(_, shown)| **shown)
                .map(|((c, w), _)| format!("{c:<w$}"))
                .collect();
            println!("  {}", padded.join("  ").trim_end());
        };
        if !rows.is_empty() {
            line(HEAD);
        }
        for r in &rows {
            line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
        }
        if s.listing.more > 0 {
            println!("  ... {} older (--limit)", s.listing.more);
        }
        for u in &s.listing.untagged {
            let age = u
                .age_days
                .map_or("age unknown".into(), |d| format!("{d} days old"));
            println!(
                "  untagged {} ({age}, nothing references it)",
                clip(&u.digest)
            );
        }
    }
}

/// The Markdown step summary.
pub fn images_markdown(services: &[ServiceImages]) -> String {
    let mut md = String::from("### ocibuild images\n\n");
    for s in services {
        md.push_str(&format!("#### {} `{}`\n\n", s.service, s.repository));
        if let Some(e) = &s.error {
            md.push_str(&format!("error: {}\n\n", clip_line(e)));
            continue;
        }
        md.push_str("| pushed | digest | tags | platforms | scan | pulled | attached |\n|---|---|---|---|---|---|---|\n");
        for i in &s.listing.images {
            let r = row(i);
            md.push_str(&format!(
                "| {} | `{}` | {} | {} | {} | {} | {} |\n",
                r[0], r[1], r[2], r[3], r[4], r[5], r[6]
            ));
        }
        if !s.listing.untagged.is_empty() {
            md.push_str(&format!(
                "\n{} untagged, unreferenced\n",
                s.listing.untagged.len()
            ));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registrys_strings_cannot_drive_the_terminal_or_break_the_table() {
        assert_eq!(clip("linux/\u{1b}[2Jarm64|x\n"), "linux/?[2Jarm64/x?");
        assert_eq!(clip("amd64\u{202e}46dma"), "amd64?46dma");
        let long = "a".repeat(100);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_CELL);
        assert!(c.ends_with('…'));
        assert_eq!(clip("short"), "short");
        assert_eq!(clip_line("no\nsuch | repo"), "no such / repo");
        let many: Vec<String> = ["v1.2.3", "latest", "abc1234", "20261201-010203", "prod"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(tags(&many), "v1.2.3, latest, abc1234 +2");
        assert_eq!(tags(&many[..1]), "v1.2.3");
        assert_eq!(compact(512), "512B");
        assert_eq!(compact(2048), "2.0K");
        assert_eq!(compact(61 << 20), "61M");
    }
}
