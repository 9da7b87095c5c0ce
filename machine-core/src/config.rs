//! The `config.json` data model of a machine, version 3, as the original
//! docker-machine writes it, and the byte-level JSON encoding it uses.
//!
//! Field order, names and the `null`-versus-`[]` distinction of lists are kept so
//! that a file written by the original is written back unchanged. Fields this
//! version does not know are kept in `extra` and written back after the known ones.
//! The driver's object is kept as raw JSON: each driver reads the fields it owns
//! and leaves the rest alone (see [`crate::driver`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::io;
use std::path::{Path, PathBuf};

/// The config version this crate writes.
pub const CONFIG_VERSION: u32 = 3;
/// Default engine install script, as in the original.
pub const DEFAULT_INSTALL_URL: &str = "https://get.docker.com";
/// Default storage driver for the engine.
pub const DEFAULT_STORAGE_DRIVER: &str = "overlay2";
/// Default TCP port of the Docker daemon.
pub const DEFAULT_ENGINE_PORT: u16 = 2376;

/// A whole `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostConfig {
    #[serde(rename = "ConfigVersion", default)]
    pub config_version: u32,
    /// The driver's own object; starts with the [`BaseDriver`] fields.
    #[serde(rename = "Driver", default)]
    pub driver: Map<String, Value>,
    #[serde(rename = "DriverName", default)]
    pub driver_name: String,
    #[serde(rename = "HostOptions", default)]
    pub host_options: HostOptions,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `HostOptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HostOptions {
    #[serde(rename = "Driver", default)]
    pub driver: String,
    #[serde(rename = "Memory", default)]
    pub memory: i64,
    #[serde(rename = "Disk", default)]
    pub disk: i64,
    #[serde(rename = "EngineOptions", default)]
    pub engine_options: EngineOptions,
    #[serde(rename = "SwarmOptions", default)]
    pub swarm_options: SwarmOptions,
    #[serde(rename = "AuthOptions", default)]
    pub auth_options: AuthOptions,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `EngineOptions`: how the Docker daemon on the machine is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineOptions {
    /// `--engine-opt` values, `key=value` without leading dashes.
    #[serde(rename = "ArbitraryFlags", default)]
    pub arbitrary_flags: Option<Vec<String>>,
    #[serde(rename = "Dns", default)]
    pub dns: Option<Vec<String>>,
    #[serde(rename = "GraphDir", default)]
    pub graph_dir: String,
    /// `--engine-env` values, `KEY=value`.
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Ipv6", default)]
    pub ipv6: bool,
    #[serde(rename = "InsecureRegistry", default)]
    pub insecure_registry: Option<Vec<String>>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<Vec<String>>,
    #[serde(rename = "LogLevel", default)]
    pub log_level: String,
    #[serde(rename = "StorageDriver", default)]
    pub storage_driver: String,
    #[serde(rename = "SelinuxEnabled", default)]
    pub selinux_enabled: bool,
    /// Kept for compatibility: the daemon we provision always verifies
    /// clients, and a file without the field reads as `true`.
    #[serde(rename = "TlsVerify", default = "always")]
    pub tls_verify: bool,
    #[serde(rename = "RegistryMirror", default)]
    pub registry_mirror: Option<Vec<String>>,
    #[serde(rename = "InstallURL", default)]
    pub install_url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn always() -> bool {
    true
}

/// An engine setting that cannot be handed to the daemon safely: it would end
/// up in a unit file, a shell-sourced settings file or a command line on the
/// machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
#[non_exhaustive]
pub struct EngineValueError {
    /// The create flag the value belongs to (`engine-env`, `engine-label`, ...).
    pub flag: String,
    /// The offending value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Check one value of engine setting `flag`: no control characters (a newline
/// would start a new line in the daemon's unit or settings file); `engine-env`
/// values must be `KEY=VALUE` with a portable variable name.
pub fn check_engine_value(flag: &str, value: &str) -> Result<(), EngineValueError> {
    let bad = |reason: String| EngineValueError {
        flag: flag.to_string(),
        value: value.to_string(),
        reason,
    };
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(bad(format!(
            "control character {:?} is not allowed in an engine option",
            c
        )));
    }
    if flag == "engine-env" {
        let Some((key, _)) = value.split_once('=') else {
            return Err(bad("expected KEY=VALUE".into()));
        };
        if !is_variable_name(key) {
            return Err(bad(format!(
                "{key:?} is not a variable name (letters, digits and _, not starting with a digit)"
            )));
        }
    }
    Ok(())
}

/// Whether `key` is a portable environment variable name (letters, digits
/// and `_`, not starting with a digit): what a POSIX shell can `export`.
pub fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl EngineOptions {
    /// Check every value as [`check_engine_value`] does, naming the flag of
    /// the first bad one.
    pub fn validate(&self) -> Result<(), EngineValueError> {
        let lists: [(&'static str, &Option<Vec<String>>); 6] = [
            ("engine-opt", &self.arbitrary_flags),
            ("engine-dns", &self.dns),
            ("engine-env", &self.env),
            ("engine-insecure-registry", &self.insecure_registry),
            ("engine-label", &self.labels),
            ("engine-registry-mirror", &self.registry_mirror),
        ];
        for (flag, list) in lists {
            for v in list.as_deref().unwrap_or_default() {
                check_engine_value(flag, v)?;
            }
        }
        for (flag, v) in [
            ("engine-graph-dir", &self.graph_dir),
            ("engine-log-level", &self.log_level),
            ("engine-storage-driver", &self.storage_driver),
            ("engine-install-url", &self.install_url),
        ] {
            check_engine_value(flag, v)?;
        }
        Ok(())
    }
}

impl Default for EngineOptions {
    /// The defaults `create` uses: TLS verify on, overlay2, the install script URL.
    fn default() -> Self {
        EngineOptions {
            arbitrary_flags: Some(Vec::new()),
            dns: None,
            graph_dir: String::new(),
            env: Some(Vec::new()),
            ipv6: false,
            insecure_registry: Some(Vec::new()),
            labels: Some(Vec::new()),
            log_level: String::new(),
            storage_driver: DEFAULT_STORAGE_DRIVER.to_string(),
            selinux_enabled: false,
            tls_verify: true,
            registry_mirror: Some(Vec::new()),
            install_url: DEFAULT_INSTALL_URL.to_string(),
            extra: Map::new(),
        }
    }
}

/// `SwarmOptions` (legacy Swarm; kept for compatibility, not acted upon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmOptions {
    #[serde(rename = "IsSwarm", default)]
    pub is_swarm: bool,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Discovery", default)]
    pub discovery: String,
    #[serde(rename = "Agent", default)]
    pub agent: bool,
    #[serde(rename = "Master", default)]
    pub master: bool,
    #[serde(rename = "Host", default)]
    pub host: String,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "Strategy", default)]
    pub strategy: String,
    #[serde(rename = "Heartbeat", default)]
    pub heartbeat: i64,
    /// A Go float64; kept as a JSON number so `0` stays `0`.
    #[serde(rename = "Overcommit", default = "zero")]
    pub overcommit: Number,
    #[serde(rename = "ArbitraryFlags", default)]
    pub arbitrary_flags: Option<Vec<String>>,
    #[serde(rename = "ArbitraryJoinFlags", default)]
    pub arbitrary_join_flags: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "IsExperimental", default)]
    pub is_experimental: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn zero() -> Number {
    Number::from(0)
}

impl Default for SwarmOptions {
    /// What the original writes for a machine created without swarm flags.
    fn default() -> Self {
        SwarmOptions {
            is_swarm: false,
            address: String::new(),
            discovery: String::new(),
            agent: false,
            master: false,
            host: "tcp://0.0.0.0:3376".to_string(),
            image: "swarm:latest".to_string(),
            strategy: "spread".to_string(),
            heartbeat: 0,
            overcommit: zero(),
            arbitrary_flags: Some(Vec::new()),
            arbitrary_join_flags: Some(Vec::new()),
            env: None,
            is_experimental: false,
            extra: Map::new(),
        }
    }
}

/// `AuthOptions`: where the TLS material lives, locally and on the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuthOptions {
    #[serde(rename = "CertDir", default)]
    pub cert_dir: String,
    #[serde(rename = "CaCertPath", default)]
    pub ca_cert_path: String,
    #[serde(rename = "CaPrivateKeyPath", default)]
    pub ca_private_key_path: String,
    #[serde(rename = "CaCertRemotePath", default)]
    pub ca_cert_remote_path: String,
    #[serde(rename = "ServerCertPath", default)]
    pub server_cert_path: String,
    #[serde(rename = "ServerKeyPath", default)]
    pub server_key_path: String,
    #[serde(rename = "ClientKeyPath", default)]
    pub client_key_path: String,
    #[serde(rename = "ServerCertRemotePath", default)]
    pub server_cert_remote_path: String,
    #[serde(rename = "ServerKeyRemotePath", default)]
    pub server_key_remote_path: String,
    #[serde(rename = "ClientCertPath", default)]
    pub client_cert_path: String,
    #[serde(rename = "ServerCertSANs", default)]
    pub server_cert_sans: Option<Vec<String>>,
    #[serde(rename = "StorePath", default)]
    pub store_path: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AuthOptions {
    /// The paths docker-machine uses for a machine `name` in the store at `store`.
    pub fn for_machine(store: &Path, name: &str) -> Self {
        let certs = store.join("certs");
        let mdir = store.join("machines").join(name);
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        AuthOptions {
            cert_dir: s(certs.clone()),
            ca_cert_path: s(certs.join("ca.pem")),
            ca_private_key_path: s(certs.join("ca-key.pem")),
            ca_cert_remote_path: String::new(),
            server_cert_path: s(mdir.join("server.pem")),
            server_key_path: s(mdir.join("server-key.pem")),
            client_key_path: s(certs.join("key.pem")),
            server_cert_remote_path: String::new(),
            server_key_remote_path: String::new(),
            client_cert_path: s(certs.join("cert.pem")),
            server_cert_sans: Some(Vec::new()),
            store_path: s(mdir),
            extra: Map::new(),
        }
    }
}

/// The fields every driver object starts with (Go's `drivers.BaseDriver`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BaseDriver {
    #[serde(rename = "IPAddress", default)]
    pub ip_address: String,
    #[serde(rename = "MachineName", default)]
    pub machine_name: String,
    #[serde(rename = "SSHUser", default)]
    pub ssh_user: String,
    #[serde(rename = "SSHPort", default)]
    pub ssh_port: u16,
    #[serde(rename = "SSHKeyPath", default)]
    pub ssh_key_path: String,
    #[serde(rename = "StorePath", default)]
    pub store_path: String,
    #[serde(rename = "SwarmMaster", default)]
    pub swarm_master: bool,
    #[serde(rename = "SwarmHost", default)]
    pub swarm_host: String,
    #[serde(rename = "SwarmDiscovery", default)]
    pub swarm_discovery: String,
}

/// Names of the [`BaseDriver`] fields, in the order they are written.
pub const BASE_DRIVER_FIELDS: [&str; 9] = [
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

impl BaseDriver {
    /// Read the base fields out of a driver object (missing ones take defaults).
    pub fn from_driver_object(obj: &Map<String, Value>) -> Result<Self, serde_json::Error> {
        let mut base = Map::new();
        for k in BASE_DRIVER_FIELDS {
            if let Some(v) = obj.get(k) {
                base.insert(k.to_string(), v.clone());
            }
        }
        serde_json::from_value(Value::Object(base))
    }

    /// Split a saved driver object into its base fields and the driver's own
    /// fields (every other key, in file order).
    pub fn split_driver_object(
        obj: &Map<String, Value>,
    ) -> Result<(Self, Map<String, Value>), serde_json::Error> {
        let base = Self::from_driver_object(obj)?;
        let own = obj
            .iter()
            .filter(|(k, _)| !BASE_DRIVER_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok((base, own))
    }

    /// Build a driver object: the base fields first, then `own` (the driver's
    /// fields), then whatever else `previous` held that neither names, in its order.
    pub fn merge_driver_object(
        &self,
        own: Map<String, Value>,
        previous: &Map<String, Value>,
    ) -> Result<Map<String, Value>, serde_json::Error> {
        let mut out = match serde_json::to_value(self)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in own {
            out.insert(k, v);
        }
        keep_unknown_fields(&mut out, previous);
        Ok(out)
    }
}

/// Append to `target` the keys of `previous` it lacks, in `previous`'s order, so
/// fields written by another version survive a rewrite.
pub fn keep_unknown_fields(target: &mut Map<String, Value>, previous: &Map<String, Value>) {
    for (k, v) in previous {
        if !target.contains_key(k) {
            target.insert(k.clone(), v.clone());
        }
    }
}

impl HostConfig {
    /// A new version-3 config for `name` with default options.
    pub fn new(name: &str, driver_name: &str, store: &Path) -> Self {
        HostConfig {
            config_version: CONFIG_VERSION,
            driver: Map::new(),
            driver_name: driver_name.to_string(),
            host_options: HostOptions {
                driver: driver_name.to_string(),
                memory: 0,
                disk: 0,
                engine_options: EngineOptions::default(),
                swarm_options: SwarmOptions::default(),
                auth_options: AuthOptions::for_machine(store, name),
                extra: Map::new(),
            },
            name: name.to_string(),
            extra: Map::new(),
        }
    }

    /// The base driver fields of this config's driver object.
    pub fn base_driver(&self) -> Result<BaseDriver, serde_json::Error> {
        BaseDriver::from_driver_object(&self.driver)
    }

    /// Encode as the original does (`json.MarshalIndent` with four spaces).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        to_go_json(self)
    }
}

/// Serialize `value` the way Go's `json.MarshalIndent(v, "", "    ")` does:
/// four-space indent, no trailing newline, and `<`, `>`, `&`, U+2028 and U+2029
/// escaped as `\u003c`-style sequences.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(2048);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter::default());
    value.serialize(&mut ser)?;
    Ok(out)
}

/// A pretty formatter with Go's HTML-safe string escaping.
#[derive(Debug)]
struct GoFormatter {
    inner: serde_json::ser::PrettyFormatter<'static>,
}

impl Default for GoFormatter {
    fn default() -> Self {
        GoFormatter {
            inner: serde_json::ser::PrettyFormatter::with_indent(b"    "),
        }
    }
}

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc: Option<&[u8]> = match c {
                '<' => Some(b"\\u003c"),
                '>' => Some(b"\\u003e"),
                '&' => Some(b"\\u0026"),
                '\u{2028}' => Some(b"\\u2028"),
                '\u{2029}' => Some(b"\\u2029"),
                _ => None,
            };
            if let Some(e) = esc {
                w.write_all(&fragment.as_bytes()[start..i])?;
                w.write_all(e)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        match escape {
            // Go writes these two as \u escapes, not as \b and \f.
            CharEscape::Backspace => w.write_all(b"\\u0008"),
            CharEscape::FormFeed => w.write_all(b"\\u000c"),
            other => self.inner.write_char_escape(w, other),
        }
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping_and_indent() {
        let v = serde_json::json!({"a": "<b>&\u{8}\u{c}\n", "l": [], "n": null, "o": {}});
        let s = String::from_utf8(to_go_json(&v).expect("json")).expect("utf8");
        assert_eq!(
            s,
            "{\n    \"a\": \"\\u003cb\\u003e\\u0026\\u0008\\u000c\\n\",\n    \"l\": [],\n    \"n\": null,\n    \"o\": {}\n}"
        );
    }

    #[test]
    fn new_config_has_compat_key_order() {
        let c = HostConfig::new("m1", "generic", Path::new("/s"));
        let s = String::from_utf8(c.to_json().expect("json")).expect("utf8");
        let keys = [
            "\"ConfigVersion\"",
            "\"Driver\"",
            "\"DriverName\"",
            "\"HostOptions\"",
            "\"Name\"",
        ];
        let pos: Vec<usize> = keys.iter().map(|k| s.find(k).expect("key")).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{s}");
        let back: HostConfig = serde_json::from_slice(s.as_bytes()).expect("parse");
        assert_eq!(back, c);
    }

    #[test]
    fn driver_object_base_fields_first_and_unknown_kept() {
        let prev: Map<String, Value> =
            serde_json::from_str(r#"{"IPAddress":"1.2.3.4","Future":7,"EnginePort":2376}"#)
                .expect("json");
        let base = BaseDriver::from_driver_object(&prev).expect("base");
        assert_eq!(base.ip_address, "1.2.3.4");
        let mut own = Map::new();
        own.insert("EnginePort".into(), Value::from(2377));
        let merged = base.merge_driver_object(own, &prev).expect("merge");
        let keys: Vec<&str> = merged.keys().map(String::as_str).collect();
        assert_eq!(&keys[..9], &BASE_DRIVER_FIELDS[..]);
        assert_eq!(keys[9..], ["EnginePort", "Future"]);
        assert_eq!(merged["EnginePort"], Value::from(2377));
        let (base2, own2) = BaseDriver::split_driver_object(&merged).expect("split");
        assert_eq!(base2, base);
        let own_keys: Vec<&str> = own2.keys().map(String::as_str).collect();
        assert_eq!(own_keys, ["EnginePort", "Future"]);
    }
}
