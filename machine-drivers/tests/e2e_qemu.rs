//! End-to-end: the qemu driver with real VMs.
//!
//! Needs root, QEMU (`qemu-system-x86_64`, `qemu-img`), debootstrap (to build
//! the image once), the docker CLI and busybox-static: `scripts/qemu-setup.sh`
//! installs them. Without them the tests fail under CI=true and are skipped
//! otherwise.
//!
//! Images are cached in `MACHINE_QEMU_CACHE` (default: `qemu-cache` in Cargo's
//! test scratch directory under the target directory), so they are built once
//! and reused by later runs. The accelerator is `MACHINE_QEMU_ACCEL` (default
//! `tcg`: software emulation works everywhere; `auto` probes KVM first). Every
//! VM is stopped when its test ends, also when it fails.

use machine_core::driver::{DriverContext, DriverOptions, OptionValue};
use machine_core::host::{error_chain, CreateOptions, Settings};
use machine_core::ssh::{CommandRunner, HostKeyCheck, SshClient, SshConfig};
use machine_core::store::FileStore;
use machine_core::{Host, State, Store};
use machine_drivers::qemu::{self, image};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn require(what: &str) -> bool {
    assert!(
        std::env::var("CI").map(|v| v != "true").unwrap_or(true),
        "{what} is required under CI: run scripts/qemu-setup.sh"
    );
    eprintln!("SKIPPED: {what} (scripts/qemu-setup.sh installs what the QEMU tests need)");
    false
}

/// The cache directory, or `None` (after printing why) when the tests cannot run.
fn qemu_env(need_docker_cli: bool) -> Option<PathBuf> {
    if !nix_is_root() {
        require("root");
        return None;
    }
    for tool in ["qemu-system-x86_64", "qemu-img"] {
        if image::find_program(tool).is_none() {
            require(tool);
            return None;
        }
    }
    let cache = cache_dir();
    let built = image::manifest(&image::image_dir(&cache, image::Variant::Docker)).is_some();
    if !built && !image::missing_build_tools().is_empty() {
        require(&format!(
            "the image build tools ({})",
            image::missing_build_tools().join(", ")
        ));
        return None;
    }
    if need_docker_cli
        && (image::find_program("docker").is_none() || !Path::new("/bin/busybox").exists())
    {
        require("the docker CLI and busybox-static");
        return None;
    }
    Some(cache)
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn cache_dir() -> PathBuf {
    std::env::var_os("MACHINE_QEMU_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-cache"))
}

fn accel() -> String {
    std::env::var("MACHINE_QEMU_ACCEL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tcg".into())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn say(msg: &str) {
    eprintln!(
        "[{:>6.1}s] {msg}",
        START.get_or_init(Instant::now).elapsed().as_secs_f64()
    );
}

/// Ends the QEMU process of a machine directory when dropped (test failures included).
struct VmGuard(PathBuf);

impl Drop for VmGuard {
    fn drop(&mut self) {
        let pid_file = self.0.join("qemu.pid");
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*self.0.to_string_lossy()) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                eprintln!("stopped leftover VM (pid {pid}) of {}", self.0.display());
            }
        }
    }
}

fn store(dir: &Path) -> Store {
    Store::new(FileStore::new(dir), machine_drivers::builtin_registry()).with_settings(Settings {
        running_timeout: Duration::from_secs(60),
        engine_timeout: Duration::from_secs(240),
        ..Settings::default()
    })
}

fn qemu_options(cache: &Path) -> CreateOptions {
    let mut o = CreateOptions::new("qemu");
    o.use_environment = false;
    o.driver_option(
        "qemu-cache-dir",
        OptionValue::String(cache.display().to_string()),
    )
    .driver_option("qemu-accel", OptionValue::String(accel()))
    .driver_option("qemu-boot-timeout", OptionValue::Int(600))
    // the VMs of the tests reach nothing but their forwarded ports
    .driver_option("qemu-network", OptionValue::String("restricted".into()));
    o
}

/// Run the real `docker` CLI with the machine's environment rendered for bash.
fn docker(host_env: &machine_core::env::MachineEnv, tmp: &Path, args: &str) -> String {
    let text =
        machine_core::env::render(host_env, machine_core::env::Shell::Bash, None).expect("render");
    let envfile = tmp.join("env.sh");
    std::fs::write(&envfile, text).expect("env file");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "eval \"$(cat {})\" && docker {args}",
            envfile.display()
        ))
        .env("DOCKER_CONFIG", tmp.join("docker-config"))
        .env_remove("DOCKER_HOST")
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "docker {args} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn test_image(tmp: &Path) -> PathBuf {
    let image = tmp.join("busybox.tar");
    let st = Command::new("bash")
        .arg(repo().join("scripts/make-test-image.sh"))
        .arg(&image)
        .status()
        .expect("make image");
    assert!(st.success(), "make-test-image.sh failed");
    image
}

async fn ensure_image(cache: &Path, v: image::Variant) {
    let t = Instant::now();
    let progress = |s: &str| say(&format!("image: {s}"));
    image::ensure_built(cache, v, &progress)
        .await
        .unwrap_or_else(|e| panic!("image: {}", error_chain(&e)));
    say(&format!(
        "image {} ready after {:.0} s",
        v.name(),
        t.elapsed().as_secs_f64()
    ));
}

fn qemu_processes_of(dir: &Path) -> usize {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .chars()
                        .all(|c| c.is_ascii_digit())
                })
                .filter(|e| {
                    let c = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    let c = String::from_utf8_lossy(&c);
                    c.starts_with("qemu-system") && c.contains(&needle)
                })
                .count()
        })
        .unwrap_or(0)
}

/// The whole lifecycle in one VM: create (real systemd provisioning), docker over
/// TLS, stop, start (ports may change, certificates still valid), ssh, copy,
/// restart, kill, a VM killed underneath, rm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_vm_lifecycle() {
    let Some(cache) = qemu_env(true) else { return };
    ensure_image(&cache, image::Variant::Docker).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let s = store(&tmp.path().join("store"));
    let name = "qemu-e2e";
    let _guard = VmGuard(s.files().machine_dir(name));

    let t = Instant::now();
    let steps = std::sync::Mutex::new(Vec::<String>::new());
    let record = |step: &str| {
        say(step);
        steps.lock().expect("lock").push(step.to_string());
    };
    let host: Host = match s.create(name, qemu_options(&cache), &record).await {
        Ok(h) => h,
        Err(e) => {
            let serial = std::fs::read_to_string(s.files().machine_dir(name).join("serial.log"))
                .unwrap_or_default();
            let tail: Vec<&str> = serial.lines().rev().take(30).collect();
            panic!(
                "create: {}\nserial (last lines, newest first):\n{}",
                error_chain(&e),
                tail.join("\n")
            );
        }
    };
    say(&format!("create took {:.1} s", t.elapsed().as_secs_f64()));
    assert_eq!(host.state().await.expect("state"), State::Running);
    let url = host.url().await.expect("url");
    assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
    assert_eq!(host.inspect().driver["IPAddress"], "127.0.0.1");
    let dir = host.dir();
    for f in [
        "id_rsa",
        "id_rsa.pub",
        "disk.qcow2",
        "base.qcow2",
        "vmlinuz",
        "initrd.img",
        "qemu.pid",
        "serial.log",
    ] {
        assert!(dir.join(f).exists(), "{f} missing in the machine directory");
    }

    // docker over TLS through the real CLI
    let e = host.env_vars().await.expect("env");
    let image = test_image(tmp.path());
    docker(
        &e,
        tmp.path(),
        &format!("import {} mt-busybox:latest", image.display()),
    );
    let said = docker(
        &e,
        tmp.path(),
        "run --rm mt-busybox:latest echo hello-from-qemu",
    );
    assert_eq!(said.trim(), "hello-from-qemu");
    let info = docker(&e, tmp.path(), "info --format '{{json .Labels}}'");
    assert!(info.contains("provider=qemu"), "{info}");

    // the daemon took its configuration at the first boot (systemd drop-in,
    // running unit) and started once: provisioning only checked it, and the
    // files handed over are gone from the machine's directory
    let steps = steps.into_inner().expect("steps");
    assert!(
        steps
            .iter()
            .any(|s| s == "Docker is already configured with this machine's certificates"),
        "{steps:?}"
    );
    assert!(!dir.join("boot-docker").exists());
    let out = host
        .ssh("cat /etc/systemd/system/docker.service.d/10-machine.conf; systemctl is-active docker.service; \
              echo starts=$(journalctl -b -u docker.service --no-pager | grep -c 'Starting docker.service\\|Starting Docker Application'); hostname")
        .await
        .expect("ssh");
    let text = out.stdout_text();
    assert!(
        text.contains("ExecStart=") && text.contains("--tlsverify"),
        "{text}"
    );
    assert!(text.contains("\nactive\n"), "{text}");
    assert!(text.contains("\nstarts=1\n"), "{text}");
    assert!(text.trim_end().ends_with(name), "hostname: {text}");

    // stop: ACPI power-down
    let mut host = s.get(name).expect("get");
    let t = Instant::now();
    host.stop().await.expect("stop");
    say(&format!("stop took {:.1} s", t.elapsed().as_secs_f64()));
    assert_eq!(host.state().await.expect("state"), State::Stopped);
    assert_eq!(qemu_processes_of(&dir), 0);

    // start again: the URL may change, the certificate check still passes,
    // and start returns once the daemon answers
    let t = Instant::now();
    host.start().await.expect("start");
    say(&format!(
        "start took {:.1} s (to a daemon answering)",
        t.elapsed().as_secs_f64()
    ));
    let host = s.get(name).expect("get");
    assert_eq!(host.state().await.expect("state"), State::Running);
    let e = host.env_vars().await.expect("env after start");
    host.check_certs().await.expect("certificates");
    if let Err(err) = host.docker_version(Duration::from_secs(10)).await {
        panic!("docker right after start: {}", error_chain(&err));
    }
    let said = docker(&e, tmp.path(), "run --rm mt-busybox:latest cat /etc/passwd");
    assert!(said.contains("root:x:0:0"), "{said}");

    // ssh and file copies (the pinned host key survives the port change)
    let out = host.ssh("uname -s; id -u").await.expect("ssh");
    assert_eq!(out.stdout_text(), "Linux\n0\n");
    let local = tmp.path().join("payload.bin");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &payload).expect("payload");
    host.copy_to(&local, "/root/payload.bin")
        .await
        .expect("copy_to");
    let back = tmp.path().join("back.bin");
    host.copy_from("/root/payload.bin", &back)
        .await
        .expect("copy_from");
    assert_eq!(std::fs::read(&back).expect("back"), payload);

    // restart: power-down and boot again; the disk keeps what was written
    let mut host = s.get(name).expect("get");
    let t = Instant::now();
    host.restart().await.expect("restart");
    say(&format!(
        "restart took {:.1} s (to SSH)",
        t.elapsed().as_secs_f64()
    ));
    assert_eq!(host.state().await.expect("state"), State::Running);
    let out = host
        .ssh("wc -c < /root/payload.bin")
        .await
        .expect("ssh after restart");
    assert_eq!(out.stdout_text().trim(), "200000");

    // kill: the process is gone and the state says so
    let mut host = s.get(name).expect("get");
    host.kill().await.expect("kill");
    assert_eq!(host.state().await.expect("state"), State::Stopped);
    assert_eq!(qemu_processes_of(&dir), 0);

    // upgrade of a stopped machine starts it first, as docker-machine did;
    // the project's image brings Docker and this guest reaches nothing, so
    // the upgrade fetches nothing and restarts Docker with our configuration
    let steps = std::sync::Mutex::new(Vec::new());
    host.upgrade(&|s: &str| steps.lock().expect("lock").push(s.to_string()))
        .await
        .expect("upgrade after kill");
    assert_eq!(host.state().await.expect("state"), State::Running);
    let steps = steps.into_inner().expect("steps");
    assert!(
        steps.iter().any(|s| s.starts_with("Starting the machine")),
        "{steps:?}"
    );
    host.docker_version(Duration::from_secs(10))
        .await
        .expect("docker after upgrade");

    // a VM killed underneath (not through the driver) shows Stopped too
    let pid = std::fs::read_to_string(dir.join("qemu.pid")).expect("pid");
    assert!(Command::new("kill")
        .arg("-9")
        .arg(pid.trim())
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.state().await.expect("state") != State::Stopped && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(host.state().await.expect("state"), State::Stopped);

    s.remove(name, false).await.expect("rm");
    assert!(!dir.exists(), "machine directory left behind");
    assert_eq!(qemu_processes_of(&dir), 0);
}

/// A tiny HTTP server on 127.0.0.1 serving one file at `/disk.qcow2`; other
/// paths get 404. Stops when the returned sender is dropped.
async fn serve_file(path: PathBuf) -> (u16, tokio::sync::oneshot::Sender<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = &mut rx => return,
            };
            let Ok((mut sock, _)) = accepted else { return };
            let path = path.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if line.starts_with("GET /moved ") {
                    let _ = sock.write_all(b"HTTP/1.1 302 Found\r\nLocation: /disk.qcow2\r\nContent-Length: 0\r\n\r\n").await;
                    return;
                }
                if !line.starts_with("GET /disk.qcow2 ") {
                    let _ = sock
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let mut f = tokio::fs::File::open(&path).await.expect("open");
                let len = f.metadata().await.expect("meta").len();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n");
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut f, &mut sock).await;
            });
        }
    });
    (port, tx)
}

/// `--qemu-image URL#sha256=...`: downloaded into the cache with progress, the
/// kernel found inside for direct boot; a wrong checksum is refused and leaves
/// nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_image_download_with_checksum() {
    let Some(cache) = qemu_env(false) else { return };
    ensure_image(&cache, image::Variant::Docker).await;
    let built = image::image_dir(&cache, image::Variant::Docker);
    let disk = built.join("disk.qcow2");
    let sum = image::sha256_file(&disk).expect("sha256");
    let (port, _stop) = serve_file(disk.clone()).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let cache2 = tmp.path().join("cache");

    // wrong checksum: refused, nothing kept
    let wrong = "0".repeat(64);
    let url = format!("http://127.0.0.1:{port}/disk.qcow2");
    let e = image::download(&cache2, &url, &wrong, &|_: &str| {})
        .await
        .expect_err("wrong checksum");
    assert!(matches!(e, image::ImageError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains(&sum), "{e}");
    assert!(
        !cache2.join("images").join(&wrong).exists(),
        "a refused download was kept"
    );

    // 404 is an error naming the URL
    let e = image::download(
        &cache2,
        &format!("http://127.0.0.1:{port}/nope"),
        &sum,
        &|_: &str| {},
    )
    .await
    .expect_err("404");
    assert!(e.to_string().contains("404"), "{e}");

    // the real thing, through a redirect, with progress lines
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |s: &str| lines.lock().expect("lock").push(s.to_string());
    let spec = image::ImageSpec::parse(&format!("http://127.0.0.1:{port}/moved#sha256={sum}"), "")
        .expect("spec");
    let t = Instant::now();
    let boot = image::resolve(&cache2, &spec, &progress)
        .await
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    say(&format!(
        "download and kernel extraction took {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let lines = lines.into_inner().expect("lines");
    assert!(lines.iter().any(|l| l.contains("100%")), "{lines:?}");
    assert_eq!(boot.format, "qcow2");
    assert_eq!(image::sha256_file(&boot.disk).expect("sum"), sum);
    let kernel = boot.kernel.expect("kernel found in the image");
    assert_eq!(
        std::fs::read(&kernel).expect("kernel"),
        std::fs::read(built.join("vmlinuz")).expect("vmlinuz")
    );
    let initrd = boot.initrd.expect("initrd");
    assert_eq!(
        std::fs::read(&initrd).expect("initrd"),
        std::fs::read(built.join("initrd.img")).expect("initrd")
    );

    // a second resolve is served from the cache (no server needed)
    drop(_stop);
    let again = image::resolve(&cache2, &spec, &|_: &str| {})
        .await
        .expect("cached");
    assert_eq!(again.disk, boot.disk);

    // the driver takes the same spec as a flag; a URL without checksum is refused
    let ctx = DriverContext {
        machine_name: "dl".into(),
        store_root: tmp.path().to_path_buf(),
        machine_dir: tmp.path().join("machines/dl"),
    };
    let opts = |img: &str| {
        DriverOptions::resolve(
            "qemu",
            &machine_core::driver::DriverFactory::options(&qemu::QemuFactory),
            [("qemu-image".to_string(), OptionValue::String(img.into()))],
            &|_| None,
        )
        .expect("options")
    };
    let f = qemu::QemuFactory;
    assert!(machine_core::driver::DriverFactory::new_driver(
        &f,
        &ctx,
        &opts(&format!("{url}#sha256={sum}"))
    )
    .is_ok());
    let e = machine_core::driver::DriverFactory::new_driver(&f, &ctx, &opts(&url))
        .expect_err("no checksum");
    assert!(e.to_string().contains("checksum"), "{e}");
}

/// The generic driver provisions a VM made from the image without Docker, on
/// the real systemd path: `--engine-install-url distro` installs Debian's
/// docker.io with apt. The guest has no network, so apt reads a local
/// repository (docker.io and its dependencies, collected when the image was
/// built) shared read-only into the VM over 9p.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_installs_docker_from_distro_package_in_vm() {
    let Some(cache) = qemu_env(true) else { return };
    ensure_image(&cache, image::Variant::NoDocker).await;
    let repo_dir = image::image_dir(&cache, image::Variant::NoDocker).join("apt-repo");
    assert!(
        repo_dir.join("Packages").is_file(),
        "the image build made no apt-repo"
    );
    let tmp = tempfile::tempdir().expect("tmp");

    // the VM, driven by the qemu driver directly (no provisioning)
    let engine_port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let vm_dir = tmp.path().join("vm/machines/vm");
    std::fs::create_dir_all(&vm_dir).expect("vm dir");
    let _guard = VmGuard(vm_dir.clone());
    let ctx = DriverContext {
        machine_name: "vm".into(),
        store_root: tmp.path().join("vm"),
        machine_dir: vm_dir.clone(),
    };
    let given = [
        (
            "qemu-image",
            OptionValue::String(image::IMAGE_NAME_NODOCKER.into()),
        ),
        (
            "qemu-cache-dir",
            OptionValue::String(cache.display().to_string()),
        ),
        ("qemu-accel", OptionValue::String(accel())),
        ("qemu-boot-timeout", OptionValue::Int(600)),
        ("qemu-network", OptionValue::String("restricted".into())),
        (
            "qemu-share",
            OptionValue::String(format!("{}:/srv/machine-apt:ro", repo_dir.display())),
        ),
        (
            "qemu-forward",
            OptionValue::String(format!("{engine_port}:{engine_port}")),
        ),
    ];
    let f = qemu::QemuFactory;
    let o = DriverOptions::resolve(
        "qemu",
        &machine_core::driver::DriverFactory::options(&f),
        given.iter().map(|(k, v)| (k.to_string(), v.clone())),
        &|_| None,
    )
    .expect("options");
    let mut vm = machine_core::driver::DriverFactory::new_driver(&f, &ctx, &o).expect("driver");
    vm.pre_create_check().await.expect("pre-create check");
    let t = Instant::now();
    vm.create()
        .await
        .unwrap_or_else(|e| panic!("boot: {}", error_chain(&e)));
    say(&format!("VM booted in {:.1} s", t.elapsed().as_secs_f64()));
    let target = vm.ssh_target().expect("ssh target");

    // point apt at the shared repository only; Docker is not there yet
    let c = SshClient::connect(
        &target,
        &HostKeyCheck::TrustOnFirstUse,
        &SshConfig::default(),
    )
    .await
    .expect("ssh");
    let out = c
        .run(
            "set -e; test -f /srv/machine-apt/Packages; command -v dockerd && exit 3; \
             rm -f /etc/apt/sources.list.d/*; \
             echo 'deb [trusted=yes] file:/srv/machine-apt ./' > /etc/apt/sources.list",
        )
        .await
        .expect("run");
    assert!(
        out.success(),
        "preparing apt: {}{}",
        out.stdout_text(),
        out.stderr_text()
    );
    c.close().await;

    // the generic driver creates the machine: apt-get install docker.io, drop-in, restart
    let s = store(&tmp.path().join("store"));
    let mut o = CreateOptions::new("generic");
    o.use_environment = false;
    o.driver_option(
        "generic-ip-address",
        OptionValue::String("127.0.0.1".into()),
    )
    .driver_option("generic-ssh-port", OptionValue::Int(i64::from(target.port)))
    .driver_option(
        "generic-ssh-key",
        OptionValue::String(vm_dir.join("id_rsa").display().to_string()),
    )
    .driver_option(
        "generic-engine-port",
        OptionValue::Int(i64::from(engine_port)),
    );
    o.engine_flag("engine-install-url", OptionValue::String("distro".into()))
        .expect("install url");
    let steps = std::sync::Mutex::new(Vec::<String>::new());
    let t = Instant::now();
    let host = s
        .create("from-distro", o, &|step: &str| {
            say(step);
            steps.lock().expect("lock").push(step.to_string());
        })
        .await
        .unwrap_or_else(|e| panic!("create: {}", error_chain(&e)));
    say(&format!(
        "generic create (install included) took {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let steps = steps.into_inner().expect("steps");
    assert!(
        steps
            .iter()
            .any(|s| s == "Installing Docker from debian packages"),
        "{steps:?}"
    );

    let out = host
        .ssh("dpkg-query -W -f='${Status}' docker.io; echo; cat /etc/systemd/system/docker.service.d/10-machine.conf; systemctl is-active docker.service")
        .await
        .expect("ssh");
    let text = out.stdout_text();
    assert!(text.starts_with("install ok installed"), "{text}");
    assert!(
        text.contains(&format!("tcp://0.0.0.0:{engine_port}")),
        "{text}"
    );
    assert!(text.trim_end().ends_with("active"), "{text}");
    let e = host.env_vars().await.expect("env");
    let image = test_image(tmp.path());
    docker(
        &e,
        tmp.path(),
        &format!("import {} mt-busybox:latest", image.display()),
    );
    let said = docker(
        &e,
        tmp.path(),
        "run --rm mt-busybox:latest echo installed-from-distro",
    );
    assert_eq!(said.trim(), "installed-from-distro");

    s.remove("from-distro", false).await.expect("rm");
    vm.remove().await.expect("remove VM");
    assert_eq!(qemu_processes_of(&vm_dir), 0);
}

/// `--qemu-accel auto`: KVM is used only when a short probe boots the image's
/// kernel under it; else the VM boots under TCG. The outcome is remembered in
/// the cache and the accelerator is named in the progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_accel_auto() {
    let Some(cache) = qemu_env(false) else { return };
    ensure_image(&cache, image::Variant::Docker).await;
    let tmp = tempfile::tempdir().expect("tmp");
    // a cache of its own (the image linked in), so that nothing is remembered yet
    let own_cache = tmp.path().join("cache");
    let src = image::image_dir(&cache, image::Variant::Docker);
    let dst = image::image_dir(&own_cache, image::Variant::Docker);
    std::fs::create_dir_all(&dst).expect("mkdir");
    for f in ["disk.qcow2", "vmlinuz", "initrd.img", "manifest.json"] {
        std::fs::hard_link(src.join(f), dst.join(f)).expect("link");
    }
    let s = store(&tmp.path().join("store"));
    let _guard = VmGuard(s.files().machine_dir("auto"));
    let mut o = qemu_options(&own_cache);
    o.driver_option("qemu-accel", OptionValue::String("auto".into()));
    // a pipe this process holds open, inheritable, as a test runner's would be
    let (pipe_read, pipe_write) = nix::unistd::pipe().expect("pipe");
    let t = Instant::now();
    let steps = std::sync::Mutex::new(Vec::<String>::new());
    let mut host = s
        .create("auto", o, &|step: &str| {
            say(step);
            steps.lock().expect("steps").push(step.to_string());
        })
        .await
        .unwrap_or_else(|e| panic!("create: {}", error_chain(&e)));
    let used = host.inspect().driver["AccelUsed"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    say(&format!(
        "create under auto took {:.1} s, running under {used}",
        t.elapsed().as_secs_f64()
    ));
    let memo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(own_cache.join("accel.json")).unwrap_or_default())
            .unwrap_or_default();
    let steps = steps.into_inner().expect("steps");
    let started: Vec<&String> = steps
        .iter()
        .filter(|s| s.starts_with("Starting the VM under"))
        .collect();
    assert_eq!(started.len(), 1, "{steps:#?}");
    let named = if used == "kvm" { "KVM" } else { "TCG" };
    assert!(started[0].contains(named), "{used}: {steps:#?}");
    if qemu::kvm_usable() {
        let outcome = memo["kvm"].as_str().unwrap_or_default();
        assert!(matches!(outcome, "works" | "fails"), "{memo}");
        assert_eq!(used, if outcome == "works" { "kvm" } else { "tcg" });
        assert!(
            steps
                .iter()
                .any(|s| s == "Checking whether KVM can boot a guest here"),
            "{steps:#?}"
        );
        if outcome == "fails" {
            assert!(
                !memo["reason"].as_str().unwrap_or_default().is_empty(),
                "{memo}"
            );
        }
    } else {
        assert_eq!(used, "tcg");
    }
    // QEMU (which outlives us) does not hold the pipe: whoever waits for the
    // pipe's end (a test runner, a CI agent) is not kept waiting by the VM
    let dir = s.files().machine_dir("auto");
    let pid = std::fs::read_to_string(dir.join("qemu.pid")).expect("pid");
    let link = |fd: &std::os::fd::OwnedFd| {
        std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(fd)
        ))
        .expect("our pipe")
    };
    let ours = link(&pipe_write);
    assert_eq!(ours, link(&pipe_read));
    let qemu_fds: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
        .expect("qemu fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    assert!(!qemu_fds.is_empty());
    assert!(
        !qemu_fds.contains(&ours),
        "QEMU holds the caller's pipe {}: {qemu_fds:?}",
        ours.display()
    );
    drop((pipe_read, pipe_write));
    host.kill().await.expect("kill");
    s.remove("auto", false).await.expect("rm");
}
