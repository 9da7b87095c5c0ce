//! What the driver asks of the host it runs on: free ports of 127.0.0.1, the
//! memory of the machine, whether an SSH server answers on a forwarded port,
//! and a private directory for sockets.

use std::path::PathBuf;
use std::time::Duration;

/// Pick `n` distinct free TCP ports on 127.0.0.1.
pub(super) fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Whether `port` of 127.0.0.1 can be listened on (0 never is).
pub(super) fn port_free(port: u16) -> bool {
    port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Total memory of this machine in MiB.
pub(super) fn host_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Whether an SSH server answers with its banner on 127.0.0.1:`port`.
pub(super) async fn ssh_banner(port: u16) -> bool {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"SSH-"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Some(true))
    )
}

/// A directory for sockets that only this user can enter:
/// `$XDG_RUNTIME_DIR/machine` when set, else `<tmp>/machine-<uid>`. It is
/// made with mode 0700; an existing one must be a real directory owned by
/// this user with no access for others, else `None` (the caller keeps the
/// long path, which QEMU reports as too long: better than a socket another
/// user can squat).
pub fn private_socket_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = nix::unistd::Uid::effective().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("machine"),
        None => std::env::temp_dir().join(format!("machine-{uid}")),
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0 => Some(dir),
        _ => {
            tracing::warn!(dir = %dir.display(), "not a private directory of this user; not used for sockets");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_free() {
        let p = free_ports(2).expect("ports");
        assert_ne!(p[0], p[1]);
        assert!(p.iter().all(|p| port_free(*p)), "{p:?}");
        assert!(!port_free(0));
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        assert!(!port_free(taken.local_addr().expect("addr").port()));
    }
}
