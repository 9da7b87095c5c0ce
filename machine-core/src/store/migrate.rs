//! Migration of `config.json` documents written by older docker-machine
//! releases (config versions 0, 1 and 2) to version 3.
//!
//! The migrations work on the parsed JSON object so that fields this crate does
//! not know survive them; fields a step consumes (the flat version-0 paths, the
//! top-level `StorePath` of versions 1 and 2, `AuthOptions.PrivateKeyPath`) are
//! replaced by their new form. Each step follows the original's rules:
//!
//! - **0 → 1**: the flat layout gets a `HostOptions` object. `EngineOptions` is
//!   built with TLS verification on and the default install URL, `SwarmOptions`
//!   from the flat `SwarmDiscovery`, `SwarmHost` and `SwarmMaster` fields, and
//!   `AuthOptions` (in its version-1 form) from the flat certificate paths. A path
//!   or swarm field missing at the top level is taken from an early
//!   `HostOptions` object if the file has one, else from the driver object,
//!   where the earliest releases kept some of them (the original leaves such
//!   fields empty).
//! - **1 → 2**: `AuthOptions.PrivateKeyPath` becomes `CaPrivateKeyPath`;
//!   `CertDir` (`<store>/certs`) and `StorePath` (`<store>`) are added, `<store>`
//!   being two directories above the machine directory recorded in the
//!   top-level `StorePath`; `Name` is taken from the driver's `MachineName`.
//! - **2 → 3**: the driver object's `StorePath` is set to `<store>`.
//!
//! The version-0 `StorePath` is carried into version 1, so `<store>` is
//! derived from it; the original drops it at that step and ends up with `.`.
//! Where a file records no machine directory at all, the directory the file
//! is being loaded from is used. The store sets `Name` to the machine's
//! directory name after migrating, as the original does.

use crate::config::{EngineOptions, SwarmOptions, CONFIG_VERSION, DEFAULT_INSTALL_URL};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::path::Path;

type Object = Map<String, Value>;

/// The flat version-0 certificate path fields; version 1 keeps them, under
/// the same names, in `AuthOptions`.
const V0_AUTH_PATHS: [&str; 6] = [
    "CaCertPath",
    "ServerCertPath",
    "ServerKeyPath",
    "ClientKeyPath",
    "PrivateKeyPath",
    "ClientCertPath",
];

/// `AuthOptions` fields copied unchanged from version 1 to version 2.
const V1_AUTH_KEPT: [&str; 8] = [
    "CaCertPath",
    "CaCertRemotePath",
    "ServerCertPath",
    "ServerKeyPath",
    "ClientKeyPath",
    "ServerCertRemotePath",
    "ServerKeyRemotePath",
    "ClientCertPath",
];

/// Driver base fields that precede `StorePath`, in their written order.
const FIELDS_BEFORE_STORE_PATH: [&str; 5] = [
    "IPAddress",
    "MachineName",
    "SSHUser",
    "SSHPort",
    "SSHKeyPath",
];

/// The `ConfigVersion` of a parsed document; a missing or `null` version is 0.
pub(crate) fn config_version(doc: &Object) -> Result<u32, serde_json::Error> {
    match doc.get("ConfigVersion") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => u32::deserialize(v),
    }
}

/// Migrate `doc`, which has config version `from` (below 3), to version 3.
/// `store_root` is the store the document is loaded from; it stands in for a
/// store path the document does not record.
pub(crate) fn migrate(
    mut doc: Object,
    from: u32,
    store_root: &Path,
) -> Result<Object, serde_json::Error> {
    let root = store_root.to_string_lossy().into_owned();
    let mut version = from;
    while version < CONFIG_VERSION {
        doc = match version {
            0 => v0_to_v1(doc)?,
            1 => v1_to_v2(doc, &root)?,
            _ => v2_to_v3(doc, &root)?,
        };
        version += 1;
    }
    Ok(doc)
}

fn v0_to_v1(mut doc: Object) -> Result<Object, serde_json::Error> {
    let driver = take_object(&mut doc, "Driver")?;
    let driver_name = take_string(&mut doc, "DriverName")?;
    doc.shift_remove("ConfigVersion");
    // Some version-0 files carry an early HostOptions object. The original
    // replaces it; here it only fills in values the flat fields lack.
    let old_options = take_object(&mut doc, "HostOptions")?;
    let old_auth = get_object(&old_options, "AuthOptions");
    let old_swarm = get_object(&old_options, "SwarmOptions");

    let store_path = first_string([
        doc.shift_remove("StorePath").as_ref(),
        old_auth.get("StorePath"),
    ])?;
    let mut auth = Object::new();
    auth.insert("StorePath".into(), Value::from(store_path.clone()));
    for key in V0_AUTH_PATHS {
        let top = doc.shift_remove(key);
        let v = first_string([top.as_ref(), old_auth.get(key), driver.get(key)])?;
        auth.insert(key.into(), Value::from(v));
    }
    auth.insert("CaCertRemotePath".into(), Value::from(""));
    auth.insert("ServerCertRemotePath".into(), Value::from(""));
    auth.insert("ServerKeyRemotePath".into(), Value::from(""));

    let discovery = doc.shift_remove("SwarmDiscovery");
    let host = doc.shift_remove("SwarmHost");
    let master = doc.shift_remove("SwarmMaster");
    let swarm = SwarmOptions {
        is_swarm: false,
        address: String::new(),
        discovery: first_string([
            discovery.as_ref(),
            old_swarm.get("Discovery"),
            driver.get("SwarmDiscovery"),
        ])?,
        agent: false,
        master: first_bool([
            master.as_ref(),
            old_swarm.get("Master"),
            driver.get("SwarmMaster"),
        ])?,
        host: first_string([
            host.as_ref(),
            old_swarm.get("Host"),
            driver.get("SwarmHost"),
        ])?,
        image: String::new(),
        strategy: String::new(),
        heartbeat: 0,
        overcommit: Number::from(0),
        arbitrary_flags: None,
        arbitrary_join_flags: None,
        env: None,
        is_experimental: false,
        extra: Object::new(),
    };
    let engine = EngineOptions {
        arbitrary_flags: None,
        dns: None,
        graph_dir: String::new(),
        env: None,
        ipv6: false,
        insecure_registry: None,
        labels: None,
        log_level: String::new(),
        storage_driver: String::new(),
        selinux_enabled: false,
        tls_verify: true,
        registry_mirror: None,
        install_url: DEFAULT_INSTALL_URL.to_string(),
        extra: Object::new(),
    };

    let mut host_options = Object::new();
    host_options.insert("Driver".into(), Value::from(""));
    host_options.insert("Memory".into(), Value::from(0));
    host_options.insert("Disk".into(), Value::from(0));
    host_options.insert("EngineOptions".into(), serde_json::to_value(engine)?);
    host_options.insert("SwarmOptions".into(), serde_json::to_value(swarm)?);
    host_options.insert("AuthOptions".into(), Value::Object(auth));

    let mut out = Object::new();
    out.insert("ConfigVersion".into(), Value::from(1));
    out.insert("Driver".into(), Value::Object(driver));
    out.insert("DriverName".into(), Value::from(driver_name));
    out.insert("HostOptions".into(), Value::Object(host_options));
    out.insert("StorePath".into(), Value::from(store_path));
    append_rest(&mut out, doc);
    Ok(out)
}

fn v1_to_v2(mut doc: Object, root: &str) -> Result<Object, serde_json::Error> {
    let driver = take_object(&mut doc, "Driver")?;
    let driver_name = take_string(&mut doc, "DriverName")?;
    doc.shift_remove("ConfigVersion");
    let mut store_path = take_string(&mut doc, "StorePath")?;
    let mut host_options = take_object(&mut doc, "HostOptions")?;
    let mut old_auth = take_object(&mut host_options, "AuthOptions")?;

    // Version 1 also kept the machine directory in AuthOptions.StorePath.
    let old_auth_store = take_string(&mut old_auth, "StorePath")?;
    if store_path.is_empty() {
        store_path = old_auth_store;
    }
    let global = store_root_of(&store_path).unwrap_or_else(|| root.to_string());
    let ca_key = take_string(&mut old_auth, "PrivateKeyPath")?;

    let mut auth = Object::new();
    auth.insert(
        "CertDir".into(),
        Value::from(
            Path::new(&global)
                .join("certs")
                .to_string_lossy()
                .into_owned(),
        ),
    );
    auth.insert("CaPrivateKeyPath".into(), Value::from(ca_key));
    for k in V1_AUTH_KEPT {
        let v = take_string(&mut old_auth, k)?;
        auth.insert(k.into(), Value::from(v));
    }
    auth.insert("StorePath".into(), Value::from(global));
    append_rest(&mut auth, old_auth);
    host_options.insert("AuthOptions".into(), Value::Object(auth));

    let name = get_string(&driver, "MachineName")?;

    let mut out = Object::new();
    out.insert("ConfigVersion".into(), Value::from(2));
    out.insert("Driver".into(), Value::Object(driver));
    out.insert("DriverName".into(), Value::from(driver_name));
    out.insert("HostOptions".into(), Value::Object(host_options));
    out.insert("Name".into(), Value::from(name));
    out.insert("StorePath".into(), Value::from(store_path));
    append_rest(&mut out, doc);
    Ok(out)
}

fn v2_to_v3(mut doc: Object, root: &str) -> Result<Object, serde_json::Error> {
    doc.shift_remove("ConfigVersion");
    let store_path = take_string(&mut doc, "StorePath")?;
    let global = store_root_of(&store_path).unwrap_or_else(|| root.to_string());
    let mut driver = take_object(&mut doc, "Driver")?;
    set_driver_store_path(&mut driver, Value::from(global));

    let mut out = Object::new();
    out.insert("ConfigVersion".into(), Value::from(3));
    out.insert("Driver".into(), Value::Object(driver));
    append_rest(&mut out, doc);
    Ok(out)
}

/// Set `StorePath` in a driver object: in place if present, else right after
/// the base fields that precede it, so the base fields keep their order.
fn set_driver_store_path(driver: &mut Object, value: Value) {
    if let Some(slot) = driver.get_mut("StorePath") {
        *slot = value;
        return;
    }
    let index = driver
        .keys()
        .enumerate()
        .filter(|(_, k)| FIELDS_BEFORE_STORE_PATH.contains(&k.as_str()))
        .map(|(i, _)| i + 1)
        .max()
        .unwrap_or(0);
    driver.shift_insert(index, "StorePath".into(), value);
}

/// The store directory two levels above a machine directory
/// (`<store>/machines/<name>`), or `None` for an empty or too short path.
fn store_root_of(machine_dir: &str) -> Option<String> {
    if machine_dir.is_empty() {
        return None;
    }
    let root = Path::new(machine_dir).parent()?.parent()?;
    if root.as_os_str().is_empty() {
        return None;
    }
    Some(root.to_string_lossy().into_owned())
}

/// Move the entries of `rest` to the end of `out`, keeping their order and
/// never overwriting an entry `out` already has.
fn append_rest(out: &mut Object, rest: Object) {
    for (k, v) in rest {
        if !out.contains_key(&k) {
            out.insert(k, v);
        }
    }
}

fn take_object(doc: &mut Object, key: &str) -> Result<Object, serde_json::Error> {
    match doc.shift_remove(key) {
        None | Some(Value::Null) => Ok(Object::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => serde_json::from_value(other),
    }
}

fn take_string(doc: &mut Object, key: &str) -> Result<String, serde_json::Error> {
    match doc.shift_remove(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(v) => serde_json::from_value(v),
    }
}

fn get_string(doc: &Object, key: &str) -> Result<String, serde_json::Error> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(v) => String::deserialize(v),
    }
}

/// The object under `key`, or an empty one if it is missing or not an object.
fn get_object(doc: &Object, key: &str) -> Object {
    match doc.get(key) {
        Some(Value::Object(m)) => m.clone(),
        _ => Object::new(),
    }
}

/// The first non-empty string among `sources` (missing and `null` skipped);
/// empty if there is none. A present value that is not a string is an error.
fn first_string<const N: usize>(sources: [Option<&Value>; N]) -> Result<String, serde_json::Error> {
    for v in sources.into_iter().flatten() {
        if v.is_null() {
            continue;
        }
        let s = String::deserialize(v)?;
        if !s.is_empty() {
            return Ok(s);
        }
    }
    Ok(String::new())
}

/// The first boolean present among `sources` (missing and `null` skipped);
/// `false` if there is none.
fn first_bool<const N: usize>(sources: [Option<&Value>; N]) -> Result<bool, serde_json::Error> {
    match sources.into_iter().flatten().find(|v| !v.is_null()) {
        Some(v) => bool::deserialize(v),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(m) => m,
            _ => Object::new(),
        }
    }

    #[test]
    fn version_missing_is_zero_and_bad_version_is_an_error() {
        assert_eq!(config_version(&obj(json!({}))).ok(), Some(0));
        assert_eq!(
            config_version(&obj(json!({"ConfigVersion": null}))).ok(),
            Some(0)
        );
        assert_eq!(
            config_version(&obj(json!({"ConfigVersion": 2}))).ok(),
            Some(2)
        );
        assert!(config_version(&obj(json!({"ConfigVersion": -1}))).is_err());
        assert!(config_version(&obj(json!({"ConfigVersion": "3"}))).is_err());
    }

    #[test]
    fn store_path_inserted_after_preceding_base_fields() {
        let mut d = obj(json!({"IPAddress": "", "MachineName": "m", "SSHPort": 22, "CPU": 1}));
        set_driver_store_path(&mut d, Value::from("/s"));
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["IPAddress", "MachineName", "SSHPort", "StorePath", "CPU"]
        );

        let mut d = obj(json!({"CPU": 1, "StorePath": "old", "X": 2}));
        set_driver_store_path(&mut d, Value::from("/s"));
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(keys, ["CPU", "StorePath", "X"]);
        assert_eq!(d["StorePath"], "/s");

        let mut d = obj(json!({"CPU": 1}));
        set_driver_store_path(&mut d, Value::from("/s"));
        assert_eq!(d.keys().next().map(String::as_str), Some("StorePath"));
    }

    #[test]
    fn store_root_is_two_levels_up() {
        assert_eq!(
            store_root_of("/h/.docker/machine/machines/a").as_deref(),
            Some("/h/.docker/machine")
        );
        assert_eq!(store_root_of(""), None);
        assert_eq!(store_root_of("a"), None);
        assert_eq!(store_root_of("/a"), None);
    }

    #[test]
    fn v1_to_v3_renames_private_key_and_keeps_unknown_fields() {
        let doc = obj(json!({
            "ConfigVersion": 1,
            "Driver": {"MachineName": "m1", "Future": true},
            "DriverName": "generic",
            "HostOptions": {
                "AuthOptions": {
                    "StorePath": "/s/machines/m1",
                    "PrivateKeyPath": "/s/certs/ca-key.pem",
                    "Odd": 1
                },
                "Unknown": "kept"
            },
            "StorePath": "/s/machines/m1",
            "TopUnknown": [1]
        }));
        let out = migrate(doc, 1, Path::new("/elsewhere")).expect("migrate");
        let auth = &out["HostOptions"]["AuthOptions"];
        assert_eq!(auth["CaPrivateKeyPath"], "/s/certs/ca-key.pem");
        assert!(auth.get("PrivateKeyPath").is_none());
        assert_eq!(auth["CertDir"], "/s/certs");
        assert_eq!(auth["StorePath"], "/s");
        assert_eq!(auth["Odd"], 1);
        assert_eq!(out["HostOptions"]["Unknown"], "kept");
        assert_eq!(out["Driver"]["StorePath"], "/s");
        assert_eq!(out["Driver"]["Future"], true);
        assert_eq!(out["Name"], "m1");
        assert_eq!(out["ConfigVersion"], 3);
        assert_eq!(out["TopUnknown"], json!([1]));
        assert!(out.get("StorePath").is_none());
    }

    #[test]
    fn missing_store_path_falls_back_to_the_store_root() {
        let doc = obj(json!({"ConfigVersion": 2, "Driver": {"MachineName": "m"}, "Name": "m"}));
        let out = migrate(doc, 2, Path::new("/real/store")).expect("migrate");
        assert_eq!(out["Driver"]["StorePath"], "/real/store");
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        let doc = obj(json!({"Driver": "not an object"}));
        assert!(migrate(doc, 0, Path::new("/s")).is_err());
        let doc =
            obj(json!({"ConfigVersion": 1, "HostOptions": {"AuthOptions": {"PrivateKeyPath": 5}}}));
        assert!(migrate(doc, 1, Path::new("/s")).is_err());
    }
}
