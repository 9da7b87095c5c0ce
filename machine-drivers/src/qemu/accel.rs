//! Choosing the accelerator: KVM when it can boot a guest here, else TCG.
//!
//! `/dev/kvm` being openable is not enough: on some hosts (nested
//! virtualization with a CPU model the outer hypervisor cannot back) QEMU
//! aborts or the guest hangs under KVM. The probe boots the machine's own
//! kernel under KVM with no root file system and `panic=-1`: a kernel that
//! reaches its "cannot mount root" panic ran its whole early boot under KVM,
//! and QEMU then exits by itself (`-no-reboot`). That takes well under a second
//! where KVM works and ends at [`PROBE_TIMEOUT`] at the latest where it does
//! not. The answer is remembered in the image cache (`accel.json`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest the KVM probe runs.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// The accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
    pub fn parse(s: &str) -> Option<Accel> {
        match s {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }
    /// How the accelerator is named to a person.
    pub fn describe(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM (hardware virtualization)",
            Accel::Tcg => "TCG (software emulation)",
        }
    }
}

/// Whether `/dev/kvm` can be opened for reading and writing.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The QEMU arguments of the probe: `kernel` under KVM, console on `serial`.
pub fn probe_args(kernel: &Path, serial: &Path) -> Vec<String> {
    [
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-m",
        "256",
        "-no-reboot",
        "-kernel",
    ]
    .into_iter()
    .map(String::from)
    .chain([
        kernel.to_string_lossy().into_owned(),
        "-append".into(),
        "console=ttyS0 panic=-1 root=/dev/machine-probe-none loglevel=4".into(),
        "-serial".into(),
        format!("file:{}", serial.to_string_lossy()),
    ])
    .collect()
}

/// Whether a probe's serial console shows a kernel that ran to its end.
pub fn probe_succeeded(console: &str) -> bool {
    console.contains("Kernel panic") || console.contains("VFS: Unable to mount root")
}

/// Boot `kernel` under KVM with `qemu` and tell whether it ran, within
/// [`PROBE_TIMEOUT`]; the console goes to `serial` (removed afterwards). `Err`
/// says why KVM is not used.
pub async fn probe_kvm(qemu: &str, kernel: &Path, serial: &Path) -> Result<Duration, String> {
    if !kvm_usable() {
        return Err("/dev/kvm cannot be opened".into());
    }
    let _ = std::fs::remove_file(serial);
    let result = run_probe(qemu, kernel, serial).await;
    let _ = std::fs::remove_file(serial);
    result
}

async fn run_probe(qemu: &str, kernel: &Path, serial: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(qemu)
        .args(probe_args(kernel, serial))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {qemu}: {e}"))?;
    let stderr = child.stderr.take();
    let waited = tokio::time::timeout(PROBE_TIMEOUT, child.wait()).await;
    let console = std::fs::read_to_string(serial).unwrap_or_default();
    match waited {
        Ok(Ok(_)) if probe_succeeded(&console) => Ok(started.elapsed()),
        Ok(Ok(status)) => {
            let mut err = String::new();
            if let Some(mut e) = stderr {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut err).await;
            }
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            Err(format!(
                "QEMU under KVM ended ({status}) before the kernel booted: {last}"
            ))
        }
        Ok(Err(e)) => Err(format!("waiting for QEMU: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "the kernel did not boot under KVM within {} s",
                PROBE_TIMEOUT.as_secs()
            ))
        }
    }
}

/// Where the answer is remembered.
pub fn memo_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("accel.json")
}

/// The remembered answer: `Some(true)` when KVM works, `Some(false)` when it
/// does not, `None` when unknown.
pub fn remembered(cache_dir: &Path) -> Option<bool> {
    let memo: Value = serde_json::from_slice(&std::fs::read(memo_path(cache_dir)).ok()?).ok()?;
    match memo.get("kvm").and_then(Value::as_str)? {
        "works" => Some(true),
        "fails" => Some(false),
        _ => None,
    }
}

/// Remember whether KVM works (`reason`: why not, when it does not).
pub fn remember(cache_dir: &Path, qemu: &str, works: bool, reason: &str, checked: &str) {
    let p = memo_path(cache_dir);
    let text = serde_json::json!({
        "kvm": if works { "works" } else { "fails" },
        "reason": reason,
        "qemu": qemu,
        "checked": checked,
    })
    .to_string();
    let _ = std::fs::create_dir_all(cache_dir);
    if let Err(e) = machine_core::fsutil::write_atomic(&p, text.as_bytes(), 0o644) {
        tracing::warn!(path = %p.display(), error = %e, "cannot remember the accelerator check");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_boots_the_kernel_under_kvm_without_rebooting() {
        let a = probe_args(Path::new("/k/vmlinuz"), Path::new("/t/c.log")).join(" ");
        assert!(a.starts_with("-accel kvm -cpu host"), "{a}");
        assert!(a.contains("-no-reboot"), "{a}");
        assert!(a.contains("-kernel /k/vmlinuz"), "{a}");
        assert!(a.contains("panic=-1"), "{a}");
        assert!(a.ends_with("-serial file:/t/c.log"), "{a}");
    }

    #[test]
    fn only_a_kernel_that_ran_to_its_panic_counts() {
        assert!(probe_succeeded(
            "[    0.9] VFS: Unable to mount root fs on unknown-block(0,0)\n[    0.9] Kernel panic - not syncing"
        ));
        assert!(!probe_succeeded(""));
        assert!(!probe_succeeded(
            "SeaBIOS (version 1.16)\nBooting from ROM..."
        ));
    }

    #[test]
    fn the_answer_is_remembered() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(remembered(d.path()), None);
        remember(d.path(), "qemu-system-x86_64", false, "aborted", "1");
        assert_eq!(remembered(d.path()), Some(false));
        remember(d.path(), "qemu-system-x86_64", true, "", "2");
        assert_eq!(remembered(d.path()), Some(true));
    }
}
