//! Provisioning: turning a reachable Linux machine into a Docker host secured
//! with our certificates.
//!
//! The work is split in three:
//! 1. facts: one probe command reads `/etc/os-release`, the init system, the user
//!    and where `docker`/`dockerd` live ([`HostFacts`]);
//! 2. a [`Provisioner`], picked from the OS release by [`ProvisionerSet::detect`],
//!    produces [`Step`]s as plain data (commands to run, files to write with modes);
//! 3. [`run_steps`] executes steps through a [`CommandRunner`], adding `sudo -n`
//!    for non-root users.
//!
//! Steps never hold CLI wording and can be inspected and tested without a network.
//!
//! ## Provisioner order
//! [`ProvisionerSet::builtin`] holds, in this order: Debian, Ubuntu, Fedora,
//! CentOS/RHEL/Rocky/Alma, Amazon Linux, Arch, openSUSE, Alpine. Detection first
//! looks for a provisioner claiming the exact `ID`; failing that, it takes the
//! `ID_LIKE` values in the file's order and, for each, the first provisioner in
//! the list that claims it.

pub mod engine;
pub mod os_release;

pub use os_release::OsRelease;

use crate::config::EngineOptions;
use crate::driver::BootFile;
use crate::ssh::{shell_quote, CommandRunner, SshError};
use std::fmt;
use std::sync::Arc;

/// What can go wrong while provisioning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// No provisioner handles this OS.
    #[error("no provisioner for {name} (ID={id}, ID_LIKE={id_like})")]
    UnsupportedOs {
        name: String,
        id: String,
        id_like: String,
    },
    /// The probe output could not be understood.
    #[error("cannot read the machine's facts: {reason}")]
    BadProbe { reason: String },
    /// A step's command exited with a non-zero status.
    #[error("{step} failed (exit status {exit_status}): {stderr}")]
    StepFailed {
        step: String,
        exit_status: u32,
        stderr: String,
    },
    /// The transport failed during a step.
    #[error("{step} failed")]
    Transport {
        step: String,
        #[source]
        source: SshError,
    },
    /// The distribution has no Docker package of its own.
    #[error("{distro} has no distribution package for Docker; use an install script URL")]
    NoDistroPackage { distro: String },
    /// Docker was installed but `dockerd` is nowhere to be found.
    #[error("dockerd not found on the machine after installing Docker")]
    DockerdNotFound,
}

/// One unit of provisioning work.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Run a shell command.
    Run {
        description: String,
        command: String,
    },
    /// Write a file (contents are never logged).
    WriteFile {
        description: String,
        path: String,
        contents: Vec<u8>,
        mode: u32,
    },
}

impl Step {
    /// A command step.
    pub fn run(description: impl Into<String>, command: impl Into<String>) -> Self {
        Step::Run {
            description: description.into(),
            command: command.into(),
        }
    }
    /// A file step.
    pub fn write(
        description: impl Into<String>,
        path: &str,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Self {
        Step::WriteFile {
            description: description.into(),
            path: path.to_string(),
            contents: contents.into(),
            mode,
        }
    }
    /// What the step does, for progress displays.
    pub fn description(&self) -> &str {
        match self {
            Step::Run { description, .. } | Step::WriteFile { description, .. } => description,
        }
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Run {
                description,
                command,
            } => f
                .debug_struct("Run")
                .field("description", description)
                .field("command", command)
                .finish(),
            Step::WriteFile {
                description,
                path,
                contents,
                mode,
            } => f
                .debug_struct("WriteFile")
                .field("description", description)
                .field("path", path)
                .field("bytes", &contents.len())
                .field("mode", &format_args!("{mode:o}"))
                .finish(),
        }
    }
}

/// The service manager running the Docker daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitSystem {
    Systemd,
    OpenRc,
    /// No service manager (containers, minimal images): we start `dockerd` ourselves.
    None,
}

/// What the probe learned about a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub os: OsRelease,
    pub init: InitSystem,
    /// Whether the SSH user is root (otherwise commands go through `sudo -n`).
    pub is_root: bool,
    /// Path of the `docker` client, if installed.
    pub docker: Option<String>,
    /// Path of `dockerd`, if installed.
    pub dockerd: Option<String>,
}

/// The single command that gathers [`HostFacts`]; parse its output with [`HostFacts::parse`].
pub const PROBE_COMMAND: &str = "echo '@@os-release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null; \
echo '@@facts'; \
if [ -d /run/systemd/system ]; then echo init=systemd; \
elif command -v openrc-run >/dev/null 2>&1 || [ -x /sbin/openrc-run ]; then echo init=openrc; \
else echo init=none; fi; \
echo uid=$(id -u); \
echo docker=$(command -v docker 2>/dev/null); \
d=$(command -v dockerd 2>/dev/null); \
for p in /usr/bin/dockerd /usr/sbin/dockerd /usr/local/bin/dockerd; do [ -z \"$d\" ] && [ -x $p ] && d=$p; done; \
echo dockerd=$d";

impl HostFacts {
    /// Parse the output of [`PROBE_COMMAND`].
    pub fn parse(out: &str) -> Result<Self, ProvisionError> {
        let (os_part, facts_part) =
            out.split_once("@@facts")
                .ok_or_else(|| ProvisionError::BadProbe {
                    reason: "probe output is incomplete".into(),
                })?;
        let os_text = os_part
            .split_once("@@os-release")
            .map(|(_, b)| b)
            .unwrap_or("");
        let os = OsRelease::parse(os_text);
        if os.id.is_empty() {
            return Err(ProvisionError::BadProbe {
                reason: "/etc/os-release is missing or has no ID".into(),
            });
        }
        let mut init = InitSystem::None;
        let mut is_root = false;
        let mut docker = None;
        let mut dockerd = None;
        let nonempty = |v: &str| Some(v.trim().to_string()).filter(|s| !s.is_empty());
        for line in facts_part.lines() {
            match line.split_once('=') {
                Some(("init", v)) => {
                    init = match v.trim() {
                        "systemd" => InitSystem::Systemd,
                        "openrc" => InitSystem::OpenRc,
                        _ => InitSystem::None,
                    }
                }
                Some(("uid", v)) => is_root = v.trim() == "0",
                Some(("docker", v)) => docker = nonempty(v),
                Some(("dockerd", v)) => dockerd = nonempty(v),
                _ => {}
            }
        }
        Ok(HostFacts {
            os,
            init,
            is_root,
            docker,
            dockerd,
        })
    }
}

/// How Docker gets installed when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallMethod {
    /// Download and run the script at this URL (the original's behaviour).
    Script(String),
    /// Use the distribution's own package.
    DistroPackage,
    /// Never install; fail if Docker is missing.
    Never,
}

/// The `--engine-install-url` value that selects the distribution's package.
pub const INSTALL_URL_DISTRO: &str = "distro";
/// The `--engine-install-url` value that forbids installing.
pub const INSTALL_URL_NONE: &str = "none";

impl InstallMethod {
    /// From an `--engine-install-url` value.
    pub fn from_install_url(url: &str) -> Self {
        match url.trim() {
            INSTALL_URL_DISTRO => InstallMethod::DistroPackage,
            INSTALL_URL_NONE | "" => InstallMethod::Never,
            u => InstallMethod::Script(u.to_string()),
        }
    }
}

/// What to provision: the machine's name and engine settings, and the TLS material.
#[derive(Clone)]
pub struct ProvisionRequest {
    pub hostname: String,
    pub driver_name: String,
    pub engine: EngineOptions,
    pub engine_port: u16,
    pub ca_pem: String,
    pub server_cert_pem: String,
    /// Never logged.
    pub server_key_pem: String,
}

impl fmt::Debug for ProvisionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionRequest")
            .field("hostname", &self.hostname)
            .field("driver_name", &self.driver_name)
            .field("engine_port", &self.engine_port)
            .finish_non_exhaustive()
    }
}

/// A distribution's package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    Dnf,
    /// Amazon Linux: dnf on 2023, yum on 2.
    DnfOrYum,
    Pacman,
    Zypper,
    Apk,
}

impl PackageManager {
    /// A command installing `packages`, waiting on the manager's lock by the
    /// manager's own lock-wait options rather than by reading its messages.
    pub fn install_command(self, packages: &[&str]) -> String {
        let p = packages.join(" ");
        match self {
            PackageManager::Apt => format!(
                "export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=600 update -q && \
                 apt-get -o DPkg::Lock::Timeout=600 install -y -q {p}"
            ),
            PackageManager::Dnf => format!("dnf install -y {p}"),
            PackageManager::DnfOrYum => {
                format!("if command -v dnf >/dev/null 2>&1; then dnf install -y {p}; else yum install -y {p}; fi")
            }
            PackageManager::Pacman => format!(
                "i=0; while [ -e /var/lib/pacman/db.lck ] && [ $i -lt 600 ]; do sleep 1; i=$((i+1)); done; \
                 pacman -Sy --noconfirm --needed {p}"
            ),
            PackageManager::Zypper => format!("ZYPP_LOCK_TIMEOUT=600 zypper --non-interactive install {p}"),
            PackageManager::Apk => format!("apk add --wait 600 --no-cache {p}"),
        }
    }
}

/// Picks itself from an OS release and produces the steps for one machine.
pub trait Provisioner: Send + Sync + fmt::Debug {
    /// Name for messages (`debian`, `fedora`, ...).
    fn name(&self) -> &str;
    /// Whether this provisioner handles an OS with this `ID` (or `ID_LIKE` value).
    fn handles(&self, id: &str) -> bool;
    /// Steps that install Docker on a machine that lacks it.
    fn install_steps(
        &self,
        facts: &HostFacts,
        method: &InstallMethod,
    ) -> Result<Vec<Step>, ProvisionError>;
    /// Steps that configure and (re)start the daemon with our TLS material.
    fn configure_steps(
        &self,
        facts: &HostFacts,
        req: &ProvisionRequest,
    ) -> Result<Vec<Step>, ProvisionError> {
        Ok(configure_steps(facts, req))
    }
}

/// A built-in distribution: the IDs it answers to and its package manager.
#[derive(Debug, Clone)]
pub struct Distro {
    pub name: &'static str,
    pub ids: &'static [&'static str],
    pub package_manager: PackageManager,
    /// The distribution's own Docker packages; empty when it has none.
    pub docker_packages: &'static [&'static str],
}

impl Provisioner for Distro {
    fn name(&self) -> &str {
        self.name
    }

    fn handles(&self, id: &str) -> bool {
        self.ids.contains(&id)
    }

    fn install_steps(
        &self,
        _facts: &HostFacts,
        method: &InstallMethod,
    ) -> Result<Vec<Step>, ProvisionError> {
        Ok(match method {
            InstallMethod::Never => Vec::new(),
            InstallMethod::Script(url) => vec![Step::run(
                format!("Installing Docker with {url}"),
                format!(
                    "f=$(mktemp); (curl -fsSL {u} -o \"$f\" || wget -qO \"$f\" {u}) && sh \"$f\"; s=$?; rm -f \"$f\"; exit $s",
                    u = shell_quote(url)
                ),
            )],
            InstallMethod::DistroPackage => {
                if self.docker_packages.is_empty() {
                    return Err(ProvisionError::NoDistroPackage {
                        distro: self.name.to_string(),
                    });
                }
                vec![Step::run(
                    format!("Installing Docker from {} packages", self.name),
                    self.package_manager.install_command(self.docker_packages),
                )]
            }
        })
    }
}

/// The distributions provisioned out of the box, in detection order.
pub const BUILTIN_DISTROS: [Distro; 8] = [
    Distro {
        name: "debian",
        ids: &["debian", "raspbian"],
        package_manager: PackageManager::Apt,
        docker_packages: &["docker.io"],
    },
    Distro {
        name: "ubuntu",
        ids: &["ubuntu"],
        package_manager: PackageManager::Apt,
        docker_packages: &["docker.io"],
    },
    Distro {
        name: "fedora",
        ids: &["fedora"],
        package_manager: PackageManager::Dnf,
        docker_packages: &["moby-engine"],
    },
    Distro {
        name: "redhat",
        ids: &["rhel", "centos", "rocky", "almalinux", "ol"],
        package_manager: PackageManager::Dnf,
        docker_packages: &[],
    },
    Distro {
        name: "amazon",
        ids: &["amzn"],
        package_manager: PackageManager::DnfOrYum,
        docker_packages: &["docker"],
    },
    Distro {
        name: "arch",
        ids: &["arch", "archarm", "manjaro"],
        package_manager: PackageManager::Pacman,
        docker_packages: &["docker"],
    },
    Distro {
        name: "opensuse",
        ids: &[
            "opensuse",
            "opensuse-leap",
            "opensuse-tumbleweed",
            "sles",
            "suse",
        ],
        package_manager: PackageManager::Zypper,
        docker_packages: &["docker"],
    },
    Distro {
        name: "alpine",
        ids: &["alpine"],
        package_manager: PackageManager::Apk,
        docker_packages: &["docker"],
    },
];

/// An ordered list of provisioners (see the module docs for the order rule).
#[derive(Debug, Clone)]
pub struct ProvisionerSet {
    list: Vec<Arc<dyn Provisioner>>,
}

impl Default for ProvisionerSet {
    fn default() -> Self {
        Self::builtin()
    }
}

impl ProvisionerSet {
    /// The built-in distributions.
    pub fn builtin() -> Self {
        ProvisionerSet {
            list: BUILTIN_DISTROS
                .iter()
                .cloned()
                .map(|d| Arc::new(d) as Arc<dyn Provisioner>)
                .collect(),
        }
    }
    /// Put `p` before all others (an embedding program's own provisioner wins).
    pub fn prepend(&mut self, p: Arc<dyn Provisioner>) {
        self.list.insert(0, p);
    }
    /// The provisioner for `os`.
    pub fn detect(&self, os: &OsRelease) -> Result<Arc<dyn Provisioner>, ProvisionError> {
        let by_id = |id: &str| self.list.iter().find(|p| p.handles(id)).cloned();
        by_id(&os.id)
            .or_else(|| os.id_like.iter().find_map(|l| by_id(l)))
            .ok_or_else(|| ProvisionError::UnsupportedOs {
                name: os.display_name().to_string(),
                id: os.id.clone(),
                id_like: os.id_like.join(" "),
            })
    }
}

/// Step that sets the host name (running system, `/etc/hostname`, `/etc/hosts`).
/// Files are rewritten in place, never replaced by a rename, so bind-mounted
/// `/etc/hosts` files (containers, namespaces) work too.
pub fn hostname_step(hostname: &str) -> Step {
    let h = shell_quote(hostname);
    Step::run(
        format!("Setting hostname {hostname}"),
        format!(
            "hostname {h} && echo {h} > /etc/hostname && \
             if grep -q '^127.0.1.1[[:space:]]' /etc/hosts; then \
             t=$(sed 's/^127.0.1.1[[:space:]].*/127.0.1.1 '{h}'/' /etc/hosts) && printf '%s\\n' \"$t\" > /etc/hosts; \
             else echo '127.0.1.1 '{h} >> /etc/hosts; fi"
        ),
    )
}

/// The daemon's path: what the probe found, else the packaged default.
fn dockerd_path(facts: &HostFacts) -> String {
    facts
        .dockerd
        .clone()
        .unwrap_or_else(|| "/usr/bin/dockerd".to_string())
}

/// Commands to stop, start and read the log of the daemon under an init system.
pub fn service_commands(init: InitSystem) -> (&'static str, &'static str, &'static str) {
    match init {
        InitSystem::Systemd => (
            "systemctl stop docker.service docker.socket 2>/dev/null || true",
            "systemctl daemon-reload && systemctl enable docker.service >/dev/null 2>&1; systemctl restart docker.service",
            "journalctl -u docker.service -n 40 --no-pager 2>&1 | tail -n 40",
        ),
        InitSystem::OpenRc => (
            "rc-service docker stop >/dev/null 2>&1 || true",
            "rc-update add docker default >/dev/null 2>&1; rc-service docker restart",
            "tail -n 40 /var/log/docker.log 2>&1",
        ),
        InitSystem::None => (
            "if [ -f /var/run/machine-dockerd.pid ]; then p=$(cat /var/run/machine-dockerd.pid); kill $p 2>/dev/null; \
             i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done; \
             kill -9 $p 2>/dev/null; rm -f /var/run/machine-dockerd.pid; fi; true",
            "sh /etc/docker/machine-dockerd.sh",
            "tail -n 40 /var/log/machine-dockerd.log 2>&1",
        ),
    }
}

/// The steps that stop the daemon, upload the TLS material, write the daemon's
/// configuration for the machine's init system and start it again.
pub fn configure_steps(facts: &HostFacts, req: &ProvisionRequest) -> Vec<Step> {
    let args = engine::dockerd_args(&req.engine, req.engine_port, &req.driver_name);
    let env = req.engine.env.clone().unwrap_or_default();
    let dockerd = dockerd_path(facts);
    let (stop, start, _) = service_commands(facts.init);
    let mut steps = vec![
        Step::run("Stopping Docker", stop),
        Step::run("Creating /etc/docker", "mkdir -p /etc/docker"),
        Step::write(
            "Copying CA certificate",
            engine::REMOTE_CA,
            req.ca_pem.clone(),
            0o644,
        ),
        Step::write(
            "Copying server certificate",
            engine::REMOTE_SERVER_CERT,
            req.server_cert_pem.clone(),
            0o644,
        ),
        Step::write(
            "Copying server key",
            engine::REMOTE_SERVER_KEY,
            req.server_key_pem.clone(),
            0o600,
        ),
    ];
    match facts.init {
        InitSystem::Systemd => {
            steps.push(Step::run(
                "Creating docker.service.d",
                "mkdir -p /etc/systemd/system/docker.service.d",
            ));
            steps.push(Step::write(
                "Writing the daemon configuration",
                engine::SYSTEMD_DROP_IN,
                engine::systemd_drop_in(&dockerd, &args, &env),
                0o644,
            ));
        }
        InitSystem::OpenRc => steps.push(Step::write(
            "Writing the daemon configuration",
            engine::OPENRC_CONF,
            engine::openrc_conf(&args, &env),
            0o644,
        )),
        InitSystem::None => steps.push(Step::write(
            "Writing the daemon start script",
            engine::PLAIN_SCRIPT,
            engine::plain_start_script(&dockerd, &args, &env),
            0o755,
        )),
    }
    steps.push(Step::run("Starting Docker", start));
    steps
}

/// Run `command` as root: as is for root, through `sudo -n` otherwise.
pub fn as_root(command: &str, is_root: bool) -> String {
    if is_root {
        command.to_string()
    } else {
        format!("sudo -n sh -c {}", shell_quote(command))
    }
}

/// Execute `steps` in order through `runner`; stop at the first failure.
/// `progress` is told each step's description before it runs.
pub async fn run_steps(
    runner: &dyn CommandRunner,
    steps: &[Step],
    is_root: bool,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), ProvisionError> {
    for step in steps {
        progress(step.description());
        let transport = |source| ProvisionError::Transport {
            step: step.description().to_string(),
            source,
        };
        match step {
            Step::Run { command, .. } => {
                let out = runner
                    .run(&as_root(command, is_root))
                    .await
                    .map_err(transport)?;
                check(step, &out)?;
            }
            Step::WriteFile {
                path,
                contents,
                mode,
                ..
            } => {
                if is_root {
                    runner
                        .write_file(path, contents, *mode)
                        .await
                        .map_err(transport)?;
                } else {
                    let tmp = format!("/tmp/.machine-upload-{}", rand::random::<u64>());
                    runner
                        .write_file(&tmp, contents, 0o600)
                        .await
                        .map_err(transport)?;
                    let cmd = format!(
                        "install -m {mode:o} {tmp} {p}; s=$?; rm -f {tmp}; exit $s",
                        p = shell_quote(path)
                    );
                    let out = runner.run(&as_root(&cmd, false)).await.map_err(transport)?;
                    check(step, &out)?;
                }
            }
        }
    }
    Ok(())
}

fn check(step: &Step, out: &crate::ssh::Output) -> Result<(), ProvisionError> {
    if out.success() {
        return Ok(());
    }
    let stderr = out.stderr_text();
    let mut tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    tail.reverse();
    Err(ProvisionError::StepFailed {
        step: step.description().to_string(),
        exit_status: out.exit_status,
        stderr: tail.join("\n"),
    })
}

/// What [`provision`] did.
#[derive(Debug, Clone)]
pub struct ProvisionReport {
    pub provisioner: String,
    pub facts: HostFacts,
    pub installed_docker: bool,
    /// Command that prints the tail of the daemon's log (for failure reports).
    pub log_command: String,
}

/// Provision a machine: probe, pick a provisioner, set the hostname, install
/// Docker when missing, then configure and restart the daemon with our TLS
/// material. Waiting for the daemon to answer is the caller's job (it needs a
/// TLS client, not a shell).
pub async fn provision(
    runner: &dyn CommandRunner,
    set: &ProvisionerSet,
    req: &ProvisionRequest,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<ProvisionReport, ProvisionError> {
    progress("Detecting the operating system");
    let mut facts = probe(runner).await?;
    let prov = set.detect(&facts.os)?;
    let is_root = facts.is_root;
    run_steps(runner, &[hostname_step(&req.hostname)], is_root, progress).await?;
    let mut installed = false;
    if facts.docker.is_none() || facts.dockerd.is_none() {
        let method = InstallMethod::from_install_url(&req.engine.install_url);
        let steps = prov.install_steps(&facts, &method)?;
        run_steps(runner, &steps, is_root, progress).await?;
        installed = !steps.is_empty();
        facts = probe(runner).await?;
        if facts.dockerd.is_none() {
            return Err(ProvisionError::DockerdNotFound);
        }
    }
    let steps = prov.configure_steps(&facts, req)?;
    let configured = !installed && is_configured(runner, &facts, &steps).await?;
    if configured {
        // the machine took this configuration at boot: the daemon started
        // once, already secured, and is left running
        progress("Docker is already configured with this machine's certificates");
    } else {
        run_steps(runner, &steps, is_root, progress).await?;
    }
    Ok(ProvisionReport {
        provisioner: prov.name().to_string(),
        log_command: as_root(service_commands(facts.init).2, facts.is_root),
        facts,
        installed_docker: installed,
    })
}

/// The files [`configure_steps`] writes on a systemd machine whose daemon
/// is `dockerd`: what a driver hands to its machine at first boot
/// ([`crate::driver::BootEngine`]) so that provisioning finds them in place.
pub fn boot_files(req: &ProvisionRequest, dockerd: &str) -> Vec<BootFile> {
    let facts = HostFacts {
        os: OsRelease::default(),
        init: InitSystem::Systemd,
        is_root: true,
        docker: None,
        dockerd: Some(dockerd.to_string()),
    };
    written_files(&configure_steps(&facts, req))
}

fn written_files(steps: &[Step]) -> Vec<BootFile> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::WriteFile {
                path,
                contents,
                mode,
                ..
            } => Some(BootFile {
                path: path.clone(),
                contents: contents.clone(),
                mode: *mode,
            }),
            Step::Run { .. } => None,
        })
        .collect()
}

/// The command that prints the SHA-256 of each of `files` on the machine and
/// the state of the docker unit.
pub fn configured_check_command(files: &[BootFile]) -> String {
    let paths: Vec<String> = files.iter().map(|f| shell_quote(&f.path)).collect();
    format!(
        "sha256sum -- {} 2>/dev/null; echo \"@@docker=$(systemctl is-active docker.service 2>/dev/null)\"",
        paths.join(" ")
    )
}

/// Whether the output of [`configured_check_command`] shows every one of
/// `files` with the same contents and the daemon running or starting.
pub fn shows_configured(out: &str, files: &[BootFile]) -> bool {
    let running = out.lines().any(|l| {
        matches!(
            l.trim().strip_prefix("@@docker="),
            Some("active" | "activating")
        )
    });
    running
        && files.iter().all(|f| {
            let want = crate::archive::sha256_hex(&f.contents);
            out.lines().any(|l| {
                l.split_once("  ")
                    .is_some_and(|(sum, path)| sum == want && path == f.path)
            })
        })
}

/// Whether a systemd machine already has every file `steps` would write and
/// a running daemon (so the steps, which restart it, can be skipped).
async fn is_configured(
    runner: &dyn CommandRunner,
    facts: &HostFacts,
    steps: &[Step],
) -> Result<bool, ProvisionError> {
    let files = written_files(steps);
    if facts.init != InitSystem::Systemd || files.is_empty() {
        return Ok(false);
    }
    let out = runner
        .run(&as_root(&configured_check_command(&files), facts.is_root))
        .await
        .map_err(|source| ProvisionError::Transport {
            step: "Checking the daemon's configuration".into(),
            source,
        })?;
    Ok(out.success() && shows_configured(&out.stdout_text(), &files))
}

/// Run the probe and parse it.
pub async fn probe(runner: &dyn CommandRunner) -> Result<HostFacts, ProvisionError> {
    let out = runner
        .run(PROBE_COMMAND)
        .await
        .map_err(|source| ProvisionError::Transport {
            step: "Detecting the operating system".into(),
            source,
        })?;
    HostFacts::parse(&out.stdout_text())
}

#[cfg(test)]
mod tests;
