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
//! `machine-init` unit at boot; the guest makes its own SSH host key. Disk
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

pub mod accel;
pub mod image;
pub mod qmp;
pub mod seed;
pub mod stall;

pub use accel::{kvm_usable, Accel};
use async_trait::async_trait;
use machine_core::config::{BaseDriver, DEFAULT_ENGINE_PORT};
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, OptionKind,
    SshTarget,
};
use machine_core::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Driver name.
pub const NAME: &str = "qemu";
/// Environment variable choosing the accelerator (`auto`, `kvm`, `tcg`).
pub const ACCEL_ENV: &str = "MACHINE_QEMU_ACCEL";
/// Environment variable naming the image cache directory (default `<store>/cache`).
pub const CACHE_ENV: &str = "MACHINE_QEMU_CACHE";

/// How long `auto` waits for a VM without a kernel to boot directly (a cloud
/// image) to boot under KVM before falling back to TCG.
const KVM_PROBE: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the VM is ended.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Tries at finding free forwarded ports.
const PORT_ATTEMPTS: usize = 8;

/// Builds [`QemuDriver`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct QemuFactory;

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Own {
    #[serde(rename = "CPU", default = "one")]
    cpu: u32,
    /// MiB.
    #[serde(rename = "Memory", default)]
    memory: u64,
    /// MiB.
    #[serde(rename = "DiskSize", default)]
    disk_size: u64,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "ImageChecksum", default)]
    image_checksum: String,
    #[serde(rename = "CacheDir", default)]
    cache_dir: String,
    /// Requested: auto, kvm or tcg.
    #[serde(rename = "Accel", default)]
    accel: String,
    /// What the machine runs under (kvm or tcg), once started.
    #[serde(rename = "AccelUsed", default)]
    accel_used: String,
    #[serde(rename = "QemuBinary", default)]
    binary: String,
    /// Seconds.
    #[serde(rename = "BootTimeout", default)]
    boot_timeout: u64,
    /// Host port forwarded to the daemon's port in the guest.
    #[serde(rename = "EnginePort", default)]
    engine_port: u16,
    /// `HOSTDIR:GUESTDIR[:ro]` 9p shares.
    #[serde(rename = "Shares", default)]
    shares: Vec<String>,
    /// Extra `HOSTPORT:GUESTPORT` TCP forwards.
    #[serde(rename = "Forwards", default)]
    forwards: Vec<String>,
    /// `restricted` (the guest reaches nothing but its forwards) or `user` (NAT to the outside).
    #[serde(rename = "Network", default)]
    network: String,
    /// Kernel command line (direct boot).
    #[serde(rename = "Cmdline", default)]
    cmdline: String,
}

/// A VM under QEMU.
#[derive(Debug, Clone)]
pub struct QemuDriver {
    base: BaseDriver,
    own: Own,
    machine_dir: PathBuf,
    store_root: PathBuf,
}

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

impl DriverFactory for QemuFactory {
    fn name(&self) -> &str {
        NAME
    }

    fn options(&self) -> Vec<DriverOption> {
        vec![
            DriverOption::new("qemu-cpu-count", OptionKind::Int, "Number of virtual CPUs")
                .env("QEMU_CPU_COUNT")
                .default_value("1"),
            DriverOption::new("qemu-memory", OptionKind::Int, "Memory of the VM in MiB")
                .env("QEMU_MEMORY")
                .default_value("1024"),
            DriverOption::new("qemu-disk-size", OptionKind::Int, "Disk size of the VM in MiB")
                .env("QEMU_DISK_SIZE")
                .default_value("20000"),
            DriverOption::new(
                "qemu-image",
                OptionKind::String,
                "Image: machine-debian-12 (built from Debian's packages on first use), machine-debian-12-nodocker, \
                 a directory or qcow2/raw file, or an http(s) URL with #sha256=HEX",
            )
            .env("QEMU_IMAGE")
            .default_value(image::IMAGE_NAME),
            DriverOption::new("qemu-image-checksum", OptionKind::String, "SHA-256 of the image given by URL")
                .env("QEMU_IMAGE_CHECKSUM"),
            DriverOption::new("qemu-accel", OptionKind::String, "Accelerator: auto, kvm or tcg")
                .env(ACCEL_ENV)
                .default_value("auto"),
            DriverOption::new("qemu-binary", OptionKind::String, "QEMU program")
                .env("QEMU_BINARY")
                .default_value("qemu-system-x86_64"),
            DriverOption::new("qemu-boot-timeout", OptionKind::Int, "Seconds to wait for the VM's SSH server at boot")
                .env("QEMU_BOOT_TIMEOUT")
                .default_value("300"),
            DriverOption::new("qemu-cache-dir", OptionKind::String, "Image cache directory (default: <store>/cache)")
                .env(CACHE_ENV),
            DriverOption::new(
                "qemu-share",
                OptionKind::StringList,
                "Share a host directory with the VM (9p): HOSTDIR:GUESTDIR[:ro]; repeatable",
            )
            .env("QEMU_SHARE"),
            DriverOption::new(
                "qemu-forward",
                OptionKind::StringList,
                "Forward a TCP port of 127.0.0.1 to the VM: HOSTPORT:GUESTPORT; repeatable",
            )
            .env("QEMU_FORWARD"),
            DriverOption::new(
                "qemu-network",
                OptionKind::String,
                "restricted: the VM reaches nothing but its forwarded ports; user: the VM also reaches \
                 outside networks through QEMU's NAT",
            )
            .env("QEMU_NETWORK")
            .default_value("user"),
        ]
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        o: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let cpu = o.int("qemu-cpu-count").unwrap_or(1);
        if !(1..=64).contains(&cpu) {
            return Err(invalid("qemu-cpu-count", cpu, "expected 1 to 64"));
        }
        let memory = o.int("qemu-memory").unwrap_or(1024);
        if !(256..=1 << 20).contains(&memory) {
            return Err(invalid(
                "qemu-memory",
                memory,
                "expected at least 256 (MiB)",
            ));
        }
        let disk = o.int("qemu-disk-size").unwrap_or(20000);
        if !(1024..=64 << 20).contains(&disk) {
            return Err(invalid(
                "qemu-disk-size",
                disk,
                "expected at least 1024 (MiB)",
            ));
        }
        let accel = o.string("qemu-accel").trim().to_ascii_lowercase();
        if !matches!(accel.as_str(), "auto" | "kvm" | "tcg") {
            return Err(invalid("qemu-accel", accel, "expected auto, kvm or tcg"));
        }
        let boot_timeout = o.int("qemu-boot-timeout").unwrap_or(300);
        if !(10..=86400).contains(&boot_timeout) {
            return Err(invalid(
                "qemu-boot-timeout",
                boot_timeout,
                "expected 10 to 86400 seconds",
            ));
        }
        let image_spec = o.string("qemu-image");
        let checksum = o.string("qemu-image-checksum");
        image::ImageSpec::parse(&image_spec, &checksum)
            .map_err(|e| invalid("qemu-image", &image_spec, &e.to_string()))?;
        let shares = o.list("qemu-share");
        for s in &shares {
            parse_share(s)?;
        }
        let forwards = o.list("qemu-forward");
        for f in &forwards {
            parse_forward(f)?;
        }
        let network = o.string("qemu-network").trim().to_ascii_lowercase();
        if !matches!(network.as_str(), "restricted" | "user") {
            return Err(invalid(
                "qemu-network",
                network,
                "expected restricted or user",
            ));
        }
        let binary = o.string("qemu-binary");
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
            own: Own {
                cpu: u32::try_from(cpu).unwrap_or(1),
                memory: u64::try_from(memory).unwrap_or(1024),
                disk_size: u64::try_from(disk).unwrap_or(20000),
                image: image_spec,
                image_checksum: checksum,
                cache_dir: o.string("qemu-cache-dir"),
                accel,
                accel_used: String::new(),
                binary: if binary.is_empty() {
                    "qemu-system-x86_64".into()
                } else {
                    binary
                },
                boot_timeout: u64::try_from(boot_timeout).unwrap_or(300),
                engine_port: 0,
                shares,
                forwards,
                network,
                cmdline: String::new(),
            },
            machine_dir: ctx.machine_dir.clone(),
            store_root: ctx.store_root.clone(),
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
        }))
    }
}

/// A 9p share: host directory, guest directory, read-only.
fn parse_share(s: &str) -> Result<(PathBuf, String, bool), DriverError> {
    let bad = |reason: &str| invalid("qemu-share", s, reason);
    let mut parts = s.splitn(3, ':');
    let host = parts.next().unwrap_or_default();
    let guest = parts.next().unwrap_or_default();
    let ro = match parts.next() {
        None => false,
        Some("ro") => true,
        Some("rw") => false,
        Some(_) => return Err(bad("the third part must be ro or rw")),
    };
    if host.is_empty() || !guest.starts_with('/') {
        return Err(bad(
            "expected HOSTDIR:GUESTDIR[:ro] with an absolute GUESTDIR",
        ));
    }
    if guest.chars().any(char::is_whitespace) {
        return Err(bad("the guest directory must not contain spaces"));
    }
    Ok((PathBuf::from(host), guest.to_string(), ro))
}

/// An extra forward: host port, guest port.
fn parse_forward(s: &str) -> Result<(u16, u16), DriverError> {
    let bad = || {
        invalid(
            "qemu-forward",
            s,
            "expected HOSTPORT:GUESTPORT (ports 1 to 65535)",
        )
    };
    let (h, g) = s.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p != 0);
    match (port(h), port(g)) {
        (Some(h), Some(g)) => Ok((h, g)),
        _ => Err(bad()),
    }
}

/// A comma-escaped value for QEMU's option syntax.
fn qopt(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// Pick `n` distinct free TCP ports on 127.0.0.1.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

fn port_free(port: u16) -> bool {
    port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
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

/// Total memory of this machine in MiB.
fn host_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Whether an SSH server answers with its banner on 127.0.0.1:`port`.
async fn ssh_banner(port: u16) -> bool {
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

    /// The QMP socket: in the machine's directory, or under /tmp when that path
    /// is too long for a unix socket address.
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

    /// The QEMU process of this machine, if it is alive.
    fn live_pid(&self) -> Option<i32> {
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

    async fn qmp(&self) -> std::io::Result<qmp::Qmp> {
        qmp::Qmp::connect(&self.qmp_path(), Duration::from_secs(10)).await
    }

    fn link_or_copy(&self, from: &Path, name: &str) -> Result<PathBuf, DriverError> {
        let to = self.file(name);
        let _ = std::fs::remove_file(&to);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to).map_err(|e| source(&format!("copy {}", from.display()), e))?;
        }
        Ok(to)
    }

    /// The arguments QEMU runs this machine with.
    fn qemu_args(&self, accel: Accel, ssh_port: u16, engine_port: u16) -> Vec<String> {
        let f = |n: &str| qopt(&self.file(n));
        let mut a: Vec<String> = vec![
            "-name".into(),
            self.base.machine_name.clone(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
        ];
        match accel {
            Accel::Kvm => a.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]),
            Accel::Tcg => a.extend(["-accel".into(), "tcg,thread=multi,tb-size=256".into()]),
        }
        a.extend([
            "-smp".into(),
            self.own.cpu.to_string(),
            "-m".into(),
            self.own.memory.to_string(),
            "-drive".into(),
            format!(
                "file={},if=virtio,format=qcow2,discard=unmap",
                f("disk.qcow2")
            ),
        ]);
        if self.file("vmlinuz").is_file() {
            let cmdline = if self.own.cmdline.is_empty() {
                image::DEFAULT_CMDLINE.to_string()
            } else {
                image::hardened_cmdline(&self.own.cmdline)
            };
            a.extend([
                "-kernel".into(),
                self.file("vmlinuz").to_string_lossy().into_owned(),
                "-initrd".into(),
                self.file("initrd.img").to_string_lossy().into_owned(),
                "-append".into(),
                cmdline,
            ]);
        } else if self.file("seed.iso").is_file() {
            a.extend([
                "-drive".into(),
                format!("file={},if=virtio,format=raw,readonly=on", f("seed.iso")),
            ]);
        }
        let restrict = if self.own.network == "user" {
            "off"
        } else {
            "on"
        };
        let mut nic = format!(
            "user,model=virtio-net-pci,restrict={restrict},hostfwd=tcp:127.0.0.1:{ssh_port}-:22,hostfwd=tcp:127.0.0.1:{engine_port}-:{DEFAULT_ENGINE_PORT}"
        );
        for (h, g) in self
            .own
            .forwards
            .iter()
            .filter_map(|f| parse_forward(f).ok())
        {
            nic.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
        }
        a.extend([
            "-nic".into(),
            nic,
            "-device".into(),
            "virtio-rng-pci".into(),
            "-fw_cfg".into(),
            format!("name=opt/machine/ssh-key,file={}", f("id_rsa.pub")),
            "-fw_cfg".into(),
            format!(
                "name=opt/machine/hostname,string={}",
                self.base.machine_name
            ),
        ]);
        if !self.own.shares.is_empty() {
            a.extend([
                "-fw_cfg".into(),
                format!("name=opt/machine/mounts,file={}", f("mounts")),
            ]);
            for (i, s) in self.own.shares.iter().enumerate() {
                if let Ok((host, _, ro)) = parse_share(s) {
                    a.extend([
                        "-virtfs".into(),
                        format!(
                            "local,path={},mount_tag=machine{i},security_model=none{}",
                            qopt(&host),
                            if ro { ",readonly=on" } else { "" }
                        ),
                    ]);
                }
            }
        }
        a.extend([
            // QEMU's seccomp filter: no obsolete system calls, no changing of
            // scheduling or affinity. (`spawn` and `elevateprivileges` would
            // forbid the fork and setsid of -daemonize.)
            "-sandbox".into(),
            "on,obsolete=deny,resourcecontrol=deny".into(),
            "-serial".into(),
            format!("file:{}", f("serial.log")),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qopt(&self.qmp_path())),
            "-pidfile".into(),
            self.file("qemu.pid").to_string_lossy().into_owned(),
            "-daemonize".into(),
        ]);
        a
    }

    fn write_mounts(&self) -> Result<(), DriverError> {
        if self.own.shares.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (i, s) in self.own.shares.iter().enumerate() {
            let (_, guest, ro) = parse_share(s)?;
            text.push_str(&format!(
                "machine{i} {guest}{}\n",
                if ro { " ro" } else { "" }
            ));
        }
        let p = self.file("mounts");
        machine_core::fsutil::write_atomic(&p, text.as_bytes(), 0o644)
            .map_err(|e| source("write the share list", e))
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
            let args = self.qemu_args(accel, ssh, engine);
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
        let kernel = self.file("vmlinuz");
        if !kernel.is_file() {
            return (Accel::Kvm, true);
        }
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
    async fn boot(&mut self) -> Result<(), DriverError> {
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
    async fn end_process(&self, grace: Duration) {
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

    async fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.live_pid().is_some() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }

    fn clean_runtime_files(&self) {
        let _ = std::fs::remove_file(self.file("qemu.pid"));
        let _ = std::fs::remove_file(self.qmp_path());
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

fn time_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.to_string()
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
        self.boot().await
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

    /// The daemon's port inside the guest (forwarded from [`Driver::url`]'s port).
    fn engine_port(&self) -> u16 {
        DEFAULT_ENGINE_PORT
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
            let (host, _, _) = parse_share(s)?;
            if !host.is_dir() {
                return Err(refuse(format!(
                    "shared directory {} does not exist",
                    host.display()
                )));
            }
        }
        for f in &self.own.forwards {
            let (h, _) = parse_forward(f)?;
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
    use machine_core::driver::OptionValue;

    fn ctx(dir: &Path) -> DriverContext {
        DriverContext {
            machine_name: "vm1".into(),
            store_root: dir.to_path_buf(),
            machine_dir: dir.join("machines/vm1"),
        }
    }

    fn opts(given: &[(&str, &str)]) -> Result<DriverOptions, DriverError> {
        DriverOptions::resolve(
            NAME,
            &QemuFactory.options(),
            given
                .iter()
                .map(|(k, v)| (k.to_string(), OptionValue::String(v.to_string()))),
            &|_| None,
        )
    }

    #[tokio::test]
    async fn defaults_saved_state_and_url() {
        let d = tempfile::tempdir().expect("tmp");
        let o = opts(&[]).expect("opts");
        let drv = QemuFactory.new_driver(&ctx(d.path()), &o).expect("driver");
        let saved = drv.saved_state().expect("saved");
        let keys: Vec<&str> = saved.keys().map(String::as_str).collect();
        assert_eq!(keys[..9], machine_core::config::BASE_DRIVER_FIELDS);
        assert_eq!(saved["CPU"], 1);
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
    fn qemu_command_line() {
        let d = tempfile::tempdir().expect("tmp");
        let o = opts(&[
            ("qemu-cpu-count", "2"),
            ("qemu-share", "/srv/a,b:/mnt/a:ro"),
        ])
        .expect("opts");
        QemuFactory.new_driver(&ctx(d.path()), &o).expect("driver");
        let drv = QemuDriver {
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
                shares: vec!["/srv/a,b:/mnt/a:ro".into()],
                forwards: vec!["8080:80".into()],
                network: String::new(),
                cmdline: String::new(),
            },
            machine_dir: d.path().join("machines/vm1"),
            store_root: d.path().to_path_buf(),
        };
        let a = drv.qemu_args(Accel::Tcg, 41000, 41001).join(" ");
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
        let a = drv.qemu_args(Accel::Kvm, 1, 2).join(" ");
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        // firmware boot with a NoCloud seed; direct boot when a kernel is there
        std::fs::create_dir_all(&drv.machine_dir).expect("dir");
        std::fs::write(drv.file("seed.iso"), b"x").expect("seed");
        let a = drv.qemu_args(Accel::Tcg, 1, 2).join(" ");
        assert!(
            a.contains("seed.iso,if=virtio,format=raw,readonly=on"),
            "{a}"
        );
        std::fs::write(drv.file("vmlinuz"), b"x").expect("kernel");
        let a = drv.qemu_args(Accel::Tcg, 1, 2).join(" ");
        assert!(
            a.contains("-kernel ") && a.contains(&format!("-append {}", image::DEFAULT_CMDLINE)),
            "{a}"
        );
        assert!(!a.contains("seed.iso"), "{a}");
        assert_eq!(
            parse_share("/a:/b").expect("share"),
            (PathBuf::from("/a"), "/b".to_string(), false)
        );
        assert!(parse_share("/a:/b:x").is_err());
    }
}
