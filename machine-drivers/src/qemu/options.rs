//! The driver's flags, what they are checked against, and the fields a
//! machine saves (`Own`): shares and forwards are read here, once, into
//! [`Share`] and [`Forward`].

use super::{image, invalid, ACCEL_ENV, CACHE_ENV};
use machine_core::driver::{DriverError, DriverOption, DriverOptions, OptionKind};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The QEMU program used when `--qemu-binary` is empty.
pub(super) const DEFAULT_BINARY: &str = "qemu-system-x86_64";

/// The driver's flags.
pub(super) fn flags() -> Vec<DriverOption> {
    vec![
        DriverOption::new("qemu-cpu-count", OptionKind::Int, "Number of virtual CPUs")
            .env("QEMU_CPU_COUNT")
            .default_value("2"),
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
            .default_value(DEFAULT_BINARY),
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

fn one() -> u32 {
    1
}

/// The driver's own fields of a saved machine (beside the base driver's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Own {
    #[serde(rename = "CPU", default = "one")]
    pub cpu: u32,
    /// MiB.
    #[serde(rename = "Memory", default)]
    pub memory: u64,
    /// MiB.
    #[serde(rename = "DiskSize", default)]
    pub disk_size: u64,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "ImageChecksum", default)]
    pub image_checksum: String,
    #[serde(rename = "CacheDir", default)]
    pub cache_dir: String,
    /// Requested: auto, kvm or tcg.
    #[serde(rename = "Accel", default)]
    pub accel: String,
    /// What the machine runs under (kvm or tcg), once started.
    #[serde(rename = "AccelUsed", default)]
    pub accel_used: String,
    #[serde(rename = "QemuBinary", default)]
    pub binary: String,
    /// Seconds.
    #[serde(rename = "BootTimeout", default)]
    pub boot_timeout: u64,
    /// Host port forwarded to the daemon's port in the guest.
    #[serde(rename = "EnginePort", default)]
    pub engine_port: u16,
    /// The daemon's port in the guest: the host port chosen at create, so
    /// that the URL's port is the one the daemon is configured with (tools
    /// that configure the daemon from the URL, as docker-machine does, then
    /// agree with the forward). 0 for machines made before: 2376.
    #[serde(rename = "GuestEnginePort", default)]
    pub guest_engine_port: u16,
    /// `HOSTDIR:GUESTDIR[:ro]` 9p shares.
    #[serde(rename = "Shares", default)]
    pub shares: Vec<String>,
    /// Extra `HOSTPORT:GUESTPORT` TCP forwards.
    #[serde(rename = "Forwards", default)]
    pub forwards: Vec<String>,
    /// `restricted` (the guest reaches nothing but its forwards) or `user` (NAT to the outside).
    #[serde(rename = "Network", default)]
    pub network: String,
    /// Kernel command line (direct boot).
    #[serde(rename = "Cmdline", default)]
    pub cmdline: String,
}

impl Own {
    /// The fields of a new machine, from checked flags.
    pub fn from_options(o: &DriverOptions) -> Result<Own, DriverError> {
        let cpu = o.int("qemu-cpu-count").unwrap_or(2);
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
        Ok(Own {
            cpu: u32::try_from(cpu).unwrap_or(1),
            memory: u64::try_from(memory).unwrap_or(1024),
            disk_size: u64::try_from(disk).unwrap_or(20000),
            image: image_spec,
            image_checksum: checksum,
            cache_dir: o.string("qemu-cache-dir"),
            accel,
            accel_used: String::new(),
            binary: if binary.is_empty() {
                DEFAULT_BINARY.into()
            } else {
                binary
            },
            boot_timeout: u64::try_from(boot_timeout).unwrap_or(300),
            engine_port: 0,
            guest_engine_port: 0,
            shares,
            forwards,
            network,
            cmdline: String::new(),
        })
    }
}

/// A 9p share of a host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Share {
    pub host: PathBuf,
    /// Where the guest mounts it (absolute, without spaces).
    pub guest: String,
    pub read_only: bool,
}

/// A TCP port of 127.0.0.1 forwarded to a port of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Forward {
    pub host: u16,
    pub guest: u16,
}

/// A 9p share: `HOSTDIR:GUESTDIR[:ro|:rw]`.
pub(super) fn parse_share(s: &str) -> Result<Share, DriverError> {
    let bad = |reason: &str| invalid("qemu-share", s, reason);
    let mut parts = s.splitn(3, ':');
    let host = parts.next().unwrap_or_default();
    let guest = parts.next().unwrap_or_default();
    let read_only = match parts.next() {
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
    Ok(Share {
        host: PathBuf::from(host),
        guest: guest.to_string(),
        read_only,
    })
}

/// An extra forward: `HOSTPORT:GUESTPORT`.
pub(super) fn parse_forward(s: &str) -> Result<Forward, DriverError> {
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
        (Some(host), Some(guest)) => Ok(Forward { host, guest }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_forwards() {
        assert_eq!(
            parse_share("/a:/b").expect("share"),
            Share {
                host: PathBuf::from("/a"),
                guest: "/b".to_string(),
                read_only: false
            }
        );
        assert!(parse_share("/srv/a,b:/mnt/a:ro").expect("ro").read_only);
        assert!(parse_share("/a:/b:x").is_err());
        assert!(parse_share("/a:/b c").is_err());
        assert_eq!(
            parse_forward("8080:80").expect("forward"),
            Forward {
                host: 8080,
                guest: 80
            }
        );
        assert!(parse_forward("80").is_err());
        assert!(parse_forward("0:80").is_err());
    }
}
