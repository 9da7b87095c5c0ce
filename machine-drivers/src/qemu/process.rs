//! The QEMU process of a machine: starting it (on free ports, under the
//! chosen accelerator), waiting for the guest's SSH server, telling whether
//! it is alive, and ending it.

use super::accel::{self, kvm_usable, Accel};
use super::cmdline::{self, qopt, Boot};
use super::host::{free_ports, port_free, ssh_banner};
use super::{failed, qmp, source, time_now, QemuDriver};
use machine_core::driver::DriverError;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `auto` waits for a VM without a kernel to boot directly (a cloud
/// image) to boot under KVM before falling back to TCG.
const KVM_PROBE: Duration = Duration::from_secs(60);
/// Tries at finding free forwarded ports.
const PORT_ATTEMPTS: usize = 8;

/// A command that runs `program` with no open file descriptor above 2 but
/// those it opens itself. QEMU outlives us (daemonized): a pipe our caller
/// passed us (a test runner, a CI agent) must not stay open in it, or whoever
/// waits for that pipe's end waits forever. Rust opens its own descriptors
/// close-on-exec; the ones we inherited are closed by a bash wrapper (bash,
/// not sh: dash cannot name descriptors above 9).
pub fn without_inherited_fds(program: &str) -> tokio::process::Command {
    const CLOSE: &str = r#"for fd in /proc/self/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done 2>/dev/null; exec "$@""#;
    let mut c = tokio::process::Command::new("bash");
    c.arg("-c").arg(CLOSE).arg("machine-exec").arg(program);
    c
}

/// The last `lines` lines of a text file (empty when it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a boot did not reach SSH.
#[derive(Debug)]
enum BootFailure {
    Died,
    Timeout,
}

impl QemuDriver {
    /// The QEMU process of this machine, if it is alive.
    pub(super) fn live_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.file("qemu.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // a zombie is not running
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next())
            .unwrap_or(None);
        if state == Some('Z') {
            return None;
        }
        let disk = self.file("disk.qcow2");
        let needle = qopt(&disk);
        let hay = String::from_utf8_lossy(&cmdline);
        hay.contains(&needle).then_some(pid)
    }

    /// A QMP connection to the running machine.
    pub(super) async fn qmp(&self) -> std::io::Result<qmp::Qmp> {
        qmp::Qmp::connect(&self.qmp_path(), Duration::from_secs(10)).await
    }

    /// Start QEMU (daemonized) under `accel`, on the saved ports when they are
    /// free, else on new ones, retrying when a forward cannot be set up.
    async fn launch(&mut self, accel: Accel) -> Result<(), DriverError> {
        let mut last_err = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            let (ssh, engine) =
                if attempt == 0 && port_free(self.base.ssh_port) && port_free(self.own.engine_port)
                {
                    (self.base.ssh_port, self.own.engine_port)
                } else {
                    let p = free_ports(2).map_err(|e| source("pick free ports", e))?;
                    (p[0], p[1])
                };
            let _ = std::fs::remove_file(self.file("qemu.pid"));
            let _ = std::fs::remove_file(self.qmp_path());
            let args = cmdline::args(&self.launch_plan(accel, ssh, engine)?);
            tracing::debug!(machine = %self.base.machine_name, ?args, "starting qemu");
            let out = without_inherited_fds(&self.own.binary)
                .args(&args)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|e| failed("start qemu", format!("{}: {e}", self.own.binary)))?;
            if out.status.success() {
                self.base.ssh_port = ssh;
                self.own.engine_port = engine;
                self.own.accel_used = accel.as_str().into();
                return Ok(());
            }
            last_err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let port_problem = last_err.contains("host forwarding") || last_err.contains("hostfwd");
            if !port_problem {
                break;
            }
            tracing::info!(machine = %self.base.machine_name, "forwarded port taken; trying other ports");
        }
        Err(failed("start qemu", last_err))
    }

    /// Wait until the guest's SSH server answers, QEMU dies, or `limit` passes.
    async fn wait_ssh(&self, limit: Duration) -> Result<(), BootFailure> {
        let deadline = Instant::now() + limit;
        loop {
            if self.live_pid().is_none() {
                return Err(BootFailure::Died);
            }
            if ssh_banner(self.base.ssh_port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BootFailure::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// What `auto` runs under, and whether a boot under KVM must still prove
    /// that KVM works (only for images without a kernel to probe with).
    async fn auto_accel(&self) -> (Accel, bool) {
        let cache = self.cache_dir();
        match accel::remembered(&cache) {
            Some(true) if kvm_usable() => return (Accel::Kvm, false),
            Some(false) => return (Accel::Tcg, false),
            _ => {}
        }
        if !kvm_usable() {
            return (Accel::Tcg, false);
        }
        let Boot::Kernel { kernel, .. } = self.boot_mode() else {
            return (Accel::Kvm, true);
        };
        machine_core::progress::report("Checking whether KVM can boot a guest here");
        match accel::probe_kvm(&self.own.binary, &kernel, &self.file("kvm-probe.log")).await {
            Ok(took) => {
                tracing::debug!(ms = took.as_millis() as u64, "KVM probe booted the kernel");
                accel::remember(&cache, &self.own.binary, true, "", &time_now());
                (Accel::Kvm, false)
            }
            Err(why) => {
                machine_core::progress::report(&format!("KVM is not usable here ({why})"));
                accel::remember(&cache, &self.own.binary, false, &why, &time_now());
                (Accel::Tcg, false)
            }
        }
    }

    /// Boot the VM and wait for SSH, choosing the accelerator.
    pub(super) async fn boot(&mut self) -> Result<(), DriverError> {
        let boot_limit = Duration::from_secs(self.own.boot_timeout.max(10));
        let (first, probing) = match self.own.accel.as_str() {
            "kvm" => (Accel::Kvm, false),
            "tcg" => (Accel::Tcg, false),
            _ => match Accel::parse(&self.own.accel_used) {
                // a machine that booted before keeps its accelerator
                Some(a) if !self.own.accel_used.is_empty() && self.file("serial.log").exists() => {
                    (a, false)
                }
                _ => self.auto_accel().await,
            },
        };
        machine_core::progress::report(&format!("Starting the VM under {}", first.describe()));
        let limit = if probing {
            KVM_PROBE.min(boot_limit)
        } else {
            boot_limit
        };
        let outcome = match self.launch(first).await {
            Ok(()) => self.wait_ssh(limit).await.map_err(|f| format!("{f:?}")),
            Err(e) if probing => Err(machine_core::host::error_chain(&e)),
            Err(e) => return Err(e),
        };
        match outcome {
            Ok(()) => {
                if probing {
                    accel::remember(&self.cache_dir(), &self.own.binary, true, "", &time_now());
                }
                return Ok(());
            }
            Err(why) if probing => {
                tracing::warn!(machine = %self.base.machine_name, failure = %why,
                    "the VM did not boot under KVM within {} s; using TCG", limit.as_secs());
                self.end_process(Duration::from_secs(5)).await;
                accel::remember(
                    &self.cache_dir(),
                    &self.own.binary,
                    false,
                    &why,
                    &time_now(),
                );
                machine_core::progress::report(&format!(
                    "Starting the VM under {}",
                    Accel::Tcg.describe()
                ));
                self.launch(Accel::Tcg).await?;
            }
            Err(_) => {
                let f = if self.live_pid().is_some() {
                    BootFailure::Timeout
                } else {
                    BootFailure::Died
                };
                let e = self.boot_error(f, limit);
                self.end_process(Duration::from_secs(5)).await;
                return Err(e);
            }
        }
        match self.wait_ssh(boot_limit).await {
            Ok(()) => Ok(()),
            Err(f) => {
                let e = self.boot_error(f, boot_limit);
                self.end_process(Duration::from_secs(5)).await;
                Err(e)
            }
        }
    }

    fn boot_error(&self, f: BootFailure, limit: Duration) -> DriverError {
        let what = match f {
            BootFailure::Died => "QEMU exited before the VM's SSH server answered".to_string(),
            BootFailure::Timeout => format!(
                "the VM's SSH server did not answer within {} s (accelerator {}; raise --qemu-boot-timeout on a slow machine)",
                limit.as_secs(),
                self.own.accel_used
            ),
        };
        let log = tail(&self.file("serial.log"), 15);
        failed("boot", format!("{what}; serial console:\n{log}"))
    }

    /// End the QEMU process: QMP `quit`, then SIGKILL; wait until it is gone.
    pub(super) async fn end_process(&self, grace: Duration) {
        let Some(pid) = self.live_pid() else { return };
        if let Ok(Ok(mut q)) = tokio::time::timeout(Duration::from_secs(3), self.qmp()).await {
            let _ = q.execute("quit", None).await;
        }
        if !self.wait_gone(grace).await {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.wait_gone(Duration::from_secs(10)).await;
        }
        self.clean_runtime_files();
    }

    /// Wait until the process is gone; `false` when `limit` passed first.
    pub(super) async fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.live_pid().is_some() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }

    /// Remove the pid file and the QMP socket.
    pub(super) fn clean_runtime_files(&self) {
        let _ = std::fs::remove_file(self.file("qemu.pid"));
        let _ = std::fs::remove_file(self.qmp_path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lived_children_get_no_inherited_descriptors() {
        // an inheritable pipe, as a caller's test runner would leave open
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let out = without_inherited_fds("ls")
            .arg("/proc/self/fd")
            .output()
            .await
            .expect("ls");
        let fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        // 0-2, and the one ls opens to read its own /proc/self/fd
        assert_eq!(fds, ["0", "1", "2", "3"], "{fds:?}");
        drop((r, w));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("log");
        std::fs::write(&f, "a\nb\nc\n").expect("write");
        assert_eq!(tail(&f, 2), "b\nc");
        assert_eq!(tail(&d.path().join("none"), 2), "");
    }
}
