//! The `qemu` driver: a local VM under QEMU, one directory per machine.
//!
//! A machine's directory holds its SSH key (`id_rsa`, `id_rsa.pub`), a hard link
//! to the base image it was made from (`base.qcow2`, so rebuilding the image
//! later does not break it), the kernel and initramfs it boots directly, its own
//! copy-on-write disk (`disk.qcow2`, grown to `--qemu-disk-size`; the guest
//! grows its file system at boot), and while it runs: `qemu.pid`, the QMP socket
//! `qmp.sock` and the serial console log `serial.log`.
//!
//! QEMU runs daemonized, so the machine outlives the program that started it.
//! Networking is QEMU's user mode (NAT, so the guest can pull images); SSH and
//! the Docker port are forwarded from free ports on 127.0.0.1
//! (picked again, with retries, whenever a port is taken). The machine's address
//! is therefore `127.0.0.1` and its URL `tcp://127.0.0.1:<forwarded port>`; the
//! server certificate covers 127.0.0.1 and `localhost`.
//!
//! `--qemu-network restricted` adds `restrict=on`: the guest then reaches nothing
//! but its forwarded ports (tests and isolated demos use it).
//!
//! The SSH public key and the host name reach the guest through QEMU's fw_cfg
//! (`opt/machine/ssh-key`, `opt/machine/hostname`), read by the image's
//! `machine-init` unit at boot; the guest makes its own SSH host key. At the
//! first boot of a machine made from the project's image, create also hands
//! over the Docker daemon's TLS material and systemd drop-in
//! (`opt/machine/docker/*`, from a 0700 `boot-docker` directory removed once
//! the VM has booted): the daemon starts once, already secured, and
//! provisioning finds it configured. Disk
//! images without a kernel to boot directly (cloud images) boot through their
//! firmware instead, and their cloud-init reads the key and host name from a
//! NoCloud seed (`seed.iso`, an ISO 9660 volume labelled `cidata`) attached as
//! a second disk.
//!
//! Accelerator: `kvm`, `tcg` (software emulation) or `auto`. `auto` uses KVM only
//! when `/dev/kvm` is usable and a VM actually boots under it: the first time,
//! it waits a bounded time for the SSH banner under KVM and, when QEMU refuses
//! to start or the guest does not answer in time, boots under TCG; the outcome
//! is remembered in `<cache>/accel.json` (`works` or `fails`).
//!
//! State comes from the pid file (is the process alive and ours?) and QMP
//! `query-status`. Stop is an ACPI power-down with a deadline, then QMP `quit`,
//! then SIGKILL; kill is QMP `quit`, then SIGKILL.
//!
//! This module holds the factory and the [`Driver`] implementation; the
//! flags and saved fields are in `options`, what is asked of the host (free
//! ports, memory, the SSH banner, a socket directory) in `host`, QEMU's
//! command line (a plan of plain data and the arguments made from it) in
//! `cmdline`, and the QEMU process (start, boot, supervise, end) in `process`.

pub mod accel;
mod cmdline;
pub mod download;
mod host;
pub mod image;
mod options;
mod process;
pub mod qmp;
pub mod seed;

pub use accel::{kvm_usable, Accel};
pub use host::private_socket_dir;
pub use process::without_inherited_fds;

use async_trait::async_trait;
use cmdline::{Boot, LaunchPlan};
use host::{free_ports, host_memory_mib, port_free};
use machine_core::config::{BaseDriver, DEFAULT_ENGINE_PORT};
use machine_core::driver::{BootEngine, BootTarget};
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, SshTarget,
};
use machine_core::provision;
use machine_core::State;
use options::{parse_forward, parse_share, Own};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Driver name.
pub const NAME: &str = "qemu";
/// Environment variable choosing the accelerator (`auto`, `kvm`, `tcg`).
pub const ACCEL_ENV: &str = "MACHINE_QEMU_ACCEL";
/// Environment variable naming the image cache directory (default `<store>/cache`).
pub const CACHE_ENV: &str = "MACHINE_QEMU_CACHE";

/// How long a graceful stop may take before the VM is ended.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

fn invalid(flag: &str, value: impl ToString, reason: &str) -> DriverError {
    DriverError::InvalidOption {
        driver: NAME.into(),
        flag: flag.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn failed(operation: &str, message: impl ToString) -> DriverError {
    DriverError::Failed {
        driver: NAME.into(),
        operation: operation.into(),
        message: message.to_string(),
    }
}

fn source(operation: &str, e: impl std::error::Error + Send + Sync + 'static) -> DriverError {
    DriverError::Source {
        driver: NAME.into(),
        operation: operation.into(),
        source: Box::new(e),
    }
}

fn time_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.to_string()
}

/// Builds [`QemuDriver`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct QemuFactory;

impl DriverFactory for QemuFactory {
    fn name(&self) -> &str {
        NAME
    }

    fn options(&self) -> Vec<DriverOption> {
        options::flags()
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        o: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let own = Own::from_options(o)?;
        let mut base = ctx.base();
        base.ip_address = "127.0.0.1".into();
        base.ssh_user = "root".into();
        base.ssh_port = 0;
        base.ssh_key_path = ctx
            .machine_dir
            .join("id_rsa")
            .to_string_lossy()
            .into_owned();
        Ok(Box::new(QemuDriver {
            base,
            own,
            machine_dir: ctx.machine_dir.clone(),
            store_root: ctx.store_root.clone(),
            boot_engine: None,
        }))
    }

    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, own) = machine_core::driver::load_driver_object(NAME, saved)?;
        Ok(Box::new(QemuDriver {
            base,
            own,
            machine_dir: ctx.machine_dir.clone(),
            store_root: ctx.store_root.clone(),
            boot_engine: None,
        }))
    }
}

/// A VM under QEMU.
#[derive(Debug, Clone)]
pub struct QemuDriver {
    base: BaseDriver,
    own: Own,
    machine_dir: PathBuf,
    store_root: PathBuf,
    /// The daemon's configuration for the first boot, when create has one.
    boot_engine: Option<BootEngine>,
}

/// The machine's directory entry holding the daemon's files for the first
/// boot (0700, files 0600), removed once the VM has booted.
const DOCKER_BOOT_DIR: &str = "boot-docker";

/// The daemon's files the image's `machine-init` installs at boot: where
/// each goes in the guest, its fw_cfg name and the mode it gets there.
const DOCKER_BOOT_FILES: [(&str, &str, u32); 4] = [
    (provision::engine::REMOTE_CA, "ca.pem", 0o644),
    (provision::engine::REMOTE_SERVER_CERT, "server.pem", 0o644),
    (
        provision::engine::REMOTE_SERVER_KEY,
        "server-key.pem",
        0o600,
    ),
    (provision::engine::SYSTEMD_DROP_IN, "docker.conf", 0o644),
];

/// The machine's directory and what is in it.
impl QemuDriver {
    fn file(&self, name: &str) -> PathBuf {
        self.machine_dir.join(name)
    }

    fn cache_dir(&self) -> PathBuf {
        if self.own.cache_dir.is_empty() {
            self.store_root.join("cache")
        } else {
            PathBuf::from(&self.own.cache_dir)
        }
    }

    /// The QMP socket: in the machine's directory, or where that path is too
    /// long for a unix socket, in a directory of this user's own
    /// ([`private_socket_dir`]) under a name derived from it.
    fn qmp_path(&self) -> PathBuf {
        let p = self.file("qmp.sock");
        if p.as_os_str().len() < 100 {
            return p;
        }
        use sha2::Digest;
        let h = hex::encode(sha2::Sha256::digest(p.as_os_str().as_encoded_bytes()));
        match private_socket_dir() {
            Some(dir) => dir.join(format!("qmp-{}.sock", &h[..16])),
            None => p,
        }
    }

    /// How the machine boots, from what `create` left in its directory: a
    /// kernel to boot directly, else a cloud-init seed, else the disk alone.
    fn boot_mode(&self) -> Boot {
        let kernel = self.file("vmlinuz");
        if kernel.is_file() {
            let cmdline = if self.own.cmdline.is_empty() {
                image::DEFAULT_CMDLINE.to_string()
            } else {
                image::hardened_cmdline(&self.own.cmdline)
            };
            return Boot::Kernel {
                kernel,
                initrd: self.file("initrd.img"),
                cmdline,
            };
        }
        let seed = self.file("seed.iso");
        if seed.is_file() {
            return Boot::SeedIso(seed);
        }
        Boot::Disk
    }

    /// Everything about one start of the machine under `accel`, with SSH and
    /// the daemon's port forwarded from `ssh_port` and `engine_port`.
    fn launch_plan(
        &self,
        accel: Accel,
        ssh_port: u16,
        engine_port: u16,
    ) -> Result<LaunchPlan, DriverError> {
        Ok(LaunchPlan {
            name: self.base.machine_name.clone(),
            accel,
            cpu: self.own.cpu,
            memory_mib: self.own.memory,
            disk: self.file("disk.qcow2"),
            boot: self.boot_mode(),
            restrict_network: self.own.network != "user",
            ssh_port,
            engine_port,
            guest_engine_port: self.guest_engine_port(),
            // a saved forward that does not parse is left out
            forwards: self
                .own
                .forwards
                .iter()
                .filter_map(|f| parse_forward(f).ok())
                .collect(),
            shares: self
                .own
                .shares
                .iter()
                .map(|s| parse_share(s))
                .collect::<Result<_, _>>()?,
            mounts_file: self.file("mounts"),
            ssh_key: self.file("id_rsa.pub"),
            docker_files: DOCKER_BOOT_FILES
                .iter()
                .map(|(_, name, _)| (name.to_string(), self.file(DOCKER_BOOT_DIR).join(name)))
                .filter(|(_, f)| f.is_file())
                .collect(),
            serial_log: self.file("serial.log"),
            qmp_socket: self.qmp_path(),
            pidfile: self.file("qemu.pid"),
        })
    }

    /// The list of shares the guest mounts (`machine<n> GUESTDIR [ro]`).
    fn write_mounts(&self) -> Result<(), DriverError> {
        if self.own.shares.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (i, s) in self.own.shares.iter().enumerate() {
            let share = parse_share(s)?;
            text.push_str(&format!(
                "machine{i} {}{}\n",
                share.guest,
                if share.read_only { " ro" } else { "" }
            ));
        }
        let p = self.file("mounts");
        machine_core::fsutil::write_atomic(&p, text.as_bytes(), 0o644)
            .map_err(|e| source("write the share list", e))
    }

    /// The daemon's port in the guest (2376 for machines that saved none).
    fn guest_engine_port(&self) -> u16 {
        match self.own.guest_engine_port {
            0 => DEFAULT_ENGINE_PORT,
            p => p,
        }
    }

    /// Put the daemon's files for the first boot where the launch plan
    /// hands them to the guest, when the image installs them at boot
    /// (`dockerd`: its daemon's path) and create has them. Files other than
    /// the four the image knows, or with other modes, are not handed over:
    /// provisioning then configures the daemon over SSH as usual.
    fn prepare_docker_boot(&self, dockerd: Option<&str>) -> Result<(), DriverError> {
        let (Some(dockerd), Some(engine)) = (dockerd, &self.boot_engine) else {
            return Ok(());
        };
        let target = BootTarget {
            address: "127.0.0.1".into(),
            port: self.guest_engine_port(),
            dockerd: dockerd.to_string(),
        };
        let files = engine.files(NAME, &target)?;
        // each file's fw_cfg name, when every one is a file the image knows
        let named: Option<Vec<(&str, &[u8])>> = files
            .iter()
            .map(|f| {
                DOCKER_BOOT_FILES
                    .iter()
                    .find(|(path, _, mode)| f.path == *path && f.mode == *mode)
                    .map(|(_, name, _)| (*name, f.contents.as_slice()))
            })
            .collect();
        let Some(named) = named.filter(|n| n.len() == DOCKER_BOOT_FILES.len()) else {
            tracing::debug!(machine = %self.base.machine_name, "daemon files not handed over at boot: not the image's set");
            return Ok(());
        };
        let fail = |e| source("prepare the daemon's files for the first boot", e);
        let dir = self.file(DOCKER_BOOT_DIR);
        machine_core::fsutil::create_private_dir(&dir).map_err(fail)?;
        for (name, contents) in named {
            machine_core::fsutil::write_atomic(&dir.join(name), contents, 0o600).map_err(fail)?;
        }
        Ok(())
    }

    fn link_or_copy(&self, from: &Path, name: &str) -> Result<PathBuf, DriverError> {
        let to = self.file(name);
        let _ = std::fs::remove_file(&to);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to).map_err(|e| source(&format!("copy {}", from.display()), e))?;
        }
        Ok(to)
    }

    async fn qemu_img(&self, args: &[&str]) -> Result<String, DriverError> {
        let out = tokio::process::Command::new("qemu-img")
            .args(args)
            .output()
            .await
            .map_err(|e| failed("run qemu-img", e))?;
        if !out.status.success() {
            return Err(failed(
                "run qemu-img",
                format!(
                    "qemu-img {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[async_trait]
impl Driver for QemuDriver {
    fn driver_name(&self) -> &str {
        NAME
    }

    async fn create(&mut self) -> Result<(), DriverError> {
        std::fs::create_dir_all(&self.machine_dir)
            .map_err(|e| source("create the machine directory", e))?;
        machine_core::ssh::client::generate_key(&self.file("id_rsa"))
            .map_err(|e| source("make the SSH key", e))?;
        let spec = image::ImageSpec::parse(&self.own.image, &self.own.image_checksum)
            .map_err(|e| invalid("qemu-image", &self.own.image, &e.to_string()))?;
        let progress = |step: &str| machine_core::progress::report(step);
        let boot = image::resolve(&self.cache_dir(), &spec, &progress)
            .await
            .map_err(|e| source("prepare the image", e))?;
        let base_name = if boot.format == "qcow2" {
            "base.qcow2"
        } else {
            "base.img"
        };
        self.link_or_copy(&boot.disk, base_name)?;
        if let (Some(kernel), Some(initrd)) = (&boot.kernel, &boot.initrd) {
            self.link_or_copy(kernel, "vmlinuz")?;
            self.link_or_copy(initrd, "initrd.img")?;
            self.own.cmdline = boot.cmdline.clone();
        } else {
            // boots through its firmware; cloud-init reads the key from a NoCloud seed
            let key = std::fs::read_to_string(self.file("id_rsa.pub"))
                .map_err(|e| source("read the SSH key", e))?;
            let instance = format!("{}-{}", self.base.machine_name, time_now());
            seed::write_nocloud(
                &self.file("seed.iso"),
                &instance,
                &self.base.machine_name,
                &key,
            )
            .map_err(|e| source("write the cloud-init seed", e))?;
        }
        let info = self
            .qemu_img(&[
                "info",
                "--output=json",
                &self.file(base_name).to_string_lossy(),
            ])
            .await?;
        let virtual_size = serde_json::from_str::<Value>(&info)
            .ok()
            .and_then(|v| v.get("virtual-size").and_then(Value::as_u64))
            .unwrap_or(0);
        let size = (self.own.disk_size * 1024 * 1024).max(virtual_size);
        let overlay = self.file("disk.qcow2");
        let _ = std::fs::remove_file(&overlay);
        self.qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            &boot.format,
            "-b",
            base_name,
            &overlay.to_string_lossy(),
            &size.to_string(),
        ])
        .await?;
        self.write_mounts()?;
        // the ports of the first boot, known before the daemon is configured;
        // the daemon listens in the guest on the port its URL names
        let ports = free_ports(2).map_err(|e| source("pick free ports", e))?;
        self.base.ssh_port = ports[0];
        self.own.engine_port = ports[1];
        self.own.guest_engine_port = ports[1];
        self.prepare_docker_boot(boot.dockerd.as_deref())?;
        let booted = self.boot().await;
        // the guest has read them (or will never boot from them)
        let _ = std::fs::remove_dir_all(self.file(DOCKER_BOOT_DIR));
        booted
    }

    fn set_boot_engine(&mut self, boot: BootEngine) {
        self.boot_engine = Some(boot);
    }

    async fn remove(&mut self) -> Result<(), DriverError> {
        self.end_process(Duration::from_secs(10)).await;
        for f in [
            "disk.qcow2",
            "base.qcow2",
            "base.img",
            "vmlinuz",
            "initrd.img",
            "serial.log",
            "mounts",
            "seed.iso",
            "qemu.pid",
            "qmp.sock",
        ] {
            let _ = std::fs::remove_file(self.file(f));
        }
        let _ = std::fs::remove_dir_all(self.file(DOCKER_BOOT_DIR));
        let _ = std::fs::remove_file(self.qmp_path());
        Ok(())
    }

    async fn state(&self) -> Result<State, DriverError> {
        if self.live_pid().is_none() {
            return Ok(State::Stopped);
        }
        let status = async { self.qmp().await?.status().await };
        match status.await {
            Ok(s) => Ok(match s.as_str() {
                "running" => State::Running,
                "paused" | "suspended" => State::Paused,
                "shutdown" => State::Stopping,
                "prelaunch" | "inmigrate" | "restore-vm" => State::Starting,
                "save-vm" | "postmigrate" | "finish-migrate" => State::Saved,
                _ => State::Error,
            }),
            Err(e) => {
                // the process may have exited while we asked
                if self.live_pid().is_none() {
                    return Ok(State::Stopped);
                }
                tracing::warn!(machine = %self.base.machine_name, error = %e, "QMP query-status failed");
                Ok(State::Error)
            }
        }
    }

    async fn ip(&self) -> Result<String, DriverError> {
        Ok("127.0.0.1".into())
    }

    fn ssh_target(&self) -> Option<SshTarget> {
        Some(SshTarget {
            host: "127.0.0.1".into(),
            port: self.base.ssh_port,
            user: if self.base.ssh_user.is_empty() {
                "root".into()
            } else {
                self.base.ssh_user.clone()
            },
            key_path: Some(self.file("id_rsa")),
        })
    }

    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        machine_core::driver::save_driver_object(NAME, &self.base, &self.own)
    }

    async fn url(&self) -> Result<String, DriverError> {
        Ok(machine_core::driver::engine_url(
            "127.0.0.1",
            self.own.engine_port,
        ))
    }

    /// The daemon's port inside the guest (forwarded from [`Driver::url`]'s
    /// port, the same number for machines made by this version).
    fn engine_port(&self) -> u16 {
        self.guest_engine_port()
    }

    /// The project's image brings Debian's Docker: upgrade it from Debian's
    /// packages when the guest reaches the outside, else there is nothing to
    /// fetch and the upgrade restarts Docker with the machine's configuration.
    /// Other images follow the engine install URL.
    fn upgrade_install_url(&self) -> Option<String> {
        match image::ImageSpec::parse(&self.own.image, &self.own.image_checksum) {
            Ok(image::ImageSpec::Builtin(image::Variant::Docker)) => Some(
                if self.own.network == "user" {
                    "distro"
                } else {
                    "none"
                }
                .to_string(),
            ),
            _ => None,
        }
    }

    async fn pre_create_check(&self) -> Result<(), DriverError> {
        let refuse = |reason: String| DriverError::PreCreateCheck {
            driver: NAME.into(),
            reason,
        };
        if image::find_program(&self.own.binary).is_none() {
            return Err(refuse(format!(
                "{} (qemu-binary) not found; install QEMU (apt-get install qemu-system-x86 qemu-utils)",
                self.own.binary
            )));
        }
        if image::find_program("qemu-img").is_none() {
            return Err(refuse(
                "qemu-img not found; install it (apt-get install qemu-utils)".into(),
            ));
        }
        if self.own.accel == "kvm" && !kvm_usable() {
            return Err(refuse(
                "--qemu-accel kvm, but /dev/kvm cannot be opened".into(),
            ));
        }
        if let Some(total) = host_memory_mib() {
            if self.own.memory > total {
                return Err(refuse(format!(
                    "--qemu-memory {} MiB is more than this machine has ({total} MiB)",
                    self.own.memory
                )));
            }
        }
        for s in &self.own.shares {
            let host = parse_share(s)?.host;
            if !host.is_dir() {
                return Err(refuse(format!(
                    "shared directory {} does not exist",
                    host.display()
                )));
            }
        }
        for f in &self.own.forwards {
            let h = parse_forward(f)?.host;
            if !port_free(h) {
                return Err(refuse(format!(
                    "port {h} of 127.0.0.1 (qemu-forward {f}) is taken"
                )));
            }
        }
        let spec = image::ImageSpec::parse(&self.own.image, &self.own.image_checksum)
            .map_err(|e| invalid("qemu-image", &self.own.image, &e.to_string()))?;
        if let image::ImageSpec::Builtin(v) = spec {
            let dir = image::image_dir(&self.cache_dir(), v);
            if image::manifest(&dir).is_none() {
                let missing = image::missing_build_tools();
                if !missing.is_empty() {
                    return Err(refuse(format!(
                        "image {} is not in {} and cannot be built: {} missing (apt-get install debootstrap qemu-utils)",
                        v.name(),
                        self.cache_dir().display(),
                        missing.join(", ")
                    )));
                }
                if !nix::unistd::Uid::effective().is_root() {
                    return Err(refuse(format!(
                        "image {} is not in {}; building it needs root (debootstrap)",
                        v.name(),
                        self.cache_dir().display()
                    )));
                }
            }
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<(), DriverError> {
        if self.live_pid().is_some() {
            return Ok(());
        }
        if !self.file("disk.qcow2").is_file() {
            return Err(failed("start", "the machine's disk is missing"));
        }
        self.write_mounts()?;
        self.boot().await
    }

    /// ACPI power-down, then (after two minutes) QMP `quit` and SIGKILL.
    async fn stop(&mut self) -> Result<(), DriverError> {
        if self.live_pid().is_none() {
            self.clean_runtime_files();
            return Ok(());
        }
        match self.qmp().await {
            Ok(mut q) => {
                q.execute("system_powerdown", None)
                    .await
                    .map_err(|e| source("send the ACPI power-down", e))?;
            }
            Err(e) => {
                tracing::warn!(machine = %self.base.machine_name, error = %e, "QMP unavailable; ending the VM")
            }
        }
        if !self.wait_gone(STOP_TIMEOUT).await {
            tracing::warn!(machine = %self.base.machine_name, "the VM did not power off within {} s; ending it", STOP_TIMEOUT.as_secs());
        }
        self.end_process(Duration::from_secs(5)).await;
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), DriverError> {
        self.stop().await?;
        self.start().await
    }

    async fn kill(&mut self) -> Result<(), DriverError> {
        self.end_process(Duration::from_secs(5)).await;
        if self.live_pid().is_some() {
            return Err(failed("kill", "the QEMU process is still running"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path) -> DriverContext {
        crate::test_util::ctx(dir, "vm1")
    }

    fn opts(given: &[(&str, &str)]) -> Result<DriverOptions, DriverError> {
        crate::test_util::opts(&QemuFactory, given)
    }

    #[tokio::test]
    async fn defaults_saved_state_and_url() {
        let d = tempfile::tempdir().expect("tmp");
        let o = opts(&[]).expect("opts");
        let drv = QemuFactory.new_driver(&ctx(d.path()), &o).expect("driver");
        let saved = drv.saved_state().expect("saved");
        let keys: Vec<&str> = saved.keys().map(String::as_str).collect();
        assert_eq!(keys[..9], machine_core::config::BASE_DRIVER_FIELDS);
        assert_eq!(saved["CPU"], 2);
        assert_eq!(saved["Memory"], 1024);
        assert_eq!(saved["DiskSize"], 20000);
        assert_eq!(saved["Accel"], "auto");
        assert_eq!(saved["Image"], image::IMAGE_NAME);
        assert_eq!(saved["IPAddress"], "127.0.0.1");
        let mut saved = saved;
        saved.insert("EnginePort".into(), Value::from(40123));
        saved.insert("SSHPort".into(), Value::from(40122));
        let back = QemuFactory
            .load_driver(&ctx(d.path()), &saved)
            .expect("load");
        assert_eq!(back.url().await.expect("url"), "tcp://127.0.0.1:40123");
        assert_eq!(back.engine_port(), 2376);
        let t = back.ssh_target().expect("ssh");
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("127.0.0.1", 40122, "root")
        );
        assert_eq!(t.key_path, Some(d.path().join("machines/vm1/id_rsa")));
        // never started: stopped, and stop/kill are no-ops
        assert_eq!(back.state().await.expect("state"), State::Stopped);
    }

    #[test]
    fn flags_are_checked() {
        let d = tempfile::tempdir().expect("tmp");
        for (flag, value) in [
            ("qemu-memory", "100"),
            ("qemu-cpu-count", "0"),
            ("qemu-accel", "hvf"),
            ("qemu-disk-size", "10"),
            ("qemu-share", "/x:relative"),
            ("qemu-forward", "80"),
            ("qemu-forward", "0:80"),
            ("qemu-network", "bridge"),
            ("qemu-image", "https://example.invalid/disk.qcow2"),
        ] {
            let o = opts(&[(flag, value)]).expect("opts");
            let e = QemuFactory.new_driver(&ctx(d.path()), &o).expect_err(flag);
            assert!(e.to_string().contains(flag), "{flag}: {e}");
        }
    }

    #[test]
    fn long_socket_paths_go_to_a_private_directory() {
        use std::os::unix::fs::MetadataExt;
        let dir = private_socket_dir().expect("private dir");
        let m = std::fs::symlink_metadata(&dir).expect("exists");
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o077, 0, "{}", dir.display());
        assert_eq!(m.uid(), nix::unistd::Uid::effective().as_raw());
        // a machine directory too deep for a socket path
        let d = tempfile::tempdir().expect("tmp");
        let long = d.path().join("x".repeat(120));
        std::fs::create_dir_all(&long).expect("mkdir");
        let drv = QemuDriver {
            base: BaseDriver::default(),
            own: serde_json::from_str("{}").expect("own"),
            machine_dir: long.clone(),
            store_root: d.path().to_path_buf(),
            boot_engine: None,
        };
        let q = drv.qmp_path();
        assert!(q.starts_with(&dir), "{}", q.display());
        assert!(
            !q.starts_with(std::env::temp_dir().join("machine-qmp")),
            "{}",
            q.display()
        );
    }

    #[test]
    fn the_launch_plan_follows_the_machine_directory() {
        let d = tempfile::tempdir().expect("tmp");
        let o = opts(&[
            ("qemu-cpu-count", "2"),
            ("qemu-share", "/srv/a,b:/mnt/a:ro"),
        ])
        .expect("opts");
        QemuFactory.new_driver(&ctx(d.path()), &o).expect("driver");
        let mut drv = QemuDriver {
            base: BaseDriver {
                machine_name: "vm1".into(),
                ..BaseDriver::default()
            },
            own: Own {
                cpu: 2,
                memory: 1024,
                disk_size: 20000,
                image: String::new(),
                image_checksum: String::new(),
                cache_dir: String::new(),
                accel: "auto".into(),
                accel_used: String::new(),
                binary: "qemu-system-x86_64".into(),
                boot_timeout: 300,
                engine_port: 0,
                guest_engine_port: 0,
                shares: vec!["/srv/a,b:/mnt/a:ro".into()],
                forwards: vec!["8080:80".into()],
                network: String::new(),
                cmdline: String::new(),
            },
            machine_dir: d.path().join("machines/vm1"),
            store_root: d.path().to_path_buf(),
            boot_engine: None,
        };
        let plan = drv.launch_plan(Accel::Tcg, 41000, 41001).expect("plan");
        assert_eq!(plan.boot, Boot::Disk);
        assert!(plan.restrict_network);
        assert_eq!((plan.cpu, plan.memory_mib), (2, 1024));
        assert_eq!((plan.ssh_port, plan.engine_port), (41000, 41001));
        assert_eq!(plan.disk, drv.file("disk.qcow2"));
        assert_eq!(plan.qmp_socket, drv.qmp_path());
        assert_eq!(plan.pidfile, drv.file("qemu.pid"));
        assert_eq!(
            plan.shares,
            [parse_share("/srv/a,b:/mnt/a:ro").expect("share")]
        );
        assert_eq!(plan.forwards, [parse_forward("8080:80").expect("forward")]);
        let a = cmdline::args(&plan).join(" ");
        assert!(a.contains("-accel tcg,thread=multi,tb-size=256"), "{a}");
        assert!(a.contains("restrict=on,hostfwd=tcp:127.0.0.1:41000-:22,hostfwd=tcp:127.0.0.1:41001-:2376,hostfwd=tcp:127.0.0.1:8080-:80 "), "{a}");
        assert!(a.contains("-smp 2 -m 1024"), "{a}");
        assert!(
            a.contains("path=/srv/a,,b,mount_tag=machine0,security_model=none,readonly=on"),
            "{a}"
        );
        assert!(a.contains("name=opt/machine/hostname,string=vm1"), "{a}");
        assert!(
            a.contains("-sandbox on,obsolete=deny,resourcecontrol=deny"),
            "{a}"
        );
        assert!(a.ends_with("-daemonize"), "{a}");
        assert!(!a.contains("-kernel") && !a.contains("seed.iso"), "{a}");
        let plan = drv.launch_plan(Accel::Kvm, 1, 2).expect("plan");
        let a = cmdline::args(&plan).join(" ");
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        // a machine made by this version: the daemon's port in the guest is
        // the URL's port
        drv.own.guest_engine_port = 41001;
        assert_eq!(drv.engine_port(), 41001);
        let a = cmdline::args(&drv.launch_plan(Accel::Tcg, 41000, 41001).expect("plan")).join(" ");
        assert!(a.contains("hostfwd=tcp:127.0.0.1:41001-:41001"), "{a}");
        drv.own.guest_engine_port = 0;
        // upgrade: nothing to fetch for the project's image without a network
        assert_eq!(drv.upgrade_install_url().as_deref(), Some("none"));
        // the user network
        drv.own.network = "user".into();
        assert_eq!(drv.upgrade_install_url().as_deref(), Some("distro"));
        let mine = std::mem::replace(&mut drv.own.image, "/srv/images/cloud.qcow2".into());
        assert_eq!(
            drv.upgrade_install_url(),
            None,
            "other images: the engine install URL"
        );
        drv.own.image = mine;
        assert!(
            !drv.launch_plan(Accel::Tcg, 1, 2)
                .expect("plan")
                .restrict_network
        );
        // firmware boot with a NoCloud seed; direct boot when a kernel is there
        std::fs::create_dir_all(&drv.machine_dir).expect("dir");
        std::fs::write(drv.file("seed.iso"), b"x").expect("seed");
        let plan = drv.launch_plan(Accel::Tcg, 1, 2).expect("plan");
        assert_eq!(plan.boot, Boot::SeedIso(drv.file("seed.iso")));
        let a = cmdline::args(&plan).join(" ");
        assert!(
            a.contains("seed.iso,if=virtio,format=raw,readonly=on"),
            "{a}"
        );
        std::fs::write(drv.file("vmlinuz"), b"x").expect("kernel");
        let plan = drv.launch_plan(Accel::Tcg, 1, 2).expect("plan");
        assert_eq!(
            plan.boot,
            Boot::Kernel {
                kernel: drv.file("vmlinuz"),
                initrd: drv.file("initrd.img"),
                cmdline: image::DEFAULT_CMDLINE.into(),
            }
        );
        let a = cmdline::args(&plan).join(" ");
        assert!(
            a.contains("-kernel ") && a.contains(&format!("-append {}", image::DEFAULT_CMDLINE)),
            "{a}"
        );
        assert!(!a.contains("seed.iso"), "{a}");
        // a saved command line loses the words that switch defences off
        drv.own.cmdline = "root=/dev/vda rw mitigations=off".into();
        let Boot::Kernel { cmdline, .. } = drv.launch_plan(Accel::Tcg, 1, 2).expect("plan").boot
        else {
            panic!("direct boot expected");
        };
        assert_eq!(cmdline, "root=/dev/vda rw");
        // a share the saved state got wrong is refused, as write_mounts does
        drv.own.shares = vec!["/a:relative".into()];
        let e = drv.launch_plan(Accel::Tcg, 1, 2).expect_err("bad share");
        assert!(e.to_string().contains("qemu-share"), "{e}");
        assert_eq!(
            parse_share("/a:/b").expect("share"),
            options::Share {
                host: PathBuf::from("/a"),
                guest: "/b".to_string(),
                read_only: false
            }
        );
        assert!(parse_share("/a:/b:x").is_err());
    }

    /// The daemon's files reach the launch plan only when the image takes
    /// them (a dockerd path) and create has them, in a 0700 directory of
    /// 0600 files; a set the image does not know is not handed over.
    #[test]
    fn daemon_files_for_the_first_boot() {
        use machine_core::driver::{BootEngine, BootFile};
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        let mut drv = QemuDriver {
            base: BaseDriver::default(),
            own: serde_json::from_str("{}").expect("own"),
            machine_dir: d.path().join("machines/vm1"),
            store_root: d.path().to_path_buf(),
            boot_engine: None,
        };
        std::fs::create_dir_all(&drv.machine_dir).expect("dir");
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = asked.clone();
        let engine = BootEngine::new(move |t| {
            seen.lock().expect("lock").push(t.clone());
            Ok(DOCKER_BOOT_FILES
                .iter()
                .map(|(path, _, mode)| BootFile {
                    path: path.to_string(),
                    contents: format!("contents of {path}").into_bytes(),
                    mode: *mode,
                })
                .collect())
        });
        drv.set_boot_engine(engine);
        // an image that does not take them: nothing asked, nothing handed over
        drv.prepare_docker_boot(None).expect("prepare");
        assert!(asked.lock().expect("lock").is_empty());
        assert!(drv
            .launch_plan(Accel::Tcg, 1, 2)
            .expect("plan")
            .docker_files
            .is_empty());

        drv.prepare_docker_boot(Some("/usr/sbin/dockerd"))
            .expect("prepare");
        assert_eq!(
            asked.lock().expect("lock").as_slice(),
            [BootTarget {
                address: "127.0.0.1".into(),
                port: 2376,
                dockerd: "/usr/sbin/dockerd".into()
            }]
        );
        let dir = drv.file(DOCKER_BOOT_DIR);
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("server-key.pem")), 0o600);
        assert_eq!(
            std::fs::read_to_string(dir.join("docker.conf")).expect("drop-in"),
            format!("contents of {}", provision::engine::SYSTEMD_DROP_IN)
        );
        let a = cmdline::args(&drv.launch_plan(Accel::Tcg, 1, 2).expect("plan")).join(" ");
        for name in ["ca.pem", "server.pem", "server-key.pem", "docker.conf"] {
            let want = format!(
                "-fw_cfg name=opt/machine/docker/{name},file={}",
                dir.join(name).display()
            );
            assert!(a.contains(&want), "{a}");
        }

        // a set the image does not know (another mode here): not handed over
        std::fs::remove_dir_all(&dir).expect("rm");
        let mut other = drv.clone();
        other.boot_engine = Some(BootEngine::new(|_| {
            Ok(vec![BootFile {
                path: provision::engine::REMOTE_SERVER_KEY.into(),
                contents: b"k".to_vec(),
                mode: 0o644,
            }])
        }));
        other
            .prepare_docker_boot(Some("/usr/sbin/dockerd"))
            .expect("prepare");
        assert!(!dir.exists());
    }
}
