//! Many `machine` processes on one store at once: 50 concurrent `create -d
//! none` into a store that has no CA yet, then 50 concurrent `rm`. Every
//! machine is created exactly once with its configuration and certificates,
//! the CA is made once, and every removal goes through: nothing is lost,
//! nothing is left behind. Needs no test host (the machines point at a
//! closed port on 127.0.0.1).

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const N: usize = 50;

fn machine(store: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.env("MACHINE_STORAGE_PATH", store)
        .env_remove("MACHINE_DRIVER")
        .env_remove("DOCKER_HOST")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn wait_all(children: Vec<(String, Child)>) {
    for (name, child) in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{name}: {:?}\n{}{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

fn listed(store: &Path) -> Vec<String> {
    let out = machine(store, &["ls", "-q"]).output().expect("ls -q");
    let mut names: Vec<String> = ok(&out).lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn fifty_concurrent_creates_and_removes_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let url = format!("tcp://127.0.0.1:{}", closed_port());
    let mut names: Vec<String> = (0..N).map(|i| format!("m{i:02}")).collect();
    names.sort();

    let children = names
        .iter()
        .map(|n| {
            let child = machine(&store, &["create", "-d", "none", "--url", &url, n])
                .spawn()
                .expect("spawn create");
            (n.clone(), child)
        })
        .collect();
    wait_all(children);

    assert_eq!(listed(&store), names);
    let ca = std::fs::read(store.join("certs/ca.pem")).expect("ca.pem");
    for n in &names {
        let dir = store.join("machines").join(n);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config"))
                .expect("config.json is JSON");
        assert_eq!(cfg["Name"], n.as_str());
        assert_eq!(cfg["DriverName"], "none");
        assert_eq!(cfg["Driver"]["URL"], url.as_str());
        // every machine carries the one CA the store made
        assert_eq!(
            std::fs::read(dir.join("ca.pem")).expect("machine ca.pem"),
            ca
        );
        assert!(dir.join("cert.pem").is_file() && dir.join("key.pem").is_file());
    }
    // the listing with columns that need no daemon answers for all of them
    let out = machine(&store, &["ls", "--format", "{{.Name}} {{.DriverName}}"])
        .output()
        .expect("ls");
    let mut rows: Vec<String> = ok(&out).lines().map(str::to_string).collect();
    rows.sort();
    let want: Vec<String> = names.iter().map(|n| format!("{n} none")).collect();
    assert_eq!(rows, want);

    let children = names
        .iter()
        .map(|n| {
            let child = machine(&store, &["rm", "-y", n]).spawn().expect("spawn rm");
            (n.clone(), child)
        })
        .collect();
    wait_all(children);

    assert!(listed(&store).is_empty());
    let left: Vec<String> = std::fs::read_dir(store.join("machines"))
        .expect("machines dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
