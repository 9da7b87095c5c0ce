//! Store behaviour against config.json fixtures in the original docker-machine
//! format, and multi-process concurrency of names, saves and locks.
//!
//! The concurrency tests start copies of this test binary (`child_process`
//! selects the child mode through environment variables), so the locks and
//! the name claims are exercised across real processes.

use machine_core::config::HostConfig;
use machine_core::store::{FileStore, StoreError};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config")
}

fn fixture(file: &str) -> Vec<u8> {
    let p = fixtures_dir().join(file);
    fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// The machine name a fixture belongs to: `Name`, else the driver's `MachineName`.
fn fixture_machine_name(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).expect("fixture is JSON");
    v.get("Name")
        .and_then(Value::as_str)
        .or_else(|| v["Driver"].get("MachineName").and_then(Value::as_str))
        .expect("fixture names its machine")
        .to_string()
}

/// Put `bytes` in place as `machines/<name>/config.json`, as the original would have.
fn install(store: &FileStore, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = store.machine_dir(name);
    fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join("config.json");
    fs::write(&p, bytes).expect("write fixture");
    p
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn v3_fixture_files() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("v3-") && n.ends_with(".json"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------- fixtures

#[test]
fn v3_fixtures_round_trip_byte_for_byte() {
    let files = v3_fixture_files();
    assert!(files.len() >= 4, "v3 fixtures missing: {files:?}");
    for file in files {
        let original = fixture(&file);
        let name = fixture_machine_name(&original);
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path());
        let path = install(&store, &name, &original);

        let config = store.load(&name).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config.name, name, "{file}");
        assert_eq!(config.config_version, 3, "{file}");
        assert_eq!(
            config.to_json().expect("encode"),
            original,
            "{file}: encoding differs"
        );

        store.save(&config).expect("save");
        let written = fs::read(&path).expect("read back");
        assert!(
            written == original,
            "{file}: save changed the bytes\n--- original\n{}\n--- written\n{}",
            String::from_utf8_lossy(&original),
            String::from_utf8_lossy(&written)
        );
        assert_eq!(mode(&path), 0o600, "{file}");
        assert!(
            !store.machine_dir(&name).join("config.json.bak").exists(),
            "{file}: a current config must not be backed up"
        );
    }
}

#[test]
fn v3_fixtures_match_the_compat_field_lists() {
    let base = [
        "IPAddress",
        "MachineName",
        "SSHUser",
        "SSHPort",
        "SSHKeyPath",
        "StorePath",
        "SwarmMaster",
        "SwarmHost",
        "SwarmDiscovery",
    ];
    let own: &[(&str, &[&str])] = &[
        ("v3-none.json", &["URL"]),
        ("v3-generic.json", &["EnginePort", "SSHKey"]),
        (
            "v3-virtualbox.json",
            &[
                "VBoxManager",
                "HostInterfaces",
                "CPU",
                "Memory",
                "DiskSize",
                "NatNicType",
                "Boot2DockerURL",
                "Boot2DockerImportVM",
                "HostDNSResolver",
                "HostOnlyCIDR",
                "HostOnlyNicType",
                "HostOnlyPromiscMode",
                "UIType",
                "HostOnlyNoDHCP",
                "NoShare",
                "DNSProxy",
                "NoVTXCheck",
                "ShareFolder",
            ],
        ),
    ];
    for (file, fields) in own {
        let v: Value = serde_json::from_slice(&fixture(file)).expect("json");
        let top: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            top,
            [
                "ConfigVersion",
                "Driver",
                "DriverName",
                "HostOptions",
                "Name"
            ],
            "{file}"
        );
        let keys: Vec<&str> = v["Driver"]
            .as_object()
            .expect("driver object")
            .keys()
            .map(String::as_str)
            .collect();
        let expected: Vec<&str> = base.iter().chain(fields.iter()).copied().collect();
        assert_eq!(keys, expected, "{file}");
        let ho: Vec<&str> = v["HostOptions"]
            .as_object()
            .expect("ho")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            ho,
            [
                "Driver",
                "Memory",
                "Disk",
                "EngineOptions",
                "SwarmOptions",
                "AuthOptions"
            ],
            "{file}"
        );
    }
}

#[test]
fn v3_fixture_details_survive_loading() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = FileStore::new(tmp.path());

    let generic = fixture("v3-generic.json");
    install(&store, "web-1", &generic);
    // Go's HTML-safe escaping is in the file, the decoded text in the model.
    let text = String::from_utf8_lossy(&generic);
    assert!(text.contains(r#""team=R\u0026D""#) && text.contains(r#""note=\u003cunset\u003e""#));
    let c = store.load("web-1").expect("load");
    let eo = &c.host_options.engine_options;
    assert_eq!(
        eo.labels.as_deref(),
        Some(&["team=R&D".to_string(), "note=<unset>".to_string()][..])
    );
    assert_eq!(eo.registry_mirror, None, "null list stays null");
    assert_eq!(eo.dns, None);
    assert_eq!(
        c.host_options.swarm_options.arbitrary_flags,
        Some(vec![]),
        "[] stays []"
    );
    assert_eq!(c.driver["EnginePort"], 2376);
    assert_eq!(c.base_driver().expect("base").ssh_user, "ubuntu");

    let unknown = fixture("v3-unknown-fields.json");
    install(&store, "build-agent.ci", &unknown);
    let c = store.load("build-agent.ci").expect("load");
    assert_eq!(c.extra["Labels"]["owner"], "platform-team");
    assert!(c.host_options.extra["UserData"]
        .as_str()
        .expect("str")
        .contains("<managed> & \u{2028}"));
    assert_eq!(
        c.host_options.engine_options.extra["DataRoot"],
        "/srv/docker"
    );
    assert_eq!(c.driver["KeepAliveSeconds"], 30);
}

// ---------------------------------------------------------------- migration

#[test]
fn old_versions_migrate_to_expected_v3_with_backup() {
    let cases = [
        ("v0-virtualbox.json", "v0-virtualbox.expected.json", "dev"),
        (
            "v0-paths-in-driver.json",
            "v0-paths-in-driver.expected.json",
            "legacy",
        ),
        ("v1-virtualbox.json", "v1-virtualbox.expected.json", "box1"),
        ("v2-generic.json", "v2-generic.expected.json", "gen2"),
    ];
    for (input, expected, name) in cases {
        let original = fixture(input);
        let expected_bytes = fixture(expected);
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path());
        let path = install(&store, name, &original);

        let config = store.load(name).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(config.config_version, 3, "{input}");
        assert_eq!(config.name, name, "{input}");

        let backup = store.machine_dir(name).join("config.json.bak");
        assert_eq!(
            fs::read(&backup).expect("backup"),
            original,
            "{input}: backup"
        );
        assert_eq!(mode(&backup), 0o600, "{input}");
        let migrated = fs::read(&path).expect("migrated");
        assert!(
            migrated == expected_bytes,
            "{input}: migrated file differs\n--- expected\n{}\n--- written\n{}",
            String::from_utf8_lossy(&expected_bytes),
            String::from_utf8_lossy(&migrated)
        );
        assert_eq!(mode(&path), 0o600, "{input}");

        // The rules, checked on the model as well as on the bytes.
        let auth = &config.host_options.auth_options;
        assert_eq!(
            auth.ca_private_key_path, "/home/user/.docker/machine/certs/ca-key.pem",
            "{input}"
        );
        assert!(!auth.extra.contains_key("PrivateKeyPath"), "{input}");
        assert_eq!(auth.cert_dir, "/home/user/.docker/machine/certs", "{input}");
        assert_eq!(
            config.driver["StorePath"], "/home/user/.docker/machine",
            "{input}"
        );
        assert!(!config.extra.contains_key("StorePath"), "{input}");
        assert!(config.host_options.engine_options.tls_verify, "{input}");
        assert_eq!(
            config.host_options.engine_options.install_url, "https://get.docker.com",
            "{input}"
        );
        if input.starts_with("v0") || input.starts_with("v1") {
            assert_eq!(auth.store_path, "/home/user/.docker/machine", "{input}");
        }

        // A second load finds version 3: nothing is rewritten.
        fs::write(&backup, b"marker").expect("mark backup");
        let again = store.load(name).expect("reload");
        assert_eq!(again, config, "{input}");
        assert_eq!(fs::read(&backup).expect("backup"), b"marker", "{input}");
        assert_eq!(fs::read(&path).expect("config"), expected_bytes, "{input}");
    }
}

#[test]
fn v0_swarm_fields_and_paths_are_moved() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = FileStore::new(tmp.path());
    install(&store, "dev", &fixture("v0-virtualbox.json"));
    let c = store.load("dev").expect("load");
    let swarm = &c.host_options.swarm_options;
    assert!(swarm.master);
    assert_eq!(swarm.discovery, "token://0123456789abcdef");
    assert_eq!(swarm.host, "tcp://0.0.0.0:3376");
    let auth = &c.host_options.auth_options;
    assert_eq!(
        auth.server_cert_path,
        "/home/user/.docker/machine/certs/server.pem"
    );
    assert_eq!(
        auth.client_key_path,
        "/home/user/.docker/machine/certs/key.pem"
    );
    for flat in [
        "CaCertPath",
        "PrivateKeyPath",
        "SwarmMaster",
        "ClientKeyPath",
        "StorePath",
    ] {
        assert!(!c.extra.contains_key(flat), "{flat} left at the top level");
    }
}

#[test]
fn version_from_the_future_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = FileStore::new(tmp.path());
    let original = fixture("v4-future.json");
    let path = install(&store, "future", &original);
    match store.load("future") {
        Err(e @ StoreError::FromTheFuture { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("\"future\"") && msg.contains('4'), "{msg}");
            assert!(
                matches!(e, StoreError::FromTheFuture { ref name, version: 4 } if name == "future")
            );
        }
        other => panic!("expected FromTheFuture, got {other:?}"),
    }
    assert_eq!(fs::read(&path).expect("read"), original);
    assert!(!store.machine_dir("future").join("config.json.bak").exists());
}

// ---------------------------------------------------------------- broken machines

#[test]
fn broken_machines_are_listed_with_their_own_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = FileStore::new(tmp.path());
    let good = fixture("v3-generic.json");
    install(&store, "web-1", &good);
    install(&store, "truncated", &good[..good.len() / 2]);
    install(&store, "empty", b"");
    install(&store, "not-an-object", b"[1, 2]");
    install(&store, "future", &fixture("v4-future.json"));
    install(&store, "Zeta", &fixture("v3-none.json"));
    // Tests may run as root, which reads any file: a directory where the
    // config file should be gives a real I/O error instead.
    fs::create_dir_all(store.machine_dir("unreadable").join("config.json")).expect("mkdir");
    fs::create_dir_all(store.machine_dir("no-config")).expect("mkdir");

    let all = store
        .load_all()
        .expect("listing never fails for one machine");
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "empty",
            "future",
            "no-config",
            "not-an-object",
            "truncated",
            "unreadable",
            "web-1",
            "Zeta"
        ]
    );
    for (name, result) in &all {
        match (name.as_str(), result) {
            ("web-1", Ok(c)) => assert_eq!(c.driver_name, "generic"),
            ("Zeta", Ok(c)) => {
                assert_eq!(c.name, "Zeta", "the directory name wins");
                assert_eq!(c.driver_name, "none");
            }
            (
                "truncated" | "empty" | "not-an-object",
                Err(StoreError::Corrupt { name: n, path, .. }),
            ) => {
                assert_eq!(n, name);
                assert_eq!(path, &store.config_path(name));
            }
            ("future", Err(StoreError::FromTheFuture { version: 4, .. })) => {}
            ("unreadable" | "no-config", Err(StoreError::Io { path, .. })) => {
                assert_eq!(path, &store.config_path(name));
            }
            (n, r) => panic!("{n}: unexpected {r:?}"),
        }
    }
    let msg = store
        .load("truncated")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("truncated") && msg.contains("config.json"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- names and layout

#[test]
fn names_skip_dot_entries_and_sort_case_insensitively() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = FileStore::new(tmp.path());
    assert!(store.names().expect("no machines dir").is_empty());
    for d in [
        "beta",
        "Alpha",
        "alpha2",
        ".hidden",
        ".tmp-123",
        "Gamma",
        "delta",
        "has space",
    ] {
        fs::create_dir_all(store.machine_dir(d)).expect("mkdir");
    }
    fs::write(store.machines_dir().join("zeta"), b"a file, not a machine").expect("file");
    let _lock = store.lock_machine("beta").expect("lock");
    assert_eq!(
        store.names().expect("names"),
        ["Alpha", "alpha2", "beta", "delta", "Gamma", "has space"]
    );
    match store.load("has space") {
        Err(StoreError::InvalidName { name }) => assert_eq!(name, "has space"),
        other => panic!("{other:?}"),
    }
    match FileStore::validate_name("has space") {
        Err(e @ StoreError::InvalidName { .. }) => assert!(e.to_string().contains("has space")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_created_store_has_the_compat_layout_and_modes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("machine");
    let store = FileStore::new(&root);
    let config = HostConfig::new("m1", "generic", &root);
    store.create(&config).expect("create");

    let path = root.join("machines").join("m1").join("config.json");
    assert_eq!(store.config_path("m1"), path);
    let bytes = fs::read(&path).expect("config.json");
    assert!(bytes.starts_with(b"{\n    \"ConfigVersion\": 3,\n    \"Driver\": "));
    assert!(bytes.ends_with(b"\n}"), "no trailing newline, like Go");
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(v["Name"], "m1");
    assert_eq!(
        v["HostOptions"]["AuthOptions"]["StorePath"],
        root.join("machines/m1").to_string_lossy().as_ref()
    );
    for dir in [
        root.clone(),
        root.join("machines"),
        root.join("machines/m1"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&path), 0o600);
    let entries: Vec<_> = fs::read_dir(root.join("machines/m1"))
        .expect("ls")
        .collect();
    assert_eq!(entries.len(), 1, "no temporary files left");
    assert_eq!(store.names().expect("names"), ["m1"]);

    // A save restores 0600 even if the file was loosened meanwhile.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    store.save(&config).expect("save");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::read(&path).expect("read"), bytes);
}

// ---------------------------------------------------------------- multi-process

const CHILD_MODE: &str = "MACHINE_STORE_TEST_CHILD";
const CHILD_ROOT: &str = "MACHINE_STORE_TEST_ROOT";
const CHILD_ID: &str = "MACHINE_STORE_TEST_ID";
const CHILD_ITERS: &str = "MACHINE_STORE_TEST_ITERS";

const EXIT_OK: i32 = 0;
const EXIT_FAILED: i32 = 1;
const EXIT_ALREADY_EXISTS: i32 = 3;

fn env_var(key: &str) -> String {
    std::env::var(key).unwrap_or_default()
}

fn go_file(root: &Path) -> PathBuf {
    root.join("go")
}

fn stop_file(root: &Path) -> PathBuf {
    root.join("stop")
}

/// Wait until the parent has started every child, so they start together.
fn wait_for(path: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(format!("{} never appeared", path.display()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Entry point of the child processes; not a test of its own (ignored in a
/// normal run, run with `--ignored`).
#[test]
#[ignore = "entry point of child processes"]
fn child_process() {
    let mode = env_var(CHILD_MODE);
    if mode.is_empty() {
        return;
    }
    let root = PathBuf::from(env_var(CHILD_ROOT));
    let id: u64 = env_var(CHILD_ID).parse().unwrap_or(0);
    let iters: u64 = env_var(CHILD_ITERS).parse().unwrap_or(1);
    let store = FileStore::new(&root);
    let result = wait_for(&go_file(&root)).and_then(|()| match mode.as_str() {
        "create" => child_create(&store, id),
        "writer" => child_writer(&store, id, iters),
        "reader" => child_reader(&store),
        "counter" => child_counter(&store, iters),
        other => Err(format!("unknown child mode {other}")),
    });
    let code = match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("child {mode} {id}: {msg}");
            EXIT_FAILED
        }
    };
    std::process::exit(code);
}

fn child_create(store: &FileStore, id: u64) -> Result<i32, String> {
    let mut config = HostConfig::new("contested", "none", store.root());
    config.driver.insert("Creator".into(), Value::from(id));
    match store.create(&config) {
        Ok(()) => Ok(EXIT_OK),
        Err(StoreError::AlreadyExists { name }) if name == "contested" => Ok(EXIT_ALREADY_EXISTS),
        Err(e) => Err(format!("create: {e:?}")),
    }
}

/// Large, self-checking content: a torn or mixed file cannot pass `check_content`.
fn padding(writer: u64, seq: u64) -> String {
    let c = char::from(b'a' + ((writer * 7 + seq) % 26) as u8);
    std::iter::repeat_n(c, 65_536 + (seq as usize % 97)).collect()
}

fn check_content(c: &HostConfig) -> Result<(), String> {
    let Some(writer) = c.driver.get("Writer").and_then(Value::as_u64) else {
        return Ok(()); // the initial config
    };
    let seq = c
        .driver
        .get("Seq")
        .and_then(Value::as_u64)
        .ok_or("Seq missing")?;
    let pad = c
        .driver
        .get("Padding")
        .and_then(Value::as_str)
        .ok_or("Padding missing")?;
    if pad != padding(writer, seq) {
        return Err(format!("padding does not match writer {writer} seq {seq}"));
    }
    Ok(())
}

fn child_writer(store: &FileStore, id: u64, iters: u64) -> Result<i32, String> {
    for seq in 0..iters {
        let _lock = store
            .lock_machine("shared")
            .map_err(|e| format!("lock: {e:?}"))?;
        let mut c = store.load("shared").map_err(|e| format!("load: {e:?}"))?;
        check_content(&c)?;
        let count = c.driver.get("Counter").and_then(Value::as_u64).unwrap_or(0);
        c.driver.insert("Counter".into(), Value::from(count + 1));
        c.driver.insert("Writer".into(), Value::from(id));
        c.driver.insert("Seq".into(), Value::from(seq));
        c.driver
            .insert("Padding".into(), Value::from(padding(id, seq)));
        store.save(&c).map_err(|e| format!("save: {e:?}"))?;
    }
    Ok(EXIT_OK)
}

fn child_reader(store: &FileStore) -> Result<i32, String> {
    let stop = stop_file(store.root());
    let mut loads = 0u64;
    loop {
        let done = stop.exists();
        let c = store
            .load("shared")
            .map_err(|e| format!("load #{loads}: {e:?}"))?;
        check_content(&c).map_err(|e| format!("load #{loads}: {e}"))?;
        loads += 1;
        if done {
            break;
        }
    }
    eprintln!("reader: {loads} consistent loads");
    Ok(EXIT_OK)
}

fn child_counter(store: &FileStore, iters: u64) -> Result<i32, String> {
    let path = store.root().join("counter");
    for _ in 0..iters {
        let _lock = store.lock_store().map_err(|e| format!("lock: {e:?}"))?;
        let n: u64 = match fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse()
                .map_err(|e| format!("counter {s:?}: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("read counter: {e}")),
        };
        std::thread::yield_now();
        // A plain, non-atomic write: only the lock keeps the increments apart.
        fs::write(&path, format!("{}", n + 1)).map_err(|e| format!("write counter: {e}"))?;
    }
    Ok(EXIT_OK)
}

fn spawn_child(mode: &str, root: &Path, id: u64, iters: u64) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "--ignored",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_ROOT, root)
        .env(CHILD_ID, id.to_string())
        .env(CHILD_ITERS, iters.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child")
}

fn describe(out: &Output) -> String {
    format!("{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr))
}

#[test]
fn concurrent_creates_of_one_name_have_exactly_one_winner() {
    const N: u64 = 8;
    for round in 0..3 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let children: Vec<_> = (0..N)
            .map(|id| spawn_child("create", &root, id, 1))
            .collect();
        fs::write(go_file(&root), b"").expect("go");
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait"))
            .collect();
        let winners: Vec<u64> = (0..N)
            .filter(|&i| outputs[i as usize].status.code() == Some(EXIT_OK))
            .collect();
        let losers = outputs
            .iter()
            .filter(|o| o.status.code() == Some(EXIT_ALREADY_EXISTS))
            .count();
        let all: Vec<String> = outputs.iter().map(describe).collect();
        assert_eq!(winners.len(), 1, "round {round}: {all:#?}");
        assert_eq!(losers as u64, N - 1, "round {round}: {all:#?}");

        let store = FileStore::new(&root);
        let c = store.load("contested").expect("winner's config loads");
        assert_eq!(
            c.driver["Creator"], winners[0],
            "round {round}: the winner's config is the one on disk"
        );
        assert_eq!(store.names().expect("names"), ["contested"]);
    }
}

#[test]
fn concurrent_locked_saves_never_show_a_torn_file() {
    const WRITERS: u64 = 4;
    const READERS: u64 = 3;
    const ITERS: u64 = 40;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let store = FileStore::new(&root);
    store
        .create(&HostConfig::new("shared", "none", &root))
        .expect("create");

    let writers: Vec<_> = (0..WRITERS)
        .map(|id| spawn_child("writer", &root, id, ITERS))
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|id| spawn_child("reader", &root, 100 + id, 0))
        .collect();
    fs::write(go_file(&root), b"").expect("go");
    for w in writers {
        let out = w.wait_with_output().expect("wait writer");
        assert!(out.status.success(), "writer: {}", describe(&out));
    }
    fs::write(stop_file(&root), b"").expect("stop");
    for r in readers {
        let out = r.wait_with_output().expect("wait reader");
        assert!(out.status.success(), "reader: {}", describe(&out));
    }

    let c = store.load("shared").expect("final load");
    assert_eq!(
        c.driver["Counter"],
        WRITERS * ITERS,
        "every locked read-modify-write counted once"
    );
    let leftovers: Vec<_> = fs::read_dir(store.machine_dir("shared"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["config.json"], "no temporary files left");
}

#[test]
fn store_lock_makes_read_modify_write_exclusive() {
    const PROCS: u64 = 6;
    const ITERS: u64 = 40;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let children: Vec<_> = (0..PROCS)
        .map(|id| spawn_child("counter", &root, id, ITERS))
        .collect();
    fs::write(go_file(&root), b"").expect("go");
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "counter: {}", describe(&out));
    }
    let n: u64 = fs::read_to_string(root.join("counter"))
        .expect("counter")
        .parse()
        .expect("number");
    assert_eq!(n, PROCS * ITERS);
}
