//! End-to-end bench of the qemu driver: create to Docker ready, split into the
//! VM's boot (QEMU start until the guest's SSH server answers) and provisioning
//! (SSH, certificates, daemon configuration, daemon start, TLS check), with the
//! daemon's own start inside the guest shown apart; then the memory and CPU of
//! the idle VM, and stop and start times.
//!
//! ```text
//! MACHINE_QEMU_CACHE=DIR MACHINE_QEMU_ACCEL=tcg cargo run -p benches --bin bench_qemu -- [ROUNDS]
//! ```
//! The image is built into the cache first when missing (needs root and
//! debootstrap). Prints one line per measurement and a JSON summary.

use machine_core::driver::OptionValue;
use machine_core::host::{error_chain, CreateOptions};
use machine_core::store::FileStore;
use machine_core::{State, Store};
use machine_drivers::qemu::image;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// (resident MiB, CPU seconds used) of a process.
fn rss_and_cpu(pid: i32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((kib / 1024.0, ticks / 100.0))
}

fn pid_of(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let cache = std::env::var_os("MACHINE_QEMU_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("machine-qemu-cache"));
    let accel = std::env::var("MACHINE_QEMU_ACCEL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tcg".into());
    let t = Instant::now();
    let dir = image::ensure_built(&cache, image::Variant::Docker, &|s: &str| {
        eprintln!("image: {s}")
    })
    .await
    .unwrap_or_else(|e| panic!("image: {}", error_chain(&e)));
    let manifest = image::manifest(&dir).unwrap_or_default();
    println!(
        "image: {} ({} MiB compressed, built in {} s; ready after {:.1} s)",
        dir.display(),
        manifest["disk_bytes"].as_u64().unwrap_or(0) / (1024 * 1024),
        manifest["build_seconds"],
        t.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    for round in 0..rounds {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = Store::new(
            FileStore::new(tmp.path().join("store")),
            machine_drivers::builtin_registry(),
        );
        let name = format!("bench{round}");
        let mut o = CreateOptions::new("qemu");
        o.use_environment = false;
        o.driver_option(
            "qemu-cache-dir",
            OptionValue::String(cache.display().to_string()),
        )
        .driver_option("qemu-accel", OptionValue::String(accel.clone()))
        .driver_option("qemu-boot-timeout", OptionValue::Int(900))
        .driver_option("qemu-network", OptionValue::String("restricted".into()));
        let marks: Mutex<Vec<(Instant, String)>> = Mutex::new(Vec::new());
        let started = Instant::now();
        let created = s
            .create(&name, o, &|step: &str| {
                marks
                    .lock()
                    .expect("marks")
                    .push((Instant::now(), step.to_string()));
            })
            .await;
        let total = started.elapsed();
        let mdir = s.files().machine_dir(&name);
        let mut host = match created {
            Ok(h) => h,
            Err(e) => {
                if let Some(pid) = pid_of(&mdir) {
                    let _ = std::process::Command::new("kill")
                        .arg("-9")
                        .arg(pid.to_string())
                        .status();
                }
                panic!("create: {}", error_chain(&e));
            }
        };
        let marks = marks.into_inner().expect("marks");
        let at = |step: &str| {
            marks
                .iter()
                .find(|(_, s)| s.starts_with(step))
                .map(|(t, _)| *t)
        };
        let boot_end = at("Waiting for the machine to be running").unwrap_or(started);
        let boot_start = at("Creating machine").unwrap_or(started);
        let docker_start = at("Starting Docker");
        let docker_wait = at("Waiting for the Docker daemon");
        let boot = boot_end - boot_start;
        let provisioning = total - (boot_end - started);
        let daemon_start = match (docker_start, docker_wait) {
            (Some(a), Some(b)) => b - a,
            _ => Duration::ZERO,
        };
        let ours = provisioning.saturating_sub(daemon_start);
        println!(
            "round {round}: create {:.1} s = boot {:.1} s + provisioning {:.1} s (daemon start in the guest {:.1} s, the rest {:.1} s)",
            secs(total),
            secs(boot),
            secs(provisioning),
            secs(daemon_start),
            secs(ours)
        );

        // idle VM: memory and CPU over 20 s
        tokio::time::sleep(Duration::from_secs(10)).await;
        let pid = pid_of(&mdir).expect("pid");
        let (rss0, cpu0) = rss_and_cpu(pid).expect("proc");
        tokio::time::sleep(Duration::from_secs(20)).await;
        let (rss, cpu1) = rss_and_cpu(pid).expect("proc");
        let idle_cpu = (cpu1 - cpu0) / 20.0 * 100.0;
        println!("round {round}: idle qemu RSS {rss:.0} MiB (was {rss0:.0} MiB), idle CPU {idle_cpu:.0}% of one core");

        let t = Instant::now();
        host.stop().await.expect("stop");
        let stop = t.elapsed();
        assert_eq!(host.state().await.expect("state"), State::Stopped);
        let t = Instant::now();
        host.start().await.expect("start");
        let start_ssh = t.elapsed();
        let host = s.get(&name).expect("get");
        loop {
            if host.docker_version(Duration::from_secs(10)).await.is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "docker did not answer after start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let start_docker = t.elapsed();
        println!(
            "round {round}: stop {:.1} s; start {:.1} s to SSH, {:.1} s to Docker answering",
            secs(stop),
            secs(start_ssh),
            secs(start_docker)
        );
        s.remove(&name, true).await.expect("rm");
        results.push(serde_json::json!({
            "accel": accel,
            "create_s": secs(total),
            "boot_s": secs(boot),
            "provisioning_s": secs(provisioning),
            "daemon_start_in_guest_s": secs(daemon_start),
            "provisioning_without_daemon_start_s": secs(ours),
            "idle_rss_mib": rss.round(),
            "idle_cpu_percent": idle_cpu.round(),
            "stop_s": secs(stop),
            "start_to_ssh_s": secs(start_ssh),
            "start_to_docker_s": secs(start_docker),
        }));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&results).unwrap_or_default()
    );
}
