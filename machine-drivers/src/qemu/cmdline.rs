//! QEMU's command line: a [`LaunchPlan`] says everything about one start of
//! a machine as plain data, and [`args`] turns it into arguments without
//! looking at the file system.

use super::accel::Accel;
use super::options::{Forward, Share};
use std::path::{Path, PathBuf};

/// How the machine boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Boot {
    /// Directly into a kernel and initramfs, with a kernel command line.
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
    },
    /// Through the firmware, with a cloud-init NoCloud seed as a second disk.
    SeedIso(PathBuf),
    /// Through the firmware from the disk alone.
    Disk,
}

/// One start of a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LaunchPlan {
    /// The machine's name (QEMU's `-name`, and the guest's host name).
    pub name: String,
    pub accel: Accel,
    pub cpu: u32,
    pub memory_mib: u64,
    /// The machine's qcow2 disk.
    pub disk: PathBuf,
    pub boot: Boot,
    /// The guest reaches nothing but its forwarded ports.
    pub restrict_network: bool,
    /// Host port forwarded to the guest's SSH port.
    pub ssh_port: u16,
    /// Host port forwarded to the guest's Docker port.
    pub engine_port: u16,
    /// The guest's Docker port.
    pub guest_engine_port: u16,
    /// Further forwards.
    pub forwards: Vec<Forward>,
    /// 9p shares; the n-th has the mount tag `machine<n>`.
    pub shares: Vec<Share>,
    /// The list of shares handed to the guest (fw_cfg `opt/machine/mounts`);
    /// only passed when there are shares.
    pub mounts_file: PathBuf,
    /// The SSH public key handed to the guest (fw_cfg `opt/machine/ssh-key`).
    pub ssh_key: PathBuf,
    /// The Docker daemon's files for the first boot (fw_cfg
    /// `opt/machine/docker/<name>`), as (name, file); empty on later boots.
    pub docker_files: Vec<(String, PathBuf)>,
    pub serial_log: PathBuf,
    pub qmp_socket: PathBuf,
    pub pidfile: PathBuf,
}

/// A path as a value in QEMU's option syntax (commas doubled).
pub(super) fn qopt(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// The arguments QEMU runs `plan` with.
pub(super) fn args(plan: &LaunchPlan) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-name".into(),
        plan.name.clone(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
    ];
    match plan.accel {
        Accel::Kvm => a.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]),
        Accel::Tcg => a.extend(["-accel".into(), "tcg,thread=multi,tb-size=256".into()]),
    }
    a.extend([
        "-smp".into(),
        plan.cpu.to_string(),
        "-m".into(),
        plan.memory_mib.to_string(),
        "-drive".into(),
        format!(
            "file={},if=virtio,format=qcow2,discard=unmap",
            qopt(&plan.disk)
        ),
    ]);
    match &plan.boot {
        Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => a.extend([
            "-kernel".into(),
            kernel.to_string_lossy().into_owned(),
            "-initrd".into(),
            initrd.to_string_lossy().into_owned(),
            "-append".into(),
            cmdline.clone(),
        ]),
        Boot::SeedIso(seed) => a.extend([
            "-drive".into(),
            format!("file={},if=virtio,format=raw,readonly=on", qopt(seed)),
        ]),
        Boot::Disk => {}
    }
    let restrict = if plan.restrict_network { "on" } else { "off" };
    let (ssh_port, engine_port, guest) = (plan.ssh_port, plan.engine_port, plan.guest_engine_port);
    let mut nic = format!(
        "user,model=virtio-net-pci,restrict={restrict},hostfwd=tcp:127.0.0.1:{ssh_port}-:22,hostfwd=tcp:127.0.0.1:{engine_port}-:{guest}"
    );
    for f in &plan.forwards {
        nic.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest));
    }
    a.extend([
        "-nic".into(),
        nic,
        "-device".into(),
        "virtio-rng-pci".into(),
        "-fw_cfg".into(),
        format!("name=opt/machine/ssh-key,file={}", qopt(&plan.ssh_key)),
        "-fw_cfg".into(),
        format!("name=opt/machine/hostname,string={}", plan.name),
    ]);
    for (name, file) in &plan.docker_files {
        a.extend([
            "-fw_cfg".into(),
            format!("name=opt/machine/docker/{name},file={}", qopt(file)),
        ]);
    }
    if !plan.shares.is_empty() {
        a.extend([
            "-fw_cfg".into(),
            format!("name=opt/machine/mounts,file={}", qopt(&plan.mounts_file)),
        ]);
        for (i, s) in plan.shares.iter().enumerate() {
            a.extend([
                "-virtfs".into(),
                format!(
                    "local,path={},mount_tag=machine{i},security_model=none{}",
                    qopt(&s.host),
                    if s.read_only { ",readonly=on" } else { "" }
                ),
            ]);
        }
    }
    a.extend([
        // QEMU's seccomp filter: no obsolete system calls, no changing of
        // scheduling or affinity. (`spawn` and `elevateprivileges` would
        // forbid the fork and setsid of -daemonize.)
        "-sandbox".into(),
        "on,obsolete=deny,resourcecontrol=deny".into(),
        "-serial".into(),
        format!("file:{}", qopt(&plan.serial_log)),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qopt(&plan.qmp_socket)),
        "-pidfile".into(),
        plan.pidfile.to_string_lossy().into_owned(),
        "-daemonize".into(),
    ]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::image;
    use machine_core::config::DEFAULT_ENGINE_PORT;

    /// A machine in `/m/vm1` that boots from its disk alone, under TCG,
    /// with the user network.
    fn plan() -> LaunchPlan {
        let dir = Path::new("/m/vm1");
        LaunchPlan {
            name: "vm1".into(),
            accel: Accel::Tcg,
            cpu: 2,
            memory_mib: 1024,
            disk: dir.join("disk.qcow2"),
            boot: Boot::Disk,
            restrict_network: false,
            ssh_port: 41000,
            engine_port: 41001,
            guest_engine_port: DEFAULT_ENGINE_PORT,
            forwards: vec![],
            shares: vec![],
            mounts_file: dir.join("mounts"),
            ssh_key: dir.join("id_rsa.pub"),
            docker_files: vec![],
            serial_log: dir.join("serial.log"),
            qmp_socket: dir.join("qmp.sock"),
            pidfile: dir.join("qemu.pid"),
        }
    }

    fn line(p: &LaunchPlan) -> String {
        args(p).join(" ")
    }

    #[test]
    fn qemu_command_line() {
        let mut p = plan();
        p.restrict_network = true;
        p.forwards = vec![Forward {
            host: 8080,
            guest: 80,
        }];
        p.shares = vec![Share {
            host: PathBuf::from("/srv/a,b"),
            guest: "/mnt/a".into(),
            read_only: true,
        }];
        let a = line(&p);
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
        p.accel = Accel::Kvm;
        let a = line(&p);
        assert!(a.contains("-accel kvm -cpu host"), "{a}");
        // firmware boot with a NoCloud seed; direct boot when a kernel is there
        p.accel = Accel::Tcg;
        p.boot = Boot::SeedIso(PathBuf::from("/m/vm1/seed.iso"));
        let a = line(&p);
        assert!(
            a.contains("seed.iso,if=virtio,format=raw,readonly=on"),
            "{a}"
        );
        p.boot = Boot::Kernel {
            kernel: PathBuf::from("/m/vm1/vmlinuz"),
            initrd: PathBuf::from("/m/vm1/initrd.img"),
            cmdline: image::DEFAULT_CMDLINE.into(),
        };
        let a = line(&p);
        assert!(
            a.contains("-kernel ") && a.contains(&format!("-append {}", image::DEFAULT_CMDLINE)),
            "{a}"
        );
        assert!(!a.contains("seed.iso"), "{a}");
    }

    #[test]
    fn the_whole_line_of_a_plain_machine() {
        let a = args(&plan());
        let want = [
            "-name",
            "vm1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-accel",
            "tcg,thread=multi,tb-size=256",
            "-smp",
            "2",
            "-m",
            "1024",
            "-drive",
            "file=/m/vm1/disk.qcow2,if=virtio,format=qcow2,discard=unmap",
            "-nic",
            "user,model=virtio-net-pci,restrict=off,hostfwd=tcp:127.0.0.1:41000-:22,hostfwd=tcp:127.0.0.1:41001-:2376",
            "-device",
            "virtio-rng-pci",
            "-fw_cfg",
            "name=opt/machine/ssh-key,file=/m/vm1/id_rsa.pub",
            "-fw_cfg",
            "name=opt/machine/hostname,string=vm1",
            "-sandbox",
            "on,obsolete=deny,resourcecontrol=deny",
            "-serial",
            "file:/m/vm1/serial.log",
            "-qmp",
            "unix:/m/vm1/qmp.sock,server=on,wait=off",
            "-pidfile",
            "/m/vm1/qemu.pid",
            "-daemonize",
        ];
        assert_eq!(a, want);
    }

    #[test]
    fn kernel_boot() {
        let mut p = plan();
        p.boot = Boot::Kernel {
            kernel: PathBuf::from("/m/vm1/vmlinuz"),
            initrd: PathBuf::from("/m/vm1/initrd.img"),
            cmdline: "root=/dev/vda rw console=ttyS0,115200".into(),
        };
        let a = line(&p);
        assert!(
            a.contains(
                "discard=unmap -kernel /m/vm1/vmlinuz -initrd /m/vm1/initrd.img \
                 -append root=/dev/vda rw console=ttyS0,115200 -nic "
            ),
            "{a}"
        );
        // one -drive: the disk
        assert_eq!(a.matches("-drive").count(), 1, "{a}");
    }

    #[test]
    fn seed_iso_boot() {
        let mut p = plan();
        p.boot = Boot::SeedIso(PathBuf::from("/m/vm,1/seed.iso"));
        let a = args(&p);
        let drives: Vec<&str> = a
            .windows(2)
            .filter(|w| w[0] == "-drive")
            .map(|w| w[1].as_str())
            .collect();
        assert_eq!(
            drives,
            [
                "file=/m/vm1/disk.qcow2,if=virtio,format=qcow2,discard=unmap",
                "file=/m/vm,,1/seed.iso,if=virtio,format=raw,readonly=on",
            ]
        );
        assert!(!a.iter().any(|x| x == "-kernel"), "{a:?}");
    }

    #[test]
    fn restricted_and_user_network() {
        let mut p = plan();
        assert!(line(&p).contains("user,model=virtio-net-pci,restrict=off,"));
        p.restrict_network = true;
        assert!(line(&p).contains("user,model=virtio-net-pci,restrict=on,"));
    }

    #[test]
    fn forwards_follow_the_ssh_and_engine_ports() {
        let mut p = plan();
        p.ssh_port = 2222;
        p.engine_port = 2377;
        p.forwards = vec![
            Forward {
                host: 8080,
                guest: 80,
            },
            Forward {
                host: 8443,
                guest: 443,
            },
        ];
        let a = args(&p);
        let nic = a
            .windows(2)
            .find(|w| w[0] == "-nic")
            .map(|w| w[1].clone())
            .expect("nic");
        assert!(
            nic.ends_with(
                "hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:2377-:2376,\
                 hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:8443-:443"
            ),
            "{nic}"
        );
    }

    #[test]
    fn shares_are_numbered_and_read_only_when_asked() {
        let mut p = plan();
        assert!(!line(&p).contains("-virtfs") && !line(&p).contains("opt/machine/mounts"));
        p.shares = vec![
            Share {
                host: PathBuf::from("/srv/rw"),
                guest: "/mnt/rw".into(),
                read_only: false,
            },
            Share {
                host: PathBuf::from("/srv/ro"),
                guest: "/mnt/ro".into(),
                read_only: true,
            },
        ];
        let a = line(&p);
        assert!(
            a.contains(
                "-fw_cfg name=opt/machine/mounts,file=/m/vm1/mounts \
                 -virtfs local,path=/srv/rw,mount_tag=machine0,security_model=none \
                 -virtfs local,path=/srv/ro,mount_tag=machine1,security_model=none,readonly=on \
                 -sandbox "
            ),
            "{a}"
        );
    }

    #[test]
    fn kvm_and_tcg() {
        let mut p = plan();
        let a = line(&p);
        assert!(
            a.contains(" -accel tcg,thread=multi,tb-size=256 -smp "),
            "{a}"
        );
        assert!(!a.contains("-cpu host"), "{a}");
        p.accel = Accel::Kvm;
        let a = line(&p);
        assert!(a.contains(" -accel kvm -cpu host -smp "), "{a}");
    }

    #[test]
    fn sandboxed_and_daemonized_with_its_runtime_files() {
        let mut p = plan();
        p.qmp_socket = PathBuf::from("/run/user/0/machine/qmp-0123456789abcdef.sock");
        let a = line(&p);
        assert!(
            a.ends_with(
                "-sandbox on,obsolete=deny,resourcecontrol=deny \
                 -serial file:/m/vm1/serial.log \
                 -qmp unix:/run/user/0/machine/qmp-0123456789abcdef.sock,server=on,wait=off \
                 -pidfile /m/vm1/qemu.pid -daemonize"
            ),
            "{a}"
        );
    }
}
