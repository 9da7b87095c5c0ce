//! The allocation file against everything that repeats or uses it: the table
//! in scripts/README.md, the host count of scripts/test.sh, the suites' test
//! files and the Python and Node.js helpers.

use machine_test_support::test_hosts::{allocation, Suite, SuiteEntry, ALLOCATION_PATH};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of the table in scripts/README.md whose header is
/// `| suite | test file | hosts | use |`: suite → (test file, indices).
fn readme_table() -> BTreeMap<String, SuiteEntry> {
    let readme = read("scripts/README.md");
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.starts_with("| suite | test file | hosts |"));
    assert!(
        lines.next().is_some(),
        "scripts/README.md has no table `| suite | test file | hosts | use |`"
    );
    let mut rows = BTreeMap::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert!(cells.len() >= 3, "scripts/README.md: {line}");
        let unquote = |c: &str| {
            c.strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .unwrap_or_else(|| {
                    panic!("scripts/README.md: `{c}` should be in backticks: {line}")
                })
                .to_string()
        };
        let hosts = cells[2]
            .split(',')
            .map(|i| {
                i.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("scripts/README.md: bad index {i:?}: {line}"))
            })
            .collect();
        let prev = rows.insert(
            unquote(cells[0]),
            SuiteEntry {
                test: unquote(cells[1]),
                hosts,
            },
        );
        assert!(prev.is_none(), "scripts/README.md: suite twice: {line}");
    }
    rows
}

#[test]
fn readme_table_matches_the_allocation_file() {
    assert_eq!(
        readme_table(),
        allocation().suites,
        "scripts/README.md and {ALLOCATION_PATH} disagree"
    );
}

#[test]
fn test_sh_brings_up_count_hosts() {
    let want = format!("scripts/testhosts.sh up {}", allocation().count);
    assert!(
        read("scripts/test.sh").contains(&want),
        "scripts/test.sh should run `{want}` ({ALLOCATION_PATH} says count {})",
        allocation().count
    );
}

#[test]
fn every_rust_suite_is_allocated_and_every_rust_entry_is_a_suite() {
    let names: Vec<&str> = Suite::ALL.iter().map(|s| s.name()).collect();
    for s in Suite::ALL {
        assert!(s.entry().test.ends_with(".rs"), "{s}");
    }
    for (name, entry) in &allocation().suites {
        if entry.test.ends_with(".rs") {
            assert!(
                names.contains(&name.as_str()),
                "{ALLOCATION_PATH}: {name} has a Rust test file but no test_hosts::Suite"
            );
        }
    }
}

/// Each test file exists and asks for its own suite; the helpers read the
/// allocation file.
#[test]
fn test_files_ask_for_their_suite() {
    let variant = |name: &str| {
        Suite::ALL
            .iter()
            .find(|s| s.name() == name)
            .map(|s| format!("Suite::{s:?}"))
    };
    for (name, entry) in &allocation().suites {
        let text = read(&entry.test);
        let wanted = match variant(name) {
            Some(v) => vec![v],
            None => vec![format!("'{name}'"), format!("\"{name}\"")],
        };
        assert!(
            wanted.iter().any(|w| text.contains(w)),
            "{} should ask for suite {name} (one of {wanted:?})",
            entry.test
        );
    }
    for helper in [
        "bindings-python/tests/_testhosts.py",
        "bindings-node/test/testhosts.mjs",
    ] {
        let text = read(helper);
        assert!(
            text.contains("hosts.json"),
            "{helper} should read {ALLOCATION_PATH}"
        );
    }
}
