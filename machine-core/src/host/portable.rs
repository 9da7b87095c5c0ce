//! Moving a machine to another store: [`Host::export_archive`] packs what a
//! machine needs to be used elsewhere, [`Store::import_archive`] checks an
//! archive completely and only then writes the machine, with every path
//! rewritten for the new store (format: [`crate::archive`]).

// Errors carry the machine name (see `host/mod.rs`).
#![allow(clippy::result_large_err)]

use super::{Host, HostError};
use crate::archive::{self, ArchiveError, Entries, Manifest};
use crate::config::{AuthOptions, HostConfig};
use crate::fsutil::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
use crate::store::{FileStore, Store, StoreError, CONFIG_FILE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What [`Host::export_archive`] puts in the archive and how.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Include the CA's private key (whoever holds the archive can then
    /// issue certificates every machine of the exporting store trusts).
    pub with_ca_key: bool,
    /// Encrypt the archive with this passphrase (age, scrypt).
    pub passphrase: Option<String>,
}

/// How [`Store::import_archive`] reads an archive.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The machine's name in this store (default: its name in the archive).
    pub name: Option<String>,
    /// The passphrase of an encrypted archive.
    pub passphrase: Option<String>,
}

/// The machine-directory files an archive carries, under the same names.
const MACHINE_FILES: [&str; 7] = [
    CONFIG_FILE,
    "ca.pem",
    "cert.pem",
    "key.pem",
    "server.pem",
    "server-key.pem",
    crate::ssh::known_hosts::FILE_NAME,
];

/// A file name an SSH key may have in a machine directory.
fn plain_file_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with('.')
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !MACHINE_FILES.contains(&n)
        && !["ca-key.pem", "manifest.json"].contains(&n)
}

impl Host {
    fn archive_err(&self, source: ArchiveError) -> HostError {
        HostError::Archive {
            name: self.name().to_string(),
            source,
        }
    }

    /// Pack the machine into one archive: its configuration, server and
    /// client certificates with the CA certificate that verifies them, its
    /// SSH key and its pinned host key; the CA's private key only with
    /// `with_ca_key`. Encrypted with `passphrase` when given. Returns the
    /// archive's bytes.
    pub fn export_archive(&self, opts: &ExportOptions) -> Result<Vec<u8>, HostError> {
        let dir = self.dir();
        let mut entries = Entries::new();
        let read = |p: &Path| -> Result<Option<Zeroizing<Vec<u8>>>, HostError> {
            match std::fs::read(p) {
                Ok(b) => Ok(Some(Zeroizing::new(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io(p, e)),
            }
        };
        for f in MACHINE_FILES {
            if let Some(b) = read(&dir.join(f))? {
                entries.insert(f.to_string(), b);
            }
        }
        if !entries.contains_key(CONFIG_FILE) {
            return Err(StoreError::NotFound {
                name: self.name().to_string(),
            }
            .into());
        }
        let mut ssh_key = None;
        if let Some(key) = self.driver.ssh_target().and_then(|t| t.key_path) {
            if let Some(b) = read(&key)? {
                let file = key
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| plain_file_name(n))
                    .unwrap_or_else(|| "id_rsa".to_string());
                entries.insert("ssh-key".into(), b);
                let mut pubkey = key.clone().into_os_string();
                pubkey.push(".pub");
                if let Some(p) = read(Path::new(&pubkey))? {
                    entries.insert("ssh-key.pub".into(), p);
                }
                ssh_key = Some(file);
            }
        }
        if opts.with_ca_key {
            let p = self.store.files.certs_dir().join("ca-key.pem");
            let b = read(&p)?.ok_or_else(|| {
                self.io(
                    &p,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no CA key"),
                )
            })?;
            tracing::warn!(
                "the archive of machine {} holds the CA's private key: whoever has it can make certificates every machine of this store trusts",
                self.name()
            );
            entries.insert("ca-key.pem".into(), b);
        }
        let manifest = Manifest {
            format: archive::FORMAT.into(),
            version: archive::VERSION,
            name: self.name().to_string(),
            store_path: self.store.files.root().to_string_lossy().into_owned(),
            machine_dir: dir.to_string_lossy().into_owned(),
            ssh_key,
            files: Default::default(),
        };
        archive::write(manifest, &entries, opts.passphrase.as_deref())
            .map_err(|e| self.archive_err(e))
    }
}

/// Replace the prefix `from` of every string in `v` (whole path components) by `to`.
fn rewrite_paths(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) => {
            if from.is_empty() {
                return;
            }
            if s == from {
                *s = to.to_string();
            } else if let Some(rest) = s.strip_prefix(from).filter(|r| r.starts_with('/')) {
                *s = format!("{to}{rest}");
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_paths(x, from, to)),
        Value::Object(o) => o.values_mut().for_each(|x| rewrite_paths(x, from, to)),
        _ => {}
    }
}

/// The first absolute path in `v` (strings starting with `/`) that is not
/// `root` or below it.
fn path_outside(v: &Value, root: &Path) -> Option<String> {
    match v {
        Value::String(s) if s.starts_with('/') => {
            let p = Path::new(s);
            let inside = p.starts_with(root)
                && !p
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir));
            (!inside).then(|| s.clone())
        }
        Value::Array(a) => a.iter().find_map(|x| path_outside(x, root)),
        Value::Object(o) => o.values().find_map(|x| path_outside(x, root)),
        _ => None,
    }
}

/// The archived configuration rewritten for machine `name` in `files`.
fn rewritten_config(
    manifest: &Manifest,
    bytes: &[u8],
    name: &str,
    files: &FileStore,
) -> Result<HostConfig, HostError> {
    let root = std::path::absolute(files.root()).unwrap_or_else(|_| files.root().to_path_buf());
    let dir = root.join("machines").join(name);
    let (old, _) = crate::store::decode_config(
        bytes,
        &manifest.name,
        Path::new("config.json"),
        Path::new(&manifest.store_path),
    )?;
    let mut v = serde_json::to_value(&old).map_err(|source| StoreError::Encode {
        name: name.to_string(),
        source,
    })?;
    let (dir_s, root_s) = (dir.to_string_lossy(), root.to_string_lossy());
    rewrite_paths(&mut v, &manifest.machine_dir, &dir_s);
    rewrite_paths(&mut v, &manifest.store_path, &root_s);
    let mut config: HostConfig =
        serde_json::from_value(v).map_err(|source| StoreError::Corrupt {
            name: name.to_string(),
            path: PathBuf::from("config.json"),
            source,
        })?;
    config.name = name.to_string();
    let fresh = AuthOptions::for_machine(&root, name);
    let a = &mut config.host_options.auth_options;
    a.cert_dir = fresh.cert_dir;
    a.ca_cert_path = fresh.ca_cert_path;
    a.ca_private_key_path = fresh.ca_private_key_path;
    a.client_key_path = fresh.client_key_path;
    a.client_cert_path = fresh.client_cert_path;
    a.server_cert_path = fresh.server_cert_path;
    a.server_key_path = fresh.server_key_path;
    a.store_path = fresh.store_path;
    let d = &mut config.driver;
    if d.contains_key("MachineName") {
        d.insert("MachineName".into(), Value::String(name.to_string()));
    }
    if d.contains_key("StorePath") {
        d.insert("StorePath".into(), Value::String(root_s.to_string()));
    }
    if let Some(k) = &manifest.ssh_key {
        let p = dir.join(k).to_string_lossy().into_owned();
        d.insert("SSHKeyPath".into(), Value::String(p));
    }
    // The key the machine is logged into with must lie in this store: an
    // archive naming `/root/.ssh/id_rsa` would have the machine log in with
    // a key of whoever imports it. (Other driver fields, such as the
    // generic driver's `SSHKey`, only record where a key was copied from.)
    let checked = ["SSHKeyPath", "StorePath"];
    let outside = checked
        .iter()
        .filter_map(|k| d.get(*k))
        .find_map(|v| path_outside(v, &root));
    if let Some(outside) = outside {
        return Err(HostError::Archive {
            name: name.to_string(),
            source: ArchiveError::Invalid {
                reason: format!("the driver's path {outside:?} lies outside the store"),
            },
        });
    }
    Ok(config)
}

impl Store {
    /// Import a machine from an archive of [`Host::export_archive`]: the
    /// archive is decrypted (with `passphrase`) and checked completely
    /// (entries, checksums, configuration, that the client key fits the
    /// client certificate) before anything is written; then the machine is
    /// written to a hidden directory (files 0600, directory 0700) and renamed
    /// into place. Every path of its configuration is rewritten for this
    /// store. A machine of the same name is an error unless `name` gives
    /// another. A wrong passphrase or a changed archive writes nothing.
    pub fn import_archive(&self, bytes: &[u8], opts: &ImportOptions) -> Result<Host, HostError> {
        let (manifest, entries) =
            archive::read(bytes, opts.passphrase.as_deref()).map_err(|source| {
                HostError::Archive {
                    name: opts.name.clone().unwrap_or_default(),
                    source,
                }
            })?;
        let name = opts.name.clone().unwrap_or_else(|| manifest.name.clone());
        FileStore::validate_name(&name)?;
        FileStore::validate_name(&manifest.name)?;
        let invalid = |reason: String| HostError::Archive {
            name: name.clone(),
            source: ArchiveError::Invalid { reason },
        };
        if let Some(k) = &manifest.ssh_key {
            if !plain_file_name(k) || !entries.contains_key("ssh-key") {
                return Err(invalid(format!("bad SSH key name {k:?}")));
            }
        } else if entries.contains_key("ssh-key") {
            return Err(invalid("an SSH key without a name".into()));
        }
        let text = |f: &str| {
            entries
                .get(f)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        if let (Some(ca), Some(cert), Some(key)) =
            (text("ca.pem"), text("cert.pem"), text("key.pem"))
        {
            crate::cert::client_tls_config(&ca, &cert, &key).map_err(|source| HostError::Cert {
                name: name.clone(),
                source: Box::new(source),
            })?;
        }
        let config_bytes = entries
            .get(CONFIG_FILE)
            .ok_or_else(|| invalid("no config.json".into()))?;
        let config = rewritten_config(&manifest, config_bytes, &name, &self.files)?;
        let _lock = self.files.lock_machine(&name)?;
        if self.files.exists(&name) {
            return Err(StoreError::AlreadyExists { name }.into());
        }
        self.write_imported(&name, &config, &manifest, &entries)?;
        // a configuration its driver cannot load does not stay
        match self.get(&name) {
            Ok(h) => Ok(h),
            Err(e) => {
                let _ = self.files.remove(&name);
                Err(e)
            }
        }
    }

    fn write_imported(
        &self,
        name: &str,
        config: &HostConfig,
        manifest: &Manifest,
        entries: &Entries,
    ) -> Result<(), HostError> {
        use std::os::unix::fs::PermissionsExt;
        let machines = self.files.machines_dir();
        let io = |p: &Path, source: std::io::Error| HostError::Io {
            name: name.to_string(),
            path: p.to_path_buf(),
            source,
        };
        crate::fsutil::create_private_dir(&machines).map_err(|e| io(&machines, e))?;
        let stage = tempfile::Builder::new()
            .prefix(".import-")
            .permissions(std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
            .tempdir_in(&machines)
            .map_err(|e| io(&machines, e))?;
        let put = |file: &str, bytes: &[u8]| {
            let p = stage.path().join(file);
            crate::fsutil::write_atomic(&p, bytes, PRIVATE_FILE_MODE).map_err(|e| io(&p, e))
        };
        let json = config.to_json().map_err(|source| StoreError::Encode {
            name: name.to_string(),
            source,
        })?;
        put(CONFIG_FILE, &json)?;
        for (entry, bytes) in entries {
            let file = match entry.as_str() {
                "config.json" => continue,
                "ssh-key" => manifest.ssh_key.clone().unwrap_or_default(),
                "ssh-key.pub" => format!("{}.pub", manifest.ssh_key.clone().unwrap_or_default()),
                other => other.to_string(),
            };
            put(&file, bytes)?;
        }
        let dest = self.files.machine_dir(name);
        // rename fails when the name was taken meanwhile
        std::fs::rename(stage.path(), &dest).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists
                || e.raw_os_error() == Some(39)
                || dest.exists()
            {
                HostError::Store(StoreError::AlreadyExists {
                    name: name.to_string(),
                })
            } else {
                io(&dest, e)
            }
        })?;
        // the stage is now the machine's directory: dropping `stage`
        // finds nothing left to remove
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_rewritten_on_component_boundaries() {
        let mut v = serde_json::json!({
            "a": "/old/machines/m1/id_rsa",
            "b": ["/old", "/older/x", "/old/certs/ca.pem"],
            "c": 3
        });
        rewrite_paths(&mut v, "/old/machines/m1", "/new/machines/m2");
        rewrite_paths(&mut v, "/old", "/new");
        assert_eq!(v["a"], "/new/machines/m2/id_rsa");
        assert_eq!(v["b"][0], "/new");
        assert_eq!(v["b"][1], "/older/x");
        assert_eq!(v["b"][2], "/new/certs/ca.pem");
    }

    #[test]
    fn an_archive_pointing_at_a_local_key_is_refused_and_nothing_written() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut config = HostConfig::new("m", "generic", Path::new("/old"));
        config
            .driver
            .insert("SSHKeyPath".into(), "/root/.ssh/id_rsa".into());
        config.driver.insert("StorePath".into(), "/old".into());
        let mut entries = Entries::new();
        entries.insert(
            CONFIG_FILE.into(),
            Zeroizing::new(config.to_json().expect("json")),
        );
        let manifest = Manifest {
            format: archive::FORMAT.into(),
            version: archive::VERSION,
            name: "m".into(),
            store_path: "/old".into(),
            machine_dir: "/old/machines/m".into(),
            ssh_key: None,
            files: Default::default(),
        };
        let bytes = archive::write(manifest, &entries, None).expect("archive");
        let store = Store::new(
            FileStore::new(tmp.path().join("s")),
            crate::driver::DriverRegistry::new(),
        );
        let err = store
            .import_archive(&bytes, &ImportOptions::default())
            .expect_err("refused");
        assert!(
            super::super::error_chain(&err).contains("/root/.ssh/id_rsa"),
            "{err}"
        );
        assert_eq!(err.code(), crate::ErrorCode::InvalidOption);
        assert!(store.names().expect("names").is_empty());
    }

    #[test]
    fn driver_paths_must_stay_in_the_store() {
        let root = Path::new("/new");
        assert_eq!(
            path_outside(
                &serde_json::json!({"K": "/new/machines/m/id_rsa", "U": "tcp://x:1", "N": 3}),
                root
            ),
            None
        );
        for bad in ["/root/.ssh/id_rsa", "/new/../etc/shadow", "/newer/x"] {
            assert_eq!(
                path_outside(&serde_json::json!({"K": bad}), root).as_deref(),
                Some(bad)
            );
        }
    }

    #[test]
    fn key_names_are_plain_file_names() {
        assert!(plain_file_name("id_rsa"));
        assert!(plain_file_name("id_ed25519"));
        for bad in [
            "",
            ".hidden",
            "../x",
            "a/b",
            "config.json",
            "ca-key.pem",
            "known_hosts",
        ] {
            assert!(!plain_file_name(bad), "{bad}");
        }
    }
}
