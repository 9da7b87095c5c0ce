//! Docker contexts for machines, in the docker CLI's context store.
//!
//! The docker CLI keeps contexts under its configuration directory
//! (`DOCKER_CONFIG`, else `~/.docker`):
//!
//! ```text
//! contexts/meta/<sha256 of the name>/meta.json
//!     {"Name":N,"Metadata":{"Description":…},"Endpoints":{"docker":{"Host":URL,"SkipTLSVerify":false}}}
//! contexts/tls/<sha256 of the name>/docker/{ca,cert,key}.pem
//! ```
//!
//! A context written here carries `"MachineStore": <store root>` in its
//! metadata (the docker CLI keeps unknown metadata fields): only a context
//! with this store's mark is ever replaced or removed, so a context the user
//! made by hand under the same name is never touched.

use crate::fsutil::{create_private_dir, write_atomic, PRIVATE_FILE_MODE};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The metadata field marking a context as written for a store.
pub const STORE_MARK: &str = "MachineStore";

/// Errors of the context store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// Neither `DOCKER_CONFIG` nor `HOME` is set.
    #[error("no docker configuration directory: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir,
    /// A context of that name exists and was not written for this store.
    #[error("docker context {name:?} exists and was not made for this store ({})", path.display())]
    NotOurs { name: String, path: PathBuf },
    /// The docker CLI cannot have a context of that name: it reserves
    /// `default` and wants at least two characters.
    #[error("{name:?} cannot be a docker context name: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// Reading or writing a file failed.
    #[error("docker context store: {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The docker CLI's configuration directory: `DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> Result<PathBuf, ContextError> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker"))
        .ok_or(ContextError::NoConfigDir)
}

/// The directory name the docker CLI uses for context `name`: the hex SHA-256 of the name.
pub fn context_id(name: &str) -> String {
    crate::archive::sha256_hex(name.as_bytes())
}

/// `contexts/meta/<id>` under `config`.
pub fn meta_dir(config: &Path, name: &str) -> PathBuf {
    config.join("contexts").join("meta").join(context_id(name))
}

/// `contexts/tls/<id>` under `config`.
pub fn tls_dir(config: &Path, name: &str) -> PathBuf {
    config.join("contexts").join("tls").join(context_id(name))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether context `name` exists and carries `store`'s mark; `Err(NotOurs)`
/// when it exists without it.
pub fn owned(config: &Path, name: &str, store: &Path) -> Result<bool, ContextError> {
    let meta = meta_dir(config, name).join("meta.json");
    let text = match std::fs::read(&meta) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(&meta)(e)),
    };
    let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
    let mark = v
        .get("Metadata")
        .and_then(|m| m.get(STORE_MARK))
        .and_then(Value::as_str);
    if mark == Some(&*store.to_string_lossy()) {
        Ok(true)
    } else {
        Err(ContextError::NotOurs {
            name: name.to_string(),
            path: meta,
        })
    }
}

/// Whether the docker CLI accepts `name` as a context name
/// (`^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`, and not its reserved `default`).
pub fn check_name(name: &str) -> Result<(), ContextError> {
    let bad = |reason| ContextError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name == "default" {
        return Err(bad("the docker CLI reserves it for DOCKER_HOST"));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    if !first_ok
        || rest.is_empty()
        || !rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
    {
        return Err(bad(
            "the docker CLI wants at least two characters: a letter or digit, then letters, digits, '_', '.', '+', '-'",
        ));
    }
    Ok(())
}

/// The TLS material and address a context is written with.
#[derive(Debug, Clone)]
pub struct ContextTls<'a> {
    pub url: &'a str,
    pub ca_pem: &'a [u8],
    pub cert_pem: &'a [u8],
    pub key_pem: &'a [u8],
}

/// Write (or replace) context `name` for the store at `store`: directories
/// 0700, files 0600. A context of that name without this store's mark is
/// refused ([`ContextError::NotOurs`]).
pub fn write(
    config: &Path,
    name: &str,
    store: &Path,
    tls: &ContextTls<'_>,
) -> Result<(), ContextError> {
    check_name(name)?;
    owned(config, name, store)?;
    let meta = meta_dir(config, name);
    let tls_docker = tls_dir(config, name).join("docker");
    for d in [&meta, &tls_docker] {
        create_private_dir(d).map_err(io(d))?;
    }
    for (file, bytes) in [
        ("ca.pem", tls.ca_pem),
        ("cert.pem", tls.cert_pem),
        ("key.pem", tls.key_pem),
    ] {
        let p = tls_docker.join(file);
        write_atomic(&p, bytes, PRIVATE_FILE_MODE).map_err(io(&p))?;
    }
    let doc = json!({
        "Name": name,
        "Metadata": {
            "Description": format!("machine {name}"),
            STORE_MARK: store.to_string_lossy(),
        },
        "Endpoints": { "docker": { "Host": tls.url, "SkipTLSVerify": false } },
    });
    let p = meta.join("meta.json");
    let bytes = serde_json::to_vec(&doc).map_err(|e| io(&p)(e.into()))?;
    write_atomic(&p, &bytes, PRIVATE_FILE_MODE).map_err(io(&p))
}

/// Remove context `name` when it carries `store`'s mark; `Ok(false)` when
/// there is none, [`ContextError::NotOurs`] when it is someone else's.
pub fn remove(config: &Path, name: &str, store: &Path) -> Result<bool, ContextError> {
    if !owned(config, name, store)? {
        return Ok(false);
    }
    for d in [tls_dir(config, name), meta_dir(config, name)] {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&d)(e)),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn id_is_the_sha256_of_the_name() {
        // what `docker context create mx` names its directories
        assert_eq!(
            context_id("mx"),
            "d7f890c4f72a3d49b69870b2dc2850c698e7b841eb2dd7cd21e4de551a29f4c4"
        );
    }

    #[test]
    fn names_the_docker_cli_refuses() {
        for bad in ["default", "a", "", "-x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for ok in ["ab", "web-1", "m.example.com", "default2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn write_replace_and_remove_only_our_own() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (cfg, store) = (tmp.path().join("docker"), tmp.path().join("store"));
        let tls = ContextTls {
            url: "tcp://192.0.2.1:2376",
            ca_pem: b"ca",
            cert_pem: b"cert",
            key_pem: b"key",
        };
        write(&cfg, "m1", &store, &tls).expect("write");
        write(&cfg, "m1", &store, &tls).expect("replace");
        let key = tls_dir(&cfg, "m1").join("docker/key.pem");
        assert_eq!(std::fs::read(&key).expect("key"), b"key");
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let meta: Value = serde_json::from_slice(
            &std::fs::read(meta_dir(&cfg, "m1").join("meta.json")).expect("meta"),
        )
        .expect("json");
        assert_eq!(meta["Endpoints"]["docker"]["Host"], "tcp://192.0.2.1:2376");
        assert_eq!(meta["Name"], "m1");
        // another store's context of the same name is left alone
        let other = tmp.path().join("other");
        assert!(matches!(
            write(&cfg, "m1", &other, &tls),
            Err(ContextError::NotOurs { .. })
        ));
        assert!(matches!(
            remove(&cfg, "m1", &other),
            Err(ContextError::NotOurs { .. })
        ));
        assert!(remove(&cfg, "m1", &store).expect("remove"));
        assert!(!meta_dir(&cfg, "m1").exists() && !tls_dir(&cfg, "m1").exists());
        assert!(!remove(&cfg, "m1", &store).expect("again"));
    }
}
