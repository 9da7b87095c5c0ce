//! The export archive of one machine: a tar file of named entries with a
//! manifest of their SHA-256 sums, optionally encrypted with an age
//! passphrase (scrypt). Only this module knows the byte format; building the
//! entries from a machine and writing them into a store is in
//! `host/portable.rs`.
//!
//! ```text
//! manifest.json    {"Format":"docker-machine-rs machine","Version":1,"Name":…,
//!                   "StorePath":…,"MachineDir":…,"SSHKey":"id_rsa"|null,
//!                   "Files":{"config.json":"<sha256>",…}}
//! config.json      the machine's configuration, paths of the exporting store
//! ca.pem cert.pem key.pem server.pem server-key.pem known_hosts
//! ssh-key ssh-key.pub   the machine's SSH key pair (when it has one)
//! ca-key.pem       the CA's private key, only when asked for
//! ```

use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// `Format` of the manifest.
pub const FORMAT: &str = "docker-machine-rs machine";
/// `Version` of the manifest this crate writes and reads.
pub const VERSION: u32 = 1;
/// The largest entry accepted on import.
pub const MAX_ENTRY: u64 = 1 << 20;
/// The largest archive accepted on import (after decryption).
pub const MAX_ARCHIVE: u64 = 16 << 20;
/// The entries an archive may hold, besides `manifest.json`.
pub const ENTRIES: [&str; 11] = [
    "config.json",
    "ca.pem",
    "cert.pem",
    "key.pem",
    "server.pem",
    "server-key.pem",
    "known_hosts",
    "ssh-key",
    "ssh-key.pub",
    "ca-key.pem",
    "manifest.json",
];

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Why an archive cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The archive is encrypted and no passphrase was given.
    #[error("the archive is encrypted: a passphrase is needed")]
    PassphraseNeeded,
    /// The passphrase is wrong, or the encrypted archive was changed.
    #[error("cannot decrypt the archive: wrong passphrase, or the archive was changed ({reason})")]
    Decrypt { reason: String },
    /// The archive's content is not what an export writes.
    #[error("not a valid machine archive: {reason}")]
    Invalid { reason: String },
    /// Encrypting or writing the archive failed.
    #[error("cannot write the archive")]
    Write(#[source] std::io::Error),
}

fn invalid(reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid {
        reason: reason.into(),
    }
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "Format")]
    pub format: String,
    #[serde(rename = "Version")]
    pub version: u32,
    /// The machine's name in the exporting store.
    #[serde(rename = "Name")]
    pub name: String,
    /// The exporting store's root.
    #[serde(rename = "StorePath")]
    pub store_path: String,
    /// The machine's directory in the exporting store.
    #[serde(rename = "MachineDir")]
    pub machine_dir: String,
    /// The SSH key's file name in the machine's directory (`ssh-key` in the archive).
    #[serde(rename = "SSHKey")]
    pub ssh_key: Option<String>,
    /// Entry name → hex SHA-256 of its bytes.
    #[serde(rename = "Files")]
    pub files: BTreeMap<String, String>,
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Entry name → bytes; key material is wiped when dropped.
pub type Entries = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Build the archive: `manifest` (its `files` filled in here) and `entries`,
/// encrypted when `passphrase` is given.
pub fn write(
    mut manifest: Manifest,
    entries: &Entries,
    passphrase: Option<&str>,
) -> Result<Vec<u8>, ArchiveError> {
    manifest.files = entries
        .iter()
        .map(|(k, v)| (k.clone(), sha256_hex(v)))
        .collect();
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ArchiveError::Write(std::io::Error::other(e)))?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, bytes)
            .map_err(ArchiveError::Write)
    };
    add("manifest.json", &manifest_bytes)?;
    for (name, bytes) in entries {
        add(name, bytes)?;
    }
    let plain = Zeroizing::new(tar.into_inner().map_err(ArchiveError::Write)?);
    let Some(pass) = passphrase else {
        return Ok(plain.to_vec());
    };
    let enc =
        age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from(pass.to_string()));
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc.wrap_output(&mut out).map_err(ArchiveError::Write)?;
    w.write_all(&plain).map_err(ArchiveError::Write)?;
    w.finish().map_err(ArchiveError::Write)?;
    Ok(out)
}

/// Whether `bytes` is an age-encrypted file.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// Read and check an archive: decrypt it (when encrypted), read its entries
/// (regular files with known names, each at most [`MAX_ENTRY`] bytes, none
/// twice), and check each against the manifest's sums. Nothing is written.
pub fn read(bytes: &[u8], passphrase: Option<&str>) -> Result<(Manifest, Entries), ArchiveError> {
    let plain: Zeroizing<Vec<u8>> = if is_encrypted(bytes) {
        let pass = passphrase.ok_or(ArchiveError::PassphraseNeeded)?;
        let dec = |e: &dyn std::fmt::Display| ArchiveError::Decrypt {
            reason: e.to_string(),
        };
        let d = age::Decryptor::new_buffered(bytes).map_err(|e| dec(&e))?;
        if !d.is_scrypt() {
            return Err(invalid("encrypted for recipients, not with a passphrase"));
        }
        let id = age::scrypt::Identity::new(age::secrecy::SecretString::from(pass.to_string()));
        let r = d
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(|e| dec(&e))?;
        let mut out = Zeroizing::new(Vec::new());
        r.take(MAX_ARCHIVE + 1)
            .read_to_end(&mut out)
            .map_err(|e| dec(&e))?;
        out
    } else {
        Zeroizing::new(bytes.to_vec())
    };
    if plain.len() as u64 > MAX_ARCHIVE {
        return Err(invalid(format!("larger than {MAX_ARCHIVE} bytes")));
    }
    let mut entries = Entries::new();
    let mut ar = tar::Archive::new(&plain[..]);
    let bad = |e: std::io::Error| invalid(format!("tar: {e}"));
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry
            .path()
            .map_err(bad)?
            .to_str()
            .map(str::to_string)
            .unwrap_or_default();
        if !ENTRIES.contains(&name.as_str()) {
            return Err(invalid(format!("unexpected entry {name:?}")));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(invalid(format!("{name} is not a regular file")));
        }
        if entry.size() > MAX_ENTRY {
            return Err(invalid(format!("{name} is larger than {MAX_ENTRY} bytes")));
        }
        let mut data = Zeroizing::new(Vec::new());
        entry
            .by_ref()
            .take(MAX_ENTRY)
            .read_to_end(&mut data)
            .map_err(bad)?;
        if entries.insert(name.clone(), data).is_some() {
            return Err(invalid(format!("{name} appears twice")));
        }
    }
    let manifest_bytes = entries
        .remove("manifest.json")
        .ok_or_else(|| invalid("no manifest.json"))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| invalid(format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(invalid(format!(
            "format {:?} version {} (expected {FORMAT:?} version {VERSION})",
            manifest.format, manifest.version
        )));
    }
    let listed: Vec<&String> = manifest.files.keys().collect();
    let present: Vec<&String> = entries.keys().collect();
    if listed != present {
        return Err(invalid(format!(
            "the manifest lists {listed:?} but the archive holds {present:?}"
        )));
    }
    for (name, sum) in &manifest.files {
        if entries.get(name).map(|b| sha256_hex(b)).as_deref() != Some(sum.as_str()) {
            return Err(invalid(format!("{name} does not match its checksum")));
        }
    }
    if !entries.contains_key("config.json") {
        return Err(invalid("no config.json"));
    }
    Ok((manifest, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Manifest, Entries) {
        let m = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            name: "m1".into(),
            store_path: "/s".into(),
            machine_dir: "/s/machines/m1".into(),
            ssh_key: None,
            files: BTreeMap::new(),
        };
        let mut e = Entries::new();
        e.insert("config.json".into(), Zeroizing::new(b"{}".to_vec()));
        e.insert("key.pem".into(), Zeroizing::new(b"secret".to_vec()));
        (m, e)
    }

    #[test]
    fn plain_and_encrypted_round_trip() {
        let (m, e) = sample();
        let plain = write(m.clone(), &e, None).expect("write");
        let (m2, e2) = read(&plain, None).expect("read");
        assert_eq!(m2.name, "m1");
        assert_eq!(e2, e);
        let enc = write(m, &e, Some("pass phrase")).expect("write");
        assert!(is_encrypted(&enc));
        assert!(!enc.windows(6).any(|w| w == b"secret"));
        assert!(matches!(
            read(&enc, None),
            Err(ArchiveError::PassphraseNeeded)
        ));
        assert!(matches!(
            read(&enc, Some("wrong")),
            Err(ArchiveError::Decrypt { .. })
        ));
        let (_, e3) = read(&enc, Some("pass phrase")).expect("decrypt");
        assert_eq!(e3, e);
        // a flipped byte in the payload is detected
        let mut bad = enc.clone();
        let n = bad.len();
        bad[n - 20] ^= 1;
        assert!(matches!(
            read(&bad, Some("pass phrase")),
            Err(ArchiveError::Decrypt { .. })
        ));
    }

    #[test]
    fn changed_or_unexpected_entries_are_refused() {
        let (m, e) = sample();
        let plain = write(m, &e, None).expect("write");
        // change a byte of key.pem's content ("secret" -> "sexret")
        let pos = plain
            .windows(6)
            .position(|w| w == b"secret")
            .expect("content");
        let mut bad = plain.clone();
        bad[pos + 2] = b'x';
        let err = read(&bad, None).expect_err("changed");
        assert!(err.to_string().contains("checksum"), "{err}");
        // an entry with a path
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_old();
        h.set_size(1);
        h.as_old_mut().name[..7].copy_from_slice(b"../evil");
        h.set_cksum();
        tar.append(&h, &b"x"[..]).expect("append");
        let evil = tar.into_inner().expect("tar");
        assert!(matches!(
            read(&evil, None),
            Err(ArchiveError::Invalid { .. })
        ));
        assert!(read(b"not an archive at all", None).is_err());
    }
}
