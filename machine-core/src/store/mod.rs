//! The docker-machine store on disk.
//!
//! Layout, shared with the original docker-machine:
//!
//! ```text
//! <root>/certs/                      CA and client certificates
//! <root>/cache/                      downloaded images
//! <root>/machines/<name>/config.json one machine (see [`crate::config`])
//! ```
//!
//! Every write goes through a temporary file and a rename, so a reader sees
//! either the old or the new `config.json`, never a torn one. Directories are
//! created with mode 0700 and `config.json` with mode 0600.
//!
//! Concurrency: [`FileStore::create`] claims a name atomically (exactly one of
//! several concurrent creators of one name succeeds). Read-modify-write cycles
//! on one machine are serialized with [`FileStore::lock_machine`], work on the
//! shared certificates with [`FileStore::lock_store`]. Both are inter-process
//! locks on files that live outside the machine directories
//! (`machines/.<name>.lock`, `<root>/.store.lock`); the leading dot keeps them
//! out of [`FileStore::names`].
//!
//! Loading a config of version 0, 1 or 2 migrates it to version 3 (see
//! [`migrate`]), keeps the original bytes as `config.json.bak` and writes the
//! migrated file. A version above 3 is refused with
//! [`StoreError::FromTheFuture`].

mod lock;
mod machines;
pub mod migrate;

pub use lock::Lock;
pub use machines::{ListEntry, ListQuery, Settings, Store};

use crate::config::{HostConfig, CONFIG_VERSION};
use crate::fsutil::{create_private_dir, write_atomic, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
use serde_json::{Map, Value};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// File name of a machine's configuration inside its directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the copy kept of a configuration before it was migrated.
pub const CONFIG_BACKUP_FILE: &str = "config.json.bak";
/// File name of the store-wide lock, directly under the store root.
pub const STORE_LOCK_FILE: &str = ".store.lock";

/// The longest machine name: it becomes the machine's host name (a DNS
/// label) and a certificate name.
pub const MAX_NAME_LEN: usize = 63;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The name cannot be a machine name.
    #[error(
        "invalid machine name {name:?}: it must start with a letter or digit, \
         contain only letters, digits, '-' and '.', and be at most 63 characters long"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// No store location: no path given, `MACHINE_STORAGE_PATH` empty and
    /// `HOME` unset (a store relative to the current directory would scatter
    /// CA keys wherever the program happens to run).
    #[error("no store location: neither MACHINE_STORAGE_PATH nor HOME is set")]
    NoLocation,
    /// No machine of that name is in the store.
    #[error("machine {name:?} does not exist in the store")]
    NotFound {
        /// The machine's name.
        name: String,
    },
    /// A machine of that name is already in the store.
    #[error("machine {name:?} already exists in the store")]
    AlreadyExists {
        /// The machine's name.
        name: String,
    },
    /// Reading or writing a file or directory of the store failed.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A machine's configuration could not be decoded.
    #[error("configuration of machine {name:?} at {} is invalid", path.display())]
    Corrupt {
        /// The machine's name.
        name: String,
        /// The configuration file.
        path: PathBuf,
        /// What the decoder found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A machine's configuration has a version newer than this crate supports.
    #[error(
        "configuration of machine {name:?} has version {version}, newer than the \
         supported version {CONFIG_VERSION}; it was written by a newer release"
    )]
    FromTheFuture {
        /// The machine's name.
        name: String,
        /// The version found in the file.
        version: u32,
    },
    /// A configuration could not be encoded as JSON.
    #[error("cannot encode the configuration of machine {name:?}")]
    Encode {
        /// The machine's name.
        name: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A docker-machine store rooted at a directory.
///
/// The handle holds only the root path; it is cheap to clone and every method
/// works directly on the file system, so several handles (or processes) can
/// use one store at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A store rooted at `root`. Nothing is created until something is written.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileStore { root: root.into() }
    }

    /// The default store root: `storage_path_env` (the value of
    /// `MACHINE_STORAGE_PATH`) if set and non-empty, else `<home>/.docker/machine`.
    /// `None` if neither is available.
    pub fn default_root(storage_path_env: Option<&str>, home: Option<&Path>) -> Option<PathBuf> {
        match storage_path_env {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => home
                .filter(|h| !h.as_os_str().is_empty())
                .map(|h| h.join(".docker").join("machine")),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/certs`: the CA and client certificates.
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }

    /// `<root>/machines`: one directory per machine.
    pub fn machines_dir(&self) -> PathBuf {
        self.root.join("machines")
    }

    /// `<root>/machines/<name>`. The name is not checked; see [`Self::validate_name`].
    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.machines_dir().join(name)
    }

    /// `<root>/machines/<name>/config.json`. The name is not checked.
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join(CONFIG_FILE)
    }

    /// `<root>/cache`: downloaded images.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Check that `name` is a valid machine name: `^[a-zA-Z0-9][a-zA-Z0-9\-\.]*$`.
    pub fn validate_name(name: &str) -> Result<(), StoreError> {
        let mut chars = name.chars();
        // 63: a host name label, which the machine's name becomes
        let valid = name.len() <= MAX_NAME_LEN
            && match chars.next() {
                Some(first) => {
                    first.is_ascii_alphanumeric()
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                }
                None => false,
            };
        if valid {
            Ok(())
        } else {
            Err(StoreError::InvalidName {
                name: name.to_string(),
            })
        }
    }

    /// Whether a machine directory of that name exists. Invalid names never exist.
    pub fn exists(&self, name: &str) -> bool {
        Self::validate_name(name).is_ok() && fs::metadata(self.machine_dir(name)).is_ok()
    }

    /// The names of the machines: the directories under `machines/` whose names
    /// do not start with `.`, sorted case-insensitively. A missing `machines/`
    /// directory means an empty store. Symbolic links are not followed (as in
    /// the original). Names are listed as found, even ones that
    /// [`Self::validate_name`] rejects, so that loading them reports the problem.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.machines_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let file_type = entry.file_type().map_err(io_err(&entry.path()))?;
            if !file_type.is_dir() {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            names.push(name);
        }
        names.sort_by(|a, b| {
            a.to_lowercase()
                .cmp(&b.to_lowercase())
                .then_with(|| a.cmp(b))
        });
        Ok(names)
    }

    /// Load the configuration of machine `name`.
    ///
    /// The returned config's `name` is the directory's name. Versions 0 to 2
    /// are migrated: the original bytes are written to `config.json.bak`, then
    /// the migrated config to `config.json` (skipped if the file changed
    /// meanwhile; a failed write leaves the old file, which is migrated again
    /// on the next load). Versions above 3 are refused.
    pub fn load(&self, name: &str) -> Result<HostConfig, StoreError> {
        Self::validate_name(name)?;
        let dir = self.machine_dir(name);
        match fs::metadata(&dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    name: name.to_string(),
                })
            }
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        }
        let path = dir.join(CONFIG_FILE);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let (mut config, version) = decode_config(&bytes, name, &path, &self.root)?;
        let migrated = version < CONFIG_VERSION;
        config.name = name.to_string();
        if migrated {
            if let Err(e) = self.persist_migration(&path, &bytes, &config) {
                tracing::warn!(
                    machine = name,
                    error = %e,
                    "could not write the migrated configuration; it stays at version {version}"
                );
            }
        }
        Ok(config)
    }

    /// Keep `original` as `config.json.bak` and write `config` over `path`,
    /// unless `path` no longer holds `original`.
    fn persist_migration(
        &self,
        path: &Path,
        original: &[u8],
        config: &HostConfig,
    ) -> Result<(), StoreError> {
        let current = fs::read(path).map_err(io_err(path))?;
        if current != original {
            return Ok(());
        }
        let backup = path.with_file_name(CONFIG_BACKUP_FILE);
        write_atomic(&backup, original, PRIVATE_FILE_MODE).map_err(io_err(&backup))?;
        self.save(config)
    }

    /// Load every machine. The outer error is for an unreadable `machines/`
    /// directory only; a machine that fails to load is listed with its error.
    #[allow(clippy::type_complexity)]
    pub fn load_all(&self) -> Result<Vec<(String, Result<HostConfig, StoreError>)>, StoreError> {
        Ok(self
            .names()?
            .into_iter()
            .map(|name| {
                let config = self.load(&name);
                (name, config)
            })
            .collect())
    }

    /// Write `config` to `machines/<config.name>/config.json` (mode 0600),
    /// atomically replacing any previous file. The machine must exist
    /// ([`StoreError::NotFound`] otherwise: a save never brings a removed
    /// machine back; [`Self::create`] claims new names). Serializing
    /// concurrent read-modify-write cycles is up to the caller (see
    /// [`Self::lock_machine`]).
    pub fn save(&self, config: &HostConfig) -> Result<(), StoreError> {
        let name = config.name.as_str();
        Self::validate_name(name)?;
        let bytes = encode(config)?;
        let dir = self.machine_dir(name);
        // never bring a removed machine back: only `create` makes the directory
        if !dir.is_dir() {
            return Err(StoreError::NotFound {
                name: name.to_string(),
            });
        }
        let path = dir.join(CONFIG_FILE);
        write_atomic(&path, &bytes, PRIVATE_FILE_MODE).map_err(io_err(&path))
    }

    /// Claim the name `config.name` for a new machine: create
    /// `machines/<name>/` (mode 0700), failing with
    /// [`StoreError::AlreadyExists`] if it exists, then write `config.json`.
    /// Of several concurrent claims of one name exactly one succeeds. If the
    /// config cannot be written the directory is removed again.
    pub fn create(&self, config: &HostConfig) -> Result<(), StoreError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let name = config.name.as_str();
        Self::validate_name(name)?;
        let bytes = encode(config)?;
        let machines = self.machines_dir();
        create_private_dir(&machines).map_err(io_err(&machines))?;
        let dir = machines.join(name);
        match fs::DirBuilder::new().mode(PRIVATE_DIR_MODE).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::AlreadyExists {
                    name: name.to_string(),
                })
            }
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        }
        let path = dir.join(CONFIG_FILE);
        let written = fs::set_permissions(&dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))
            .map_err(io_err(&dir))
            .and_then(|()| write_atomic(&path, &bytes, PRIVATE_FILE_MODE).map_err(io_err(&path)));
        if let Err(e) = written {
            // Give the name back; the claim is worthless without a config.
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(())
    }

    /// Remove machine `name`'s directory with everything in it.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        Self::validate_name(name)?;
        let dir = self.machine_dir(name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound {
                name: name.to_string(),
            }),
            Err(source) => Err(StoreError::Io { path: dir, source }),
        }
    }

    /// The lock file of machine `name`: `machines/.<name>.lock`.
    pub fn machine_lock_path(&self, name: &str) -> PathBuf {
        self.machines_dir().join(format!(".{name}.lock"))
    }

    /// The store-wide lock file: `<root>/.store.lock`.
    pub fn store_lock_path(&self) -> PathBuf {
        self.root.join(STORE_LOCK_FILE)
    }

    /// Take the exclusive lock of machine `name`, waiting for other holders
    /// (in this or other processes). The machine need not exist; the lock
    /// file lives beside its directory, so the machine can be removed while
    /// locked. Released when the [`Lock`] is dropped.
    ///
    /// Locks are not reentrant: taking the same lock twice in one thread
    /// without dropping the first blocks forever.
    pub fn lock_machine(&self, name: &str) -> Result<Lock, StoreError> {
        Lock::acquire(self.prepare_machine_lock(name)?)
    }

    /// Like [`Self::lock_machine`] but without waiting: `None` if the lock is held.
    pub fn try_lock_machine(&self, name: &str) -> Result<Option<Lock>, StoreError> {
        Lock::try_acquire(self.prepare_machine_lock(name)?)
    }

    /// Take the store-wide exclusive lock (for example around creating the
    /// CA), waiting for other holders. Released when the [`Lock`] is dropped.
    pub fn lock_store(&self) -> Result<Lock, StoreError> {
        create_private_dir(&self.root).map_err(io_err(&self.root))?;
        Lock::acquire(self.store_lock_path())
    }

    fn prepare_machine_lock(&self, name: &str) -> Result<PathBuf, StoreError> {
        Self::validate_name(name)?;
        let machines = self.machines_dir();
        create_private_dir(&machines).map_err(io_err(&machines))?;
        Ok(self.machine_lock_path(name))
    }
}

/// Decode the bytes of machine `name`'s config.json (read from `path` in the
/// store at `root`), migrating versions 0-2 in memory. Returns the config and
/// the version the file had.
pub fn decode_config(
    bytes: &[u8],
    name: &str,
    path: &Path,
    root: &Path,
) -> Result<(HostConfig, u32), StoreError> {
    let corrupt = |source| StoreError::Corrupt {
        name: name.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let doc: Map<String, Value> = serde_json::from_slice(bytes).map_err(corrupt)?;
    let version = migrate::config_version(&doc).map_err(corrupt)?;
    if version > CONFIG_VERSION {
        return Err(StoreError::FromTheFuture {
            name: name.to_string(),
            version,
        });
    }
    let doc = if version < CONFIG_VERSION {
        migrate::migrate(doc, version, root).map_err(corrupt)?
    } else {
        doc
    };
    let config: HostConfig = serde_json::from_value(Value::Object(doc)).map_err(corrupt)?;
    Ok((config, version))
}

fn encode(config: &HostConfig) -> Result<Vec<u8>, StoreError> {
    config.to_json().map_err(|source| StoreError::Encode {
        name: config.name.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn default_root_prefers_env_then_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            FileStore::default_root(Some("/custom"), Some(home)),
            Some(PathBuf::from("/custom"))
        );
        assert_eq!(
            FileStore::default_root(Some(""), Some(home)),
            Some(PathBuf::from("/home/u/.docker/machine"))
        );
        assert_eq!(
            FileStore::default_root(None, Some(home)),
            Some(PathBuf::from("/home/u/.docker/machine"))
        );
        assert_eq!(FileStore::default_root(None, None), None);
        assert_eq!(FileStore::default_root(Some(""), Some(Path::new(""))), None);
    }

    #[test]
    fn paths_follow_the_layout() {
        let s = FileStore::new("/r");
        assert_eq!(s.root(), Path::new("/r"));
        assert_eq!(s.certs_dir(), Path::new("/r/certs"));
        assert_eq!(s.cache_dir(), Path::new("/r/cache"));
        assert_eq!(s.machines_dir(), Path::new("/r/machines"));
        assert_eq!(s.machine_dir("a"), Path::new("/r/machines/a"));
        assert_eq!(s.config_path("a"), Path::new("/r/machines/a/config.json"));
        assert_eq!(s.machine_lock_path("a"), Path::new("/r/machines/.a.lock"));
        assert_eq!(s.store_lock_path(), Path::new("/r/.store.lock"));
    }

    #[test]
    fn name_validation() {
        for ok in [
            "a",
            "A",
            "0",
            "dev",
            "my-host.example.com",
            "a-",
            "x.y-z.9",
            "A.-",
        ] {
            assert!(FileStore::validate_name(ok).is_ok(), "{ok}");
        }
        // bounded length: 63 is the longest a host name label may be
        assert!(FileStore::validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let e = FileStore::validate_name(&long).expect_err("64 characters");
        assert!(e.to_string().contains("at most 63 characters"), "{e}");
        assert!(FileStore::validate_name(&"a".repeat(300)).is_err());
        for bad in [
            "", "-a", ".a", "a b", "a/b", "..", "a_b", "é", "a\n", "../x", "a:b",
        ] {
            match FileStore::validate_name(bad) {
                Err(StoreError::InvalidName { name }) => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let msg = FileStore::validate_name("bad name")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("\"bad name\""), "{msg}");
    }

    #[test]
    fn create_save_remove_cycle_and_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path().join("store"));
        let mut c = HostConfig::new("m1", "none", store.root());
        store.create(&c).expect("create");
        assert!(store.exists("m1"));
        assert!(matches!(
            store.create(&c),
            Err(StoreError::AlreadyExists { name }) if name == "m1"
        ));
        assert_eq!(mode(store.root()), 0o700);
        assert_eq!(mode(&store.machines_dir()), 0o700);
        assert_eq!(mode(&store.machine_dir("m1")), 0o700);
        assert_eq!(mode(&store.config_path("m1")), 0o600);

        c.host_options.memory = 2048;
        store.save(&c).expect("save");
        assert_eq!(store.load("m1").expect("load"), c);
        assert_eq!(mode(&store.config_path("m1")), 0o600);

        store.remove("m1").expect("remove");
        assert!(!store.exists("m1"));
        assert!(matches!(
            store.remove("m1"),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(store.load("m1"), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn invalid_names_are_refused_everywhere() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path());
        let c = HostConfig::new("../evil", "none", store.root());
        assert!(matches!(
            store.create(&c),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.save(&c),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.load("../evil"),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.remove("../evil"),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.lock_machine("a/b"),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(!store.exists("../evil"));
        assert!(!tmp.path().join("evil").exists());
    }

    #[test]
    fn try_lock_sees_a_held_lock_and_its_release() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path());
        let held = store.lock_machine("m").expect("lock");
        assert!(store.try_lock_machine("m").expect("try").is_none());
        // Other machines are independent.
        assert!(store.try_lock_machine("other").expect("try").is_some());
        drop(held);
        let again = store.try_lock_machine("m").expect("try");
        assert!(again.is_some());
        assert_eq!(
            again.as_ref().map(|l| l.path().to_path_buf()),
            Some(store.machine_lock_path("m"))
        );
    }

    #[test]
    fn store_lock_blocks_a_second_taker_until_dropped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path().join("s"));
        let first = store.lock_store().expect("lock");
        let acquired = Arc::new(AtomicBool::new(false));
        let t = {
            let store = store.clone();
            let acquired = Arc::clone(&acquired);
            std::thread::spawn(move || {
                let _l = store.lock_store().expect("lock");
                acquired.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!acquired.load(Ordering::SeqCst));
        drop(first);
        t.join().expect("join");
        assert!(acquired.load(Ordering::SeqCst));
    }

    #[test]
    fn locked_machine_can_be_removed_and_lock_files_are_not_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = FileStore::new(tmp.path());
        store
            .create(&HostConfig::new("m", "none", store.root()))
            .expect("create");
        let _l = store.lock_machine("m").expect("lock");
        assert_eq!(store.names().expect("names"), ["m"]);
        store.remove("m").expect("remove while locked");
        assert!(store.names().expect("names").is_empty());
    }

    /// A driver number too large for any integer type (found by the
    /// config_json fuzz target) loads as a float and must encode to text
    /// that loads back to the very same config.
    #[test]
    fn huge_driver_numbers_survive_a_save_and_load() {
        let doc = br#"{"DriverName":"virtualbox","Driver":{"MachineName":"legacy",
            "Memory":2047777777777777777777777777777777777777777777777777777777777778,
            "DiskSize":1.7976931348623157e308,"CPU":4.9e-324},
            "StorePath":"/s/machines/legacy"}"#;
        let root = Path::new("/s");
        let path = Path::new("/s/machines/legacy/config.json");
        let (config, _) = decode_config(doc, "legacy", path, root).expect("loads");
        let bytes = config.to_json().expect("encodes");
        let (again, _) = decode_config(&bytes, "legacy", path, root).expect("loads again");
        assert_eq!(again.to_json().expect("encodes"), bytes);
    }
}
