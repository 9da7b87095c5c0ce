//! The pinned host key of a machine, kept as `known_hosts` in the machine's
//! directory (OpenSSH format, so `ssh -o UserKnownHostsFile=...` can use it too).

use super::SshError;
use std::path::{Path, PathBuf};

/// File name of the pin inside a machine's directory.
pub const FILE_NAME: &str = "known_hosts";

/// Path of the pin file for the machine directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The host pattern OpenSSH uses: `host` for port 22, `[host]:port` otherwise.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Every `(pattern, key)` line of the machine's pin file (none when it is missing).
fn entries(dir: &Path) -> Result<Vec<(String, String)>, SshError> {
    let p = path(dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SshError::Io {
                path: p.display().to_string(),
                source,
            })
        }
    };
    Ok(parse(&text))
}

/// The `(pattern, key)` lines of a pin file's text; lines without a key are
/// skipped.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (pat, key) = l.trim().split_once(' ')?;
            (!key.trim().is_empty()).then(|| (pat.to_string(), key.trim().to_string()))
        })
        .collect()
}

/// The pinned key (OpenSSH public key text) for `host:port`, if any.
pub fn read(dir: &Path, host: &str, port: u16) -> Result<Option<String>, SshError> {
    let want = host_pattern(host, port);
    Ok(entries(dir)?
        .into_iter()
        .find(|(pat, _)| pat.split(',').any(|h| h == want))
        .map(|(_, key)| key))
}

/// The machine's pin whatever address it was recorded for: `(pattern, key)`.
///
/// The file belongs to one machine, so its key stays pinned when the machine's
/// address or forwarded port changes (local VMs get new ports on restart).
pub fn read_machine(dir: &Path) -> Result<Option<(String, String)>, SshError> {
    Ok(entries(dir)?.into_iter().next())
}

/// Pin `key` for `host:port`, replacing any earlier pin of the file.
pub fn write(dir: &Path, host: &str, port: u16, key: &str) -> Result<(), SshError> {
    let p = path(dir);
    let line = format!("{} {}\n", host_pattern(host, port), key.trim());
    crate::fsutil::write_atomic(&p, line.as_bytes(), 0o600).map_err(|source| SshError::Io {
        path: p.display().to_string(),
        source,
    })
}

/// Forget the pin, so the next connection records the key it is shown.
pub fn forget(dir: &Path) -> Result<(), SshError> {
    let p = path(dir);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SshError::Io {
            path: p.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_round_trip() {
        let d = tempfile::tempdir().expect("tmp");
        assert_eq!(read(d.path(), "h", 22).expect("read"), None);
        write(d.path(), "10.0.0.1", 2222, "ssh-ed25519 AAAAkey").expect("write");
        assert_eq!(
            std::fs::read_to_string(path(d.path())).expect("file"),
            "[10.0.0.1]:2222 ssh-ed25519 AAAAkey\n"
        );
        assert_eq!(
            read(d.path(), "10.0.0.1", 2222).expect("read").as_deref(),
            Some("ssh-ed25519 AAAAkey")
        );
        assert_eq!(read(d.path(), "10.0.0.1", 22).expect("read"), None);
        assert_eq!(
            read_machine(d.path()).expect("read"),
            Some((
                "[10.0.0.1]:2222".to_string(),
                "ssh-ed25519 AAAAkey".to_string()
            ))
        );
        forget(d.path()).expect("forget");
        assert_eq!(read(d.path(), "10.0.0.1", 2222).expect("read"), None);
    }
}
