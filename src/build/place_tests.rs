//! Fault injection at every step of moving layouts into place: the N-th rename fails (the
//! run undoes what it did) or the process is killed there (nothing more happens); each
//! `OUT/<service>` must be the old complete layout or the new one, and a failed run must
//! restore every old one.

use super::*;

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Fail,
    Kill,
}

/// The system's renames, except the `at`-th (from 0), which fails or is a kill.
struct Faulty {
    calls: usize,
    at: usize,
    fault: Fault,
    killed: bool,
}

impl Faulty {
    fn step(&mut self) -> io::Result<bool> {
        if self.killed {
            return Ok(false); // the process is gone: nothing happens any more
        }
        let n = self.calls;
        self.calls += 1;
        if n == self.at {
            self.killed = self.fault == Fault::Kill;
            return Err(io::Error::other("injected fault"));
        }
        Ok(true)
    }
}

impl Renames for Faulty {
    fn exchange(&mut self, a: &Path, b: &Path) -> io::Result<()> {
        if self.step()? {
            System.exchange(a, b)?;
        }
        Ok(())
    }
    fn rename_new(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if self.step()? {
            System.rename_new(from, to)?;
        }
        Ok(())
    }
}

const NAMES: [&str; 3] = ["a", "b", "c"];

/// A layout stand-in: a directory with a marker file and a second file.
fn layout(dir: &Path, which: &str) {
    fs::create_dir_all(dir.join("blobs")).unwrap();
    fs::write(dir.join("which"), which).unwrap();
    fs::write(dir.join("blobs").join("x"), which).unwrap();
}

/// What `dir` holds: "old", "new", or "none"; panics on a half layout.
fn state(dir: &Path) -> String {
    if !dir.exists() {
        return "none".into();
    }
    let which = fs::read_to_string(dir.join("which")).unwrap();
    assert_eq!(fs::read_to_string(dir.join("blobs/x")).unwrap(), which);
    which
}

/// OUT with old layouts for a and b (none for c), and a staging directory with new ones.
fn setup() -> (tempfile::TempDir, Staging) {
    let t = tempfile::tempdir().unwrap();
    layout(&t.path().join("a"), "old");
    layout(&t.path().join("b"), "old");
    let staging = Staging::create(t.path()).unwrap();
    for n in NAMES {
        layout(&staging.path().join(n), "new");
    }
    (t, staging)
}

fn run(fault: Fault, at: usize) -> (Result<(), BuildError>, Vec<String>) {
    run_with(&mut Faulty {
        calls: 0,
        at,
        fault,
        killed: false,
    })
}

/// Move the new layouts of [`setup`] into place with `ops`; what happened and each
/// `OUT/<name>`'s state.
fn run_with(ops: &mut impl Renames) -> (Result<(), BuildError>, Vec<String>) {
    let (t, staging) = setup();
    let dests: Vec<PathBuf> = NAMES.iter().map(|n| t.path().join(n)).collect();
    let moves: Vec<(&str, &Path)> = NAMES
        .iter()
        .zip(&dests)
        .map(|(n, d)| (*n, d.as_path()))
        .collect();
    let r = move_into_place(staging.path(), &moves, ops);
    (r, dests.iter().map(|d| state(d)).collect())
}

#[test]
fn a_failed_rename_at_any_step_restores_every_old_layout() {
    for at in 0..3 {
        let (r, states) = run(Fault::Fail, at);
        let e = r
            .expect_err("an injected failure fails the move")
            .to_string();
        assert!(e.contains("injected fault"), "{e}");
        assert_eq!(states, ["old", "old", "none"], "failure at rename {at}");
    }
    // No failure among the moves: every new layout is in place.
    let (r, states) = run(Fault::Fail, 3);
    assert!(r.is_ok());
    assert_eq!(states, ["new", "new", "new"]);
}

#[test]
fn a_kill_at_any_step_leaves_each_layout_old_or_new() {
    for at in 0..4 {
        let (_, states) = run(Fault::Kill, at);
        for (i, s) in states.iter().enumerate() {
            let old = if i < 2 { "old" } else { "none" };
            assert!(s == old || s == "new", "kill at {at}: {states:?}");
        }
        // Services before the kill are new, the others untouched.
        let expected: Vec<&str> = (0..3)
            .map(|i| match (i < at, i < 2) {
                (true, _) => "new",
                (false, true) => "old",
                (false, false) => "none",
            })
            .collect();
        assert_eq!(states, expected, "kill at {at}");
    }
}

#[test]
fn a_failure_while_undoing_is_reported_with_the_layouts_left_new() {
    // Rename 2 (service c) fails, then the first undo (b) fails too.
    struct Twice(Faulty);
    impl Renames for Twice {
        fn exchange(&mut self, a: &Path, b: &Path) -> io::Result<()> {
            if self.0.calls == 3 {
                self.0.calls += 1;
                return Err(io::Error::other("undo refused"));
            }
            self.0.exchange(a, b)
        }
        fn rename_new(&mut self, from: &Path, to: &Path) -> io::Result<()> {
            self.0.rename_new(from, to)
        }
    }
    let (r, states) = run_with(&mut Twice(Faulty {
        calls: 0,
        at: 2,
        fault: Fault::Fail,
        killed: false,
    }));
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("could not be put back") && e.contains("undo refused"),
        "{e}"
    );
    assert_eq!(states, ["old", "new", "none"]);
}

#[test]
fn staging_directories_of_dead_runs_are_removed_and_live_ones_kept() {
    let t = tempfile::tempdir().unwrap();
    let live = Staging::create(t.path()).unwrap();
    let dead = t.path().join(format!("{STAGING_PREFIX}dead"));
    fs::create_dir(&dead).unwrap();
    fs::write(dead.join(LOCK), b"").unwrap();
    layout(&dead.join("a"), "new");
    let young_unlocked = t.path().join(format!("{STAGING_PREFIX}young"));
    fs::create_dir(&young_unlocked).unwrap();
    let other = t.path().join("a");
    layout(&other, "old");
    remove_leftovers(t.path());
    assert!(!dead.exists(), "a dead run's staging directory stays");
    assert!(
        live.path().exists(),
        "a live run's staging directory was removed"
    );
    assert!(
        young_unlocked.exists(),
        "a just-created staging directory was removed"
    );
    assert_eq!(state(&other), "old");
    live.close().unwrap();
}
