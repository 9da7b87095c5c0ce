//! Test hosts for the end-to-end suites, and the one rule for "CI is set".
//!
//! `scripts/testhosts.sh up N` brings up throwaway hosts (network namespaces
//! with their own OpenSSH server) and `eval "$(bash scripts/testhosts.sh env)"`
//! announces them. This crate is the Rust side of the contract between those
//! hosts and the suites that use them; the Python and Node.js suites follow
//! the same contract through `bindings-python/tests/_testhosts.py` and
//! `bindings-node/test/testhosts.mjs`.
//!
//! # Variables (printed by `scripts/testhosts.sh env`)
//!
//! | variable | meaning | when missing |
//! |---|---|---|
//! | `MT_HOSTS` | space-separated addresses; host *i* is the *i*-th (from 0) | no test hosts |
//! | `MT_HOST_NAMES` | the hosts' names (network namespaces), same order | names unknown ([`test_hosts::Host::name`] is `None`) |
//! | `MT_KEY` | the client's private key, accepted by root and the sudo user of every host | an error when `MT_HOSTS` is set |
//! | `MT_STATE` | the state directory (`authorized_keys`, `known_hosts`, per-host files) | an error when `MT_HOSTS` is set |
//! | `MT_SUDO_USER` | a user with passwordless sudo on every host | `mtuser` |
//!
//! The variables are read once per process ([`test_hosts::TestHosts::from_env`]).
//!
//! # Allocation (`test-support/hosts.json`)
//!
//! Test binaries run one after another, the tests inside one binary run
//! concurrently; so that no two suites provision the same host at the same
//! time, each suite owns fixed indices of `MT_HOSTS`. The table lives in one
//! file, `test-support/hosts.json`: `count` (how many hosts `scripts/test.sh`
//! brings up) and, per suite name, the suite's test file and host indices.
//! This crate embeds it (`include_str!`); the Python and Node.js helpers read
//! it by path. `scripts/README.md` shows the same table, and this crate's
//! tests fail when the two differ.
//!
//! # Missing hosts
//!
//! [`test_hosts::for_suite`] returns the suite's hosts when `MT_HOSTS` names
//! every one of them. Otherwise, when [`ci_is_set`], it panics with a message
//! naming the commands to run (`bash scripts/testhosts.sh up 21`, then the
//! `eval`); when CI is not set it prints `SKIPPED: …` to stderr and returns
//! `None`, and the test returns early. An inconsistent environment
//! (`MT_HOSTS` set, `MT_KEY` not) always panics.
//!
//! # "CI is set"
//!
//! `CI` is set when the variable exists and its value, trimmed, is neither
//! empty nor `0` nor `false` (any case). `CI=true`, `CI=1` and `CI=yes` are
//! set; `CI=`, `CI=0` and `CI=false` are not. The Python and Node.js helpers
//! apply the same rule, and [`skip_or_fail`] applies it to other missing
//! prerequisites (an uninstalled program).
//!
//! ```no_run
//! use machine_test_support::test_hosts::{for_suite, Suite};
//!
//! let Some(hosts) = for_suite(Suite::CliE2e) else { return };
//! let ip: &str = hosts.addr(4);
//! let key = hosts.key();
//! # let _ = (ip, key);
//! ```

use std::ffi::OsStr;

pub mod test_hosts;

/// Whether the `CI` variable is set, by the rule in the crate documentation.
pub fn ci_is_set() -> bool {
    ci_value_is_set(std::env::var_os("CI").as_deref())
}

/// The rule behind [`ci_is_set`], for a value of `CI` (`None`: not in the
/// environment).
pub fn ci_value_is_set(value: Option<&OsStr>) -> bool {
    let Some(value) = value else { return false };
    let value = value.to_string_lossy();
    let value = value.trim();
    !(value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false"))
}

/// A prerequisite of a test is missing: panic when CI is set, otherwise print
/// `SKIPPED: {what} ({how})` to stderr so that the caller can return.
///
/// `what` says what is missing, `how` how to get it.
#[track_caller]
pub fn skip_or_fail(what: &str, how: &str) {
    if ci_is_set() {
        panic!("{what}: required when CI is set; {how}");
    }
    eprintln!("SKIPPED: {what} ({how})");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_rule() {
        let set = |v: &str| ci_value_is_set(Some(OsStr::new(v)));
        assert!(!ci_value_is_set(None));
        for v in ["", " ", "0", "false", "FALSE", "False", " false\n"] {
            assert!(!set(v), "{v:?}");
        }
        for v in ["true", "1", "yes", "TRUE", "woodpecker", "00"] {
            assert!(set(v), "{v:?}");
        }
    }
}
