//! Provisioning steps executed against a scripted runner (no network: the
//! real SSH runs are in the end-to-end tests).

use super::*;
use crate::ssh::Output;
use async_trait::async_trait;
use std::sync::Mutex;

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/os-release")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn detection_on_real_samples() {
    let set = ProvisionerSet::builtin();
    let cases = [
        ("debian-12", "debian"),
        ("ubuntu-22.04", "ubuntu"),
        ("fedora-39", "fedora"),
        ("centos-stream-9", "redhat"),
        ("rocky-9", "redhat"),
        ("almalinux-9", "redhat"),
        ("amzn-2023", "amazon"),
        ("arch", "arch"),
        ("opensuse-leap-15.5", "opensuse"),
        ("alpine-3.19", "alpine"),
        // by ID_LIKE, first value first: ubuntu before debian
        ("linuxmint-21", "ubuntu"),
    ];
    for (file, want) in cases {
        let os = OsRelease::parse(&fixture(file));
        let p = set.detect(&os).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(p.name(), want, "{file}");
    }
    let e = set
        .detect(&OsRelease::parse(&fixture("gentoo")))
        .expect_err("gentoo unsupported");
    assert!(e.to_string().contains("Gentoo Linux"), "{e}");
}

#[test]
fn custom_provisioner_wins_over_builtin() {
    #[derive(Debug)]
    struct Mine;
    impl Provisioner for Mine {
        fn name(&self) -> &str {
            "mine"
        }
        fn handles(&self, id: &str) -> bool {
            id == "debian"
        }
        fn install_steps(
            &self,
            _: &HostFacts,
            _: &InstallMethod,
        ) -> Result<Vec<Step>, ProvisionError> {
            Ok(vec![])
        }
    }
    let mut set = ProvisionerSet::builtin();
    set.prepend(Arc::new(Mine));
    let os = OsRelease::parse(&fixture("debian-12"));
    assert_eq!(set.detect(&os).expect("detect").name(), "mine");
}

#[test]
fn install_methods() {
    assert_eq!(
        InstallMethod::from_install_url("https://get.docker.com"),
        InstallMethod::Script("https://get.docker.com".into())
    );
    assert_eq!(
        InstallMethod::from_install_url("distro"),
        InstallMethod::DistroPackage
    );
    assert_eq!(
        InstallMethod::from_install_url("none"),
        InstallMethod::Never
    );
    let facts = HostFacts::parse(&format!(
        "@@os-release\n{}\n@@facts\ninit=none\nuid=0\n",
        fixture("debian-12")
    ))
    .expect("facts");
    let rh = &BUILTIN_DISTROS[3];
    assert!(matches!(
        rh.install_steps(&facts, &InstallMethod::DistroPackage),
        Err(ProvisionError::NoDistroPackage { .. })
    ));
    let deb = &BUILTIN_DISTROS[0];
    let steps = deb
        .install_steps(&facts, &InstallMethod::DistroPackage)
        .expect("steps");
    match &steps[0] {
        Step::Run { command, .. } => {
            assert!(command.contains("DPkg::Lock::Timeout"), "{command}");
            assert!(command.contains("docker.io"));
        }
        other => panic!("{other:?}"),
    }
    let steps = deb
        .install_steps(&facts, &InstallMethod::Script("https://x/y?a=b&c".into()))
        .expect("steps");
    match &steps[0] {
        Step::Run { command, .. } => assert!(command.contains("'https://x/y?a=b&c'"), "{command}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn probe_output_parsing() {
    let f = HostFacts::parse(&format!(
        "@@os-release\n{}\n@@facts\ninit=systemd\nuid=1000\ndocker=/usr/bin/docker\ndockerd=/usr/sbin/dockerd\n",
        fixture("ubuntu-22.04")
    ))
    .expect("facts");
    assert_eq!(f.init, InitSystem::Systemd);
    assert!(!f.is_root);
    assert_eq!(f.dockerd.as_deref(), Some("/usr/sbin/dockerd"));
    assert!(HostFacts::parse("garbage").is_err());
    assert!(HostFacts::parse("@@os-release\n@@facts\ninit=none\n").is_err());
}

/// A runner that answers from a script and records what it was asked.
#[derive(Default)]
struct Scripted {
    log: Mutex<Vec<String>>,
    files: Mutex<Vec<(String, Vec<u8>, u32)>>,
    /// (command substring, output) pairs; the first match answers.
    answers: Vec<(String, Output)>,
}

#[async_trait]
impl CommandRunner for Scripted {
    async fn run(&self, command: &str) -> Result<Output, SshError> {
        self.log.lock().expect("lock").push(command.to_string());
        for (pat, out) in &self.answers {
            if command.contains(pat.as_str()) {
                return Ok(out.clone());
            }
        }
        Ok(Output::default())
    }
    async fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), SshError> {
        self.files
            .lock()
            .expect("lock")
            .push((path.to_string(), contents.to_vec(), mode));
        Ok(())
    }
}

fn ok(stdout: &str) -> Output {
    Output {
        stdout: stdout.as_bytes().to_vec(),
        ..Output::default()
    }
}

fn request() -> ProvisionRequest {
    ProvisionRequest {
        hostname: "m1".into(),
        driver_name: "generic".into(),
        engine: EngineOptions {
            install_url: "distro".into(),
            ..EngineOptions::default()
        },
        engine_port: 2376,
        ca_pem: "CA".into(),
        server_cert_pem: "CERT".into(),
        server_key_pem: "SECRET-KEY".into(),
    }
}

#[tokio::test]
async fn provision_systemd_root_host_with_docker() {
    let probe = format!(
        "@@os-release\n{}\n@@facts\ninit=systemd\nuid=0\ndocker=/usr/bin/docker\ndockerd=/usr/sbin/dockerd\n",
        fixture("debian-12")
    );
    let r = Scripted {
        answers: vec![("@@os-release".into(), ok(&probe))],
        ..Scripted::default()
    };
    let seen = Mutex::new(Vec::new());
    let report = provision(&r, &ProvisionerSet::builtin(), &request(), &|s: &str| {
        seen.lock().expect("lock").push(s.to_string())
    })
    .await
    .expect("provision");
    assert_eq!(report.provisioner, "debian");
    assert!(!report.installed_docker);
    let files = r.files.lock().expect("lock").clone();
    let paths: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            engine::REMOTE_CA,
            engine::REMOTE_SERVER_CERT,
            engine::REMOTE_SERVER_KEY,
            engine::SYSTEMD_DROP_IN
        ]
    );
    assert_eq!(files[2].2, 0o600);
    let drop_in = String::from_utf8(files[3].1.clone()).expect("utf8");
    assert!(
        drop_in.contains("ExecStart=\nExecStart=/usr/sbin/dockerd -H tcp://0.0.0.0:2376"),
        "{drop_in}"
    );
    assert!(drop_in.contains("--label provider=generic"));
    let log = r.log.lock().expect("lock").clone();
    assert!(log.iter().any(|c| c.starts_with("hostname m1")), "{log:?}");
    assert!(
        log.iter().all(|c| !c.contains("apt-get")),
        "docker present: nothing installed"
    );
    assert!(log
        .last()
        .expect("cmds")
        .contains("systemctl restart docker.service"));
    assert!(
        log.iter().all(|c| !c.contains("SECRET-KEY")),
        "key never in a command"
    );
    assert!(seen
        .lock()
        .expect("lock")
        .iter()
        .any(|s| s == "Starting Docker"));
}

#[tokio::test]
async fn provision_installs_and_uses_sudo_for_non_root() {
    let before = format!(
        "@@os-release\n{}\n@@facts\ninit=none\nuid=1000\n",
        fixture("debian-12")
    );
    let after = format!("{before}docker=/usr/bin/docker\ndockerd=/usr/sbin/dockerd\n");
    // the probe answers "missing" until the install ran
    #[derive(Default)]
    struct TwoPhase {
        inner: Scripted,
        installed: Mutex<bool>,
        before: String,
        after: String,
    }
    #[async_trait]
    impl CommandRunner for TwoPhase {
        async fn run(&self, command: &str) -> Result<Output, SshError> {
            if command.contains("apt-get") {
                *self.installed.lock().expect("lock") = true;
            }
            if command.contains("@@os-release") {
                let done = *self.installed.lock().expect("lock");
                return Ok(ok(if done { &self.after } else { &self.before }));
            }
            self.inner.run(command).await
        }
        async fn write_file(&self, p: &str, c: &[u8], m: u32) -> Result<(), SshError> {
            self.inner.write_file(p, c, m).await
        }
    }
    let r = TwoPhase {
        before,
        after,
        ..TwoPhase::default()
    };
    let report = provision(&r, &ProvisionerSet::builtin(), &request(), &|_: &str| {})
        .await
        .expect("provision");
    assert!(report.installed_docker);
    let log = r.inner.log.lock().expect("lock").clone();
    assert!(
        log.iter().all(|c| c.starts_with("sudo -n sh -c ")),
        "{log:?}"
    );
    assert!(log.iter().any(|c| c.contains("apt-get")));
    assert!(log
        .iter()
        .any(|c| c.contains("install -m 600 /tmp/.machine-upload-")));
    assert!(log.last().expect("cmds").contains("machine-dockerd.sh"));
    let files = r.inner.files.lock().expect("lock").clone();
    assert!(files
        .iter()
        .all(|f| f.0.starts_with("/tmp/.machine-upload-") && f.2 == 0o600));
    assert!(report.log_command.contains("machine-dockerd.log"));
}

#[tokio::test]
async fn failing_step_reports_stderr_tail() {
    let probe = format!(
        "@@os-release\n{}\n@@facts\ninit=systemd\nuid=0\ndocker=/usr/bin/docker\ndockerd=/usr/bin/dockerd\n",
        fixture("debian-12")
    );
    let r = Scripted {
        answers: vec![
            ("@@os-release".into(), ok(&probe)),
            (
                "systemctl restart".into(),
                Output {
                    stderr: b"Job for docker.service failed\n".to_vec(),
                    exit_status: 1,
                    ..Output::default()
                },
            ),
        ],
        ..Scripted::default()
    };
    let e = provision(&r, &ProvisionerSet::builtin(), &request(), &|_: &str| {})
        .await
        .expect_err("must fail");
    let msg = e.to_string();
    assert!(
        msg.contains("Starting Docker") && msg.contains("Job for docker.service failed"),
        "{msg}"
    );
}

#[test]
fn boot_files_are_what_systemd_provisioning_writes() {
    let req = request();
    let files = boot_files(&req, "/usr/sbin/dockerd");
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            engine::REMOTE_CA,
            engine::REMOTE_SERVER_CERT,
            engine::REMOTE_SERVER_KEY,
            engine::SYSTEMD_DROP_IN
        ]
    );
    assert_eq!(files[2].mode, 0o600);
    assert_eq!(files[2].contents, req.server_key_pem.as_bytes());
    let dropin = String::from_utf8_lossy(&files[3].contents);
    assert!(
        dropin.contains("ExecStart=/usr/sbin/dockerd -H"),
        "{dropin}"
    );
    // the key never shows in a debug print
    assert!(!format!("{files:?}").contains("SECRET-KEY"));
}

#[test]
fn the_configured_check_wants_every_file_and_a_running_daemon() {
    let files = boot_files(&request(), "/usr/sbin/dockerd");
    let cmd = configured_check_command(&files);
    assert!(cmd.starts_with("sha256sum -- /etc/docker/ca.pem "), "{cmd}");
    let sums: String = files
        .iter()
        .map(|f| format!("{}  {}\n", crate::archive::sha256_hex(&f.contents), f.path))
        .collect();
    assert!(shows_configured(
        &format!("{sums}@@docker=active\n"),
        &files
    ));
    assert!(shows_configured(
        &format!("{sums}@@docker=activating\n"),
        &files
    ));
    assert!(!shows_configured(
        &format!("{sums}@@docker=failed\n"),
        &files
    ));
    assert!(!shows_configured(&format!("{sums}@@docker=\n"), &files));
    // one file missing or different
    let missing: String = sums.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert!(!shows_configured(
        &format!("{missing}@@docker=active\n"),
        &files
    ));
    let changed = sums.replacen(
        &crate::archive::sha256_hex(&files[0].contents),
        &"0".repeat(64),
        1,
    );
    assert!(!shows_configured(
        &format!("{changed}@@docker=active\n"),
        &files
    ));
}
