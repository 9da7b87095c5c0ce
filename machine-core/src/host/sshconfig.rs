//! `ssh-config`: OpenSSH `Host` blocks for the store's machines, so that the
//! system's `ssh` (and anything that reads `ssh_config`, such as editors'
//! remote plugins) reaches a machine by its name with its key and its
//! pinned host key.

// Errors carry the machine name (see `host/mod.rs`).
#![allow(clippy::result_large_err)]

use super::{Host, HostError};
use crate::driver::SshTarget;
use crate::ssh::known_hosts;
use crate::store::Store;
use std::fmt::Write as _;
use std::path::Path;

/// One `ssh_config` argument: `%` doubled (OpenSSH expands `%` tokens in
/// host names and file names), double-quoted when it holds blanks. Values
/// with a double quote or a control character cannot be written safely.
fn config_value(what: &str, value: &str) -> Result<String, HostError> {
    if value.is_empty() || value.chars().any(|c| c.is_control() || c == '"') {
        return Err(HostError::InvalidOption {
            flag: what.to_string(),
            value: value.to_string(),
            reason: "cannot be written to an OpenSSH configuration (empty, or a double quote or control character)".into(),
        });
    }
    let v = value.replace('%', "%%");
    Ok(if v.contains([' ', '\t']) {
        format!("\"{v}\"")
    } else {
        v
    })
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// The `Host` block for machine `name` reached at `target`, its pin file in
/// `dir`.
pub fn host_block(name: &str, target: &SshTarget, dir: &Path) -> Result<String, HostError> {
    let ssh = |source| HostError::Ssh {
        name: name.to_string(),
        source,
    };
    crate::ssh::check_user(&target.user).map_err(ssh)?;
    crate::ssh::check_host(&target.host).map_err(ssh)?;
    crate::store::FileStore::validate_name(name)?;
    let mut b = String::new();
    // writes to a String cannot fail
    let _ = writeln!(b, "Host {name}");
    let _ = writeln!(b, "  HostName {}", config_value("HostName", &target.host)?);
    let _ = writeln!(b, "  Port {}", target.port);
    let _ = writeln!(b, "  User {}", target.user);
    if let Some(key) = &target.key_path {
        let _ = writeln!(
            b,
            "  IdentityFile {}",
            config_value("IdentityFile", &absolute(key))?
        );
        let _ = writeln!(b, "  IdentitiesOnly yes");
    }
    let kh = absolute(&known_hosts::path(dir));
    let _ = writeln!(
        b,
        "  UserKnownHostsFile {}",
        config_value("UserKnownHostsFile", &kh)?
    );
    for line in [
        "GlobalKnownHostsFile /dev/null",
        "StrictHostKeyChecking yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "ForwardAgent no",
        "ForwardX11 no",
    ] {
        let _ = writeln!(b, "  {line}");
    }
    Ok(b)
}

impl Host {
    /// The OpenSSH `Host` block of this machine (see [`Store::ssh_config`]).
    pub fn ssh_config(&self) -> Result<String, HostError> {
        let target = self.driver.ssh_target().ok_or_else(|| HostError::NoSsh {
            name: self.name().to_string(),
            driver: self.driver_name().to_string(),
        })?;
        host_block(self.name(), &target, &self.dir())
    }
}

impl Store {
    /// OpenSSH `Host` blocks for the machines `names` (every machine with SSH
    /// access when empty), separated by blank lines: `HostName`, `Port`,
    /// `User`, `IdentityFile` with `IdentitiesOnly yes`, the machine's
    /// pinned `known_hosts` as `UserKnownHostsFile` and `StrictHostKeyChecking yes`.
    /// A named machine without SSH access is an error ([`HostError::NoSsh`]);
    /// listing them all skips such machines.
    pub fn ssh_config(&self, names: &[String]) -> Result<String, HostError> {
        let all = names.is_empty();
        let names = if all { self.names()? } else { names.to_vec() };
        let mut blocks = Vec::new();
        for name in names {
            let host = match self.get(&name) {
                Ok(h) => h,
                Err(e) if all => {
                    tracing::warn!(machine = %name, error = %super::error_chain(&e), "skipped");
                    continue;
                }
                Err(e) => return Err(e),
            };
            match host.ssh_config() {
                Ok(b) => blocks.push(b),
                Err(HostError::NoSsh { .. }) if all => {}
                Err(e) => return Err(e),
            }
        }
        Ok(blocks.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, key: Option<&str>) -> SshTarget {
        SshTarget {
            host: host.into(),
            port: 2222,
            user: "docker".into(),
            key_path: key.map(Into::into),
        }
    }

    #[test]
    fn block_names_key_pin_and_strict_checking() {
        let b = host_block(
            "web1",
            &target("192.0.2.10", Some("/s/machines/web1/id_rsa")),
            Path::new("/s/machines/web1"),
        )
        .expect("block");
        assert_eq!(
            b,
            "Host web1\n  HostName 192.0.2.10\n  Port 2222\n  User docker\n  \
             IdentityFile /s/machines/web1/id_rsa\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile /s/machines/web1/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  PasswordAuthentication no\n  \
             KbdInteractiveAuthentication no\n  ForwardAgent no\n  ForwardX11 no\n"
        );
    }

    #[test]
    fn blanks_are_quoted_percent_doubled_and_quotes_refused() {
        let b = host_block(
            "m",
            &target("fe80::1%eth0", Some("/my keys/id%1")),
            Path::new("/s/m"),
        )
        .expect("block");
        assert!(b.contains("  HostName fe80::1%%eth0\n"), "{b}");
        assert!(b.contains("  IdentityFile \"/my keys/id%%1\"\n"), "{b}");
        let agent = host_block("m", &target("h", None), Path::new("/s/m")).expect("block");
        assert!(!agent.contains("IdentityFile") && !agent.contains("IdentitiesOnly"));
        for bad in ["/a\"b", "/a\nHost evil"] {
            let e = host_block("m", &target("h", Some(bad)), Path::new("/s/m"));
            assert!(matches!(e, Err(HostError::InvalidOption { .. })), "{bad}");
        }
        assert!(host_block("m", &target("h\nProxyCommand x", None), Path::new("/s")).is_err());
        assert!(host_block("a b", &target("h", None), Path::new("/s")).is_err());
    }
}
