//! The inventory driver example, registered by the program and used end to
//! end on a test host (index 8 of `MT_HOSTS`, suite `examples` of
//! test-support/hosts.json; see scripts/testhosts.sh).

use machine_test_support::test_hosts::{for_suite, Suite};
use std::process::Command;

#[test]
fn inventory_driver_creates_a_working_machine() {
    let Some(hosts) = for_suite(Suite::Examples) else {
        return;
    };
    let ip = hosts.addr(8);
    let key = hosts.key().display().to_string();
    let tmp = tempfile::tempdir().expect("tmp");
    let inv = tmp.path().join("inventory.json");
    std::fs::write(
        &inv,
        serde_json::json!({ "fleet-1": { "address": ip, "user": "root", "key": key } }).to_string(),
    )
    .expect("inventory");
    let exe = env!("CARGO_BIN_EXE_inventory_driver");
    let out = Command::new(exe)
        .arg(tmp.path().join("store"))
        .arg(&inv)
        .arg("fleet-1")
        .args(["bridge=none", "iptables=false", "ip6tables=false"])
        .output()
        .expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with(&format!("tcp://{ip}:2376 ")), "{stdout}");
    let cfg = std::fs::read_to_string(tmp.path().join("store/machines/fleet-1/config.json"))
        .expect("config");
    assert!(cfg.contains("\"DriverName\": \"inventory\""), "{cfg}");

    // a machine not in the inventory: the error names the flag and the machine
    let out = Command::new(exe)
        .arg(tmp.path().join("store"))
        .arg(&inv)
        .arg("fleet-2")
        .output()
        .expect("run example");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("inventory-file") && err.contains("fleet-2"),
        "{err}"
    );
}
