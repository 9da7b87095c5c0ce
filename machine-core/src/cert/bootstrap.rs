//! Creating the store's CA and client certificate when they are missing.

use std::path::Path;
use std::time::SystemTime;

use super::authority::{parse_cert_pem, read_text, CertInfo};
use super::{client_org, CertBundle, CertError, CertPaths, CertificateAuthority, KeyAlgorithm};
use crate::fsutil;

/// What [`bootstrap`] did to the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// A current CA was already there and was kept.
    Existing,
    /// There was no CA; a new one was created.
    Created,
    /// The CA had expired; a new one replaced it (and a new client certificate
    /// was issued from it).
    RegeneratedExpired,
}

/// Ensure the CA and the client certificate exist at `paths`.
///
/// The caller holds the store lock. Rules, as in docker-machine:
/// - No CA certificate: a new CA with organisation `org` is created, unless the
///   CA key exists on its own ([`CertError::OrphanCaKey`]; the key is never
///   overwritten).
/// - An expired CA certificate: a new CA replaces it, key included, and the
///   client certificate is issued again.
/// - A current CA certificate must come with its key
///   ([`CertError::MissingCaKey`]) and match it ([`CertError::KeyMismatch`]).
/// - A missing client certificate or key, or an expired client certificate:
///   both are issued from the CA with organisation `<org>.<bootstrap>`.
///
/// New keys use `alg`. Files are written atomically with mode 0600, each key
/// before its certificate, in directories created with mode 0700. Files that
/// exist but cannot be parsed are reported, never replaced.
pub fn bootstrap(
    paths: &CertPaths,
    org: &str,
    alg: KeyAlgorithm,
) -> Result<BootstrapOutcome, CertError> {
    bootstrap_at(paths, org, alg, SystemTime::now())
}

fn bootstrap_at(
    paths: &CertPaths,
    org: &str,
    alg: KeyAlgorithm,
    now: SystemTime,
) -> Result<BootstrapOutcome, CertError> {
    for file in [
        &paths.ca_cert,
        &paths.ca_key,
        &paths.client_cert,
        &paths.client_key,
    ] {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            fsutil::create_private_dir(dir).map_err(|source| CertError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
    }

    let (ca, outcome) = if !exists(&paths.ca_cert)? {
        if exists(&paths.ca_key)? {
            return Err(CertError::OrphanCaKey {
                key: paths.ca_key.clone(),
                cert: paths.ca_cert.clone(),
            });
        }
        tracing::info!(path = %paths.ca_cert.display(), "creating CA");
        let ca = CertificateAuthority::generate(org, alg)?;
        write_pair(&paths.ca_cert, ca.cert_pem(), &paths.ca_key, ca.key_pem())?;
        (ca, BootstrapOutcome::Created)
    } else if expired(&paths.ca_cert, now)? {
        tracing::info!(path = %paths.ca_cert.display(), "CA certificate expired, regenerating it");
        let ca = CertificateAuthority::generate(org, alg)?;
        write_pair(&paths.ca_cert, ca.cert_pem(), &paths.ca_key, ca.key_pem())?;
        (ca, BootstrapOutcome::RegeneratedExpired)
    } else {
        if !exists(&paths.ca_key)? {
            return Err(CertError::MissingCaKey {
                cert: paths.ca_cert.clone(),
                key: paths.ca_key.clone(),
            });
        }
        let ca = CertificateAuthority::load(&paths.ca_cert, &paths.ca_key)?;
        (ca, BootstrapOutcome::Existing)
    };

    let issue_client = match outcome {
        BootstrapOutcome::Created | BootstrapOutcome::RegeneratedExpired => true,
        BootstrapOutcome::Existing => {
            if !exists(&paths.client_cert)? || !exists(&paths.client_key)? {
                true
            } else if expired(&paths.client_cert, now)? {
                tracing::info!(path = %paths.client_cert.display(), "client certificate expired, issuing a new one");
                true
            } else if let Err(why) = client_pair_fits(paths, ca.cert_pem(), now) {
                // an interrupted write (key before certificate) or a replaced
                // file: the pair would fail at every daemon
                tracing::warn!(
                    path = %paths.client_cert.display(),
                    "the client certificate does not fit ({why}); issuing a new one"
                );
                true
            } else {
                false
            }
        }
    };
    if issue_client {
        tracing::info!(path = %paths.client_cert.display(), "creating client certificate");
        let CertBundle { cert_pem, key_pem } = ca.issue_client(&client_org(org), alg)?;
        write_pair(&paths.client_cert, &cert_pem, &paths.client_key, &key_pem)?;
    }
    Ok(outcome)
}

/// Whether the client key belongs to the client certificate and the
/// certificate verifies against the CA at `now`.
fn client_pair_fits(paths: &CertPaths, ca_pem: &str, now: SystemTime) -> Result<(), String> {
    let what = paths.client_cert.display().to_string();
    let cert_pem = read_text(&paths.client_cert).map_err(|e| e.to_string())?;
    let key_pem = read_text(&paths.client_key).map_err(|e| e.to_string())?;
    let der = parse_cert_pem(&cert_pem, &what).map_err(|e| e.to_string())?;
    let info = CertInfo::parse(&der, &what).map_err(|e| e.to_string())?;
    let key_what = paths.client_key.display().to_string();
    let key_der =
        super::authority::parse_key_pem(&key_pem, &key_what).map_err(|e| e.to_string())?;
    use rcgen::PublicKeyData;
    let key = rcgen::KeyPair::try_from(&key_der).map_err(|e| e.to_string())?;
    if key.der_bytes() != info.public_key.as_slice() {
        return Err("the key is not the certificate's".into());
    }
    super::tls::verify_client_cert(ca_pem, &cert_pem, now).map_err(|e| e.to_string())
}

/// Replace the CA and the client certificate at `paths` with new ones: all
/// four files are made in a private staging directory beside them first, and
/// only then renamed into place (keys before certificates). A failure while
/// making them (a full disk, say) leaves the old set untouched.
pub fn regenerate(paths: &CertPaths, org: &str, alg: KeyAlgorithm) -> Result<(), CertError> {
    regenerate_with(paths, |staged| bootstrap(staged, org, alg).map(|_| ()))
}

fn regenerate_with(
    paths: &CertPaths,
    make: impl FnOnce(&CertPaths) -> Result<(), CertError>,
) -> Result<(), CertError> {
    let dir = paths
        .ca_cert
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fsutil::create_private_dir(dir).map_err(|source| CertError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let staging = tempfile::Builder::new()
        .prefix(".regenerate-")
        .tempdir_in(dir)
        .map_err(|source| CertError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    let staged = CertPaths::in_dir(staging.path());
    make(&staged)?;
    for (from, to) in [
        (&staged.ca_key, &paths.ca_key),
        (&staged.ca_cert, &paths.ca_cert),
        (&staged.client_key, &paths.client_key),
        (&staged.client_cert, &paths.client_cert),
    ] {
        std::fs::rename(from, to).map_err(|source| CertError::Write {
            path: to.clone(),
            source,
        })?;
    }
    Ok(())
}

fn exists(path: &Path) -> Result<bool, CertError> {
    path.try_exists().map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Whether the certificate in `path` has expired at `now`.
fn expired(path: &Path, now: SystemTime) -> Result<bool, CertError> {
    let what = path.display().to_string();
    let pem = read_text(path)?;
    let der = parse_cert_pem(&pem, &what)?;
    let info = CertInfo::parse(&der, &what)?;
    Ok(now > info.not_after)
}

/// Write the key first: an interruption then leaves an old certificate with a
/// new key, which the next run detects, rather than a certificate whose key
/// is lost.
fn write_pair(cert: &Path, cert_pem: &str, key: &Path, key_pem: &str) -> Result<(), CertError> {
    for (path, text) in [(key, key_pem), (cert, cert_pem)] {
        fsutil::write_atomic(path, text.as_bytes(), fsutil::PRIVATE_FILE_MODE).map_err(
            |source| CertError::Write {
                path: path.to_owned(),
                source,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn regenerating_keeps_the_old_set_until_the_new_one_is_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let paths = CertPaths::in_dir(&certs);
        let alg = KeyAlgorithm::EcdsaP256;
        bootstrap(&paths, "alice", alg).expect("first");
        let read_all = |p: &CertPaths| {
            [&p.ca_cert, &p.ca_key, &p.client_cert, &p.client_key]
                .map(|f| std::fs::read(f).expect("read"))
        };
        let before = read_all(&paths);
        // making the new set fails half-way (as on a full disk)
        let e = regenerate_with(&paths, |staged| {
            let ca = CertificateAuthority::generate("alice", alg)?;
            std::fs::write(&staged.ca_key, ca.key_pem()).expect("partial");
            Err(CertError::Write {
                path: staged.ca_cert.clone(),
                source: std::io::Error::other("No space left on device"),
            })
        })
        .expect_err("failed");
        assert!(e.to_string().contains("ca.pem"), "{e}");
        assert_eq!(read_all(&paths), before, "the old set was touched");
        let leftovers: Vec<_> = std::fs::read_dir(&certs)
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with(".regenerate"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // and a successful run replaces all four, consistently
        regenerate(&paths, "alice", alg).expect("regenerate");
        let after = read_all(&paths);
        for (a, b) in before.iter().zip(after.iter()) {
            assert_ne!(a, b);
        }
        CertificateAuthority::load(&paths.ca_cert, &paths.ca_key).expect("CA pair");
        let ca_pem = std::fs::read_to_string(&paths.ca_cert).expect("ca");
        assert_eq!(client_pair_fits(&paths, &ca_pem, SystemTime::now()), Ok(()));
    }

    #[test]
    fn a_client_key_or_certificate_that_does_not_fit_is_reissued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = CertPaths::in_dir(&dir.path().join("certs"));
        let alg = KeyAlgorithm::EcdsaP256;
        bootstrap(&paths, "alice", alg).expect("first");
        let ca_pem = std::fs::read_to_string(&paths.ca_cert).expect("ca");
        let fits = |p: &CertPaths| client_pair_fits(p, &ca_pem, SystemTime::now());
        assert_eq!(fits(&paths), Ok(()));

        // a key.pem replaced by another key (an interrupted write, or a user)
        let other = CertificateAuthority::generate("mallory", alg).expect("other");
        let stray = other.issue_client("mallory.x", alg).expect("stray");
        let good_cert = std::fs::read(&paths.client_cert).expect("cert");
        std::fs::write(&paths.client_key, &stray.key_pem).expect("replace key");
        assert!(fits(&paths).is_err());
        assert_eq!(
            bootstrap(&paths, "alice", alg).expect("again"),
            BootstrapOutcome::Existing
        );
        assert_eq!(fits(&paths), Ok(()));
        assert_ne!(std::fs::read(&paths.client_cert).expect("cert"), good_cert);

        // a certificate from another CA, with its own key
        std::fs::write(&paths.client_key, &stray.key_pem).expect("key");
        std::fs::write(&paths.client_cert, &stray.cert_pem).expect("cert");
        assert!(fits(&paths).is_err());
        bootstrap(&paths, "alice", alg).expect("third");
        assert_eq!(fits(&paths), Ok(()));
    }

    #[test]
    fn expired_client_is_reissued_with_current_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = CertPaths::in_dir(&dir.path().join("certs"));
        let alg = KeyAlgorithm::EcdsaP256;
        assert_eq!(
            bootstrap(&paths, "alice", alg).expect("first"),
            BootstrapOutcome::Created
        );
        let ca_before = std::fs::read(&paths.ca_cert).expect("read");
        let client_before = std::fs::read(&paths.client_cert).expect("read");
        // 1100 days on, the CA (1080 days) has expired: both are replaced.
        let later = SystemTime::now() + Duration::from_secs(1100 * 86_400);
        assert_eq!(
            bootstrap_at(&paths, "alice", alg, later).expect("later"),
            BootstrapOutcome::RegeneratedExpired
        );
        assert_ne!(std::fs::read(&paths.ca_cert).expect("read"), ca_before);
        assert_ne!(
            std::fs::read(&paths.client_cert).expect("read"),
            client_before
        );

        // A CA that is still current with an expired client certificate: only
        // the client certificate changes.
        let ca = CertificateAuthority::load(&paths.ca_cert, &paths.ca_key).expect("load");
        let old = ca
            .issue_client_with_validity(
                "alice.<bootstrap>",
                alg,
                SystemTime::now() - Duration::from_secs(3 * 86_400),
                SystemTime::now() - Duration::from_secs(86_400),
            )
            .expect("issue");
        std::fs::write(&paths.client_cert, &old.cert_pem).expect("write");
        let ca_pem = std::fs::read(&paths.ca_cert).expect("read");
        assert_eq!(
            bootstrap(&paths, "alice", alg).expect("again"),
            BootstrapOutcome::Existing
        );
        assert_eq!(std::fs::read(&paths.ca_cert).expect("read"), ca_pem);
        let now_client = std::fs::read_to_string(&paths.client_cert).expect("read");
        assert_ne!(now_client, old.cert_pem);
        super::super::verify_client_cert(ca.cert_pem(), &now_client, SystemTime::now())
            .expect("reissued client cert chains to the CA");
    }
}
