//! Running commands on a machine.
//!
//! [`CommandRunner`] is what provisioning executes its steps through: run a
//! command, write a file with a mode. The SSH client implements it over one
//! connection; tests use a scripted runner. A [`Connector`] opens the
//! connection a machine's operations run over.

pub mod client;
pub mod connector;
pub mod known_hosts;

pub use client::{HostKeyCheck, SshClient, SshConfig};
pub use connector::{Connector, RusshConnector, Session};

use async_trait::async_trait;

/// Errors of the SSH layer and of command runners.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// Could not connect (after the configured retries).
    #[error("cannot connect to {host}:{port} over SSH after {attempts} attempt(s): {reason}")]
    Connect {
        host: String,
        port: u16,
        attempts: u32,
        reason: String,
    },
    /// The server refused every key offered.
    #[error("SSH authentication as {user} to {host} failed: {reason}")]
    Auth {
        user: String,
        host: String,
        reason: String,
    },
    /// The server presented a host key other than the pinned one.
    #[error("host key of {host} changed: expected {expected}, got {presented}")]
    HostKeyMismatch {
        host: String,
        expected: String,
        presented: String,
    },
    /// A private key file could not be read or parsed.
    #[error("cannot load SSH key {path}: {reason}")]
    Key { path: String, reason: String },
    /// `sudo -n` asked for a password.
    #[error("user {user} on {host} needs a password for sudo; passwordless sudo is required")]
    SudoPassword { user: String, host: String },
    /// The remote command could not be run or the session broke.
    #[error("SSH session to {host} failed while running {command:?}: {reason}")]
    Session {
        host: String,
        command: String,
        reason: String,
    },
    /// A file transfer failed.
    #[error("file transfer {path} on {host} failed: {reason}")]
    Transfer {
        host: String,
        path: String,
        reason: String,
    },
    /// An operation did not finish within its deadline.
    #[error("{what} on {host} timed out after {seconds} s")]
    Timeout {
        host: String,
        what: String,
        seconds: u64,
    },
    /// An SSH user or host that cannot be used safely (it reaches command
    /// lines of ssh, scp and sshfs, and remote shells).
    #[error("invalid SSH {what} {value:?}: {reason}")]
    BadTarget {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// Local I/O.
    #[error("local file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The result of a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_status: u32,
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_status == 0
    }
    /// Standard output as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Standard error as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs commands and writes files on one machine.
#[async_trait]
pub trait CommandRunner: Send + Sync {
    /// Run `command` with `sh -c` semantics; returns its output whatever the exit status.
    async fn run(&self, command: &str) -> Result<Output, SshError>;
    /// Write `contents` to `path` with `mode`, replacing any existing file.
    async fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), SshError>;
}

/// Check an SSH user name: 1-64 letters, digits, `_`, `.` or `-`, not
/// starting with `-` or `.` (so it can never be read as an option).
pub fn check_user(user: &str) -> Result<(), SshError> {
    let bad = |reason: &str| SshError::BadTarget {
        what: "user",
        value: user.to_string(),
        reason: reason.to_string(),
    };
    if user.is_empty() || user.len() > 64 {
        return Err(bad("expected 1 to 64 characters"));
    }
    if user.starts_with(['-', '.']) {
        return Err(bad("must not start with '-' or '.'"));
    }
    if !user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(bad("only letters, digits, '_', '.' and '-' are allowed"));
    }
    Ok(())
}

/// Check an SSH host: a host name, an IPv4 address or an IPv6 address
/// (optionally with a `%zone`), at most 253 characters, never starting with `-`.
pub fn check_host(host: &str) -> Result<(), SshError> {
    let bad = |reason: &str| SshError::BadTarget {
        what: "host",
        value: host.to_string(),
        reason: reason.to_string(),
    };
    if host.is_empty() || host.len() > 253 {
        return Err(bad("expected 1 to 253 characters"));
    }
    if host.starts_with('-') {
        return Err(bad("must not start with '-'"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_' | '%'))
    {
        return Err(bad(
            "expected a host name or an IP address (letters, digits, '.', '-', ':', '_', '%')",
        ));
    }
    Ok(())
}

/// Quote `s` for a POSIX shell (single quotes, `'` as `'\''`). Plain words are left bare.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b':' | b'=' | b',' | b'@' | b'+'
                )
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_hosts_that_could_be_options_or_code_are_refused() {
        for u in ["root", "mt-user", "a.b_c", "user1"] {
            assert!(check_user(u).is_ok(), "{u}");
        }
        for u in [
            "",
            "-oProxyCommand=touch /pwned-sshuser #",
            "-l",
            ".x",
            "a b",
            "a;b",
            "a@b",
            "a\nb",
        ] {
            assert!(check_user(u).is_err(), "{u:?}");
        }
        assert!(check_user(&"u".repeat(65)).is_err());
        for h in [
            "10.0.0.1",
            "host-1.example",
            "::1",
            "fe80::1%eth0",
            "127.0.0.1",
        ] {
            assert!(check_host(h).is_ok(), "{h}");
        }
        for h in ["", "-oProxyCommand=x", "a b", "h;id", "h/x", "h\n", "[::1]"] {
            assert!(check_host(h).is_err(), "{h:?}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1.2/x=y"), "abc-1.2/x=y");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $x"), "'it'\\''s $x'");
    }
}
