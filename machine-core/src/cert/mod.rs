//! TLS certificates for docker daemons, compatible with docker-machine stores.
//!
//! The store keeps one certificate authority and one client certificate in
//! `<store>/certs` ([`CertPaths`]); every machine gets a server certificate signed
//! by that CA, and the docker client authenticates with the client certificate.
//! Everything here follows the original docker-machine so that existing stores
//! keep working:
//!
//! - RSA 2048 keys by default, written as PKCS#1 PEM (`RSA PRIVATE KEY`). ECDSA
//!   P-256 is available as an option; its keys are written as PKCS#8 PEM
//!   (`PRIVATE KEY`), which Go's `crypto/tls`, OpenSSL and rustls all read.
//! - Random positive serial numbers below 2^128.
//! - Validity from five minutes ago (rounded down to the minute) for 1080 days.
//! - The subject holds only an Organization: the CA uses `$USER`
//!   ([`default_org`]), the client `$USER.<bootstrap>` ([`client_org`]) and a
//!   server `$USER.<machine>` ([`server_org`]).
//! - CA: basic constraints `CA:TRUE`, key usage certSign (plus
//!   digitalSignature, keyEncipherment and keyAgreement like the original).
//!   Client: extended key usage clientAuth. Server: extended key usage
//!   serverAuth and the subject alternative names in the order given.
//!
//! Loading accepts PKCS#1, SEC1 and PKCS#8 private keys, so CAs made by the
//! original tool (or by hand with OpenSSL) can sign new certificates.
//!
//! Verification ([`verify_server_cert`]) and the TLS configurations
//! ([`client_tls_config`], [`server_tls_config`]) use rustls with the aws-lc-rs
//! provider passed explicitly; no process-wide provider is installed.

mod authority;
mod bootstrap;
mod tls;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

pub use authority::CertificateAuthority;
pub use bootstrap::{bootstrap, regenerate, BootstrapOutcome};
pub use tls::{
    client_tls_config, server_tls_config, shared_client_tls_config, verify_client_cert,
    verify_server_cert,
};

/// Boxed error from a library used underneath (parsers, signers).
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How long certificates are valid, in days (as in the original).
pub const VALIDITY_DAYS: u64 = 1080;

/// How far in the past `notBefore` is set, to tolerate clock skew between the
/// machine running this code and the docker host.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Algorithm of the private keys this module generates.
///
/// Parsed from and displayed as `rsa` / `ecdsa`; `rsa2048` and `ecdsa-p256` are
/// accepted too. Serialized with the same names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum KeyAlgorithm {
    /// RSA with a 2048-bit modulus, signatures with SHA-256 (the original's choice).
    #[default]
    #[serde(rename = "rsa", alias = "rsa2048", alias = "Rsa2048")]
    Rsa2048,
    /// ECDSA on the NIST P-256 curve with SHA-256.
    #[serde(rename = "ecdsa", alias = "ecdsa-p256", alias = "EcdsaP256")]
    EcdsaP256,
}

impl KeyAlgorithm {
    /// The short name used by [`Display`](fmt::Display) and [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa",
            KeyAlgorithm::EcdsaP256 => "ecdsa",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = CertError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rsa" | "rsa2048" | "rsa-2048" => Ok(KeyAlgorithm::Rsa2048),
            "ecdsa" | "ecdsa-p256" | "ecdsap256" | "p256" => Ok(KeyAlgorithm::EcdsaP256),
            _ => Err(CertError::UnknownKeyAlgorithm {
                value: s.to_owned(),
            }),
        }
    }
}

/// Errors of the certificate module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be created.
    #[error("cannot create directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The CA private key exists but the CA certificate does not. A new CA is not
    /// created over it, since that would destroy the key.
    #[error("CA private key {key} exists without its certificate {cert}")]
    OrphanCaKey {
        /// The existing private key.
        key: PathBuf,
        /// The missing certificate.
        cert: PathBuf,
    },
    /// The CA certificate is current but its private key is missing, so nothing
    /// can be signed with it.
    #[error("CA certificate {cert} exists without its private key {key}")]
    MissingCaKey {
        /// The existing certificate.
        cert: PathBuf,
        /// The missing private key.
        key: PathBuf,
    },
    /// PEM text could not be decoded.
    #[error("{what} is not valid PEM")]
    Pem {
        /// Which input (a file name or a description).
        what: String,
        /// The decoder's complaint.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// PEM text holds no block of the kind needed.
    #[error("{what} contains no {expected} PEM block")]
    NoPemBlock {
        /// Which input (a file name or a description).
        what: String,
        /// The kind of block that was looked for.
        expected: &'static str,
    },
    /// A certificate could not be parsed.
    #[error("{what} is not a valid X.509 certificate")]
    InvalidCertificate {
        /// Which certificate (a file name or a description).
        what: String,
        /// The parser's complaint.
        #[source]
        source: BoxError,
    },
    /// A private key could not be parsed or is of an unsupported kind.
    #[error("{what} is not a usable private key")]
    InvalidKey {
        /// Which key (a file name or a description).
        what: String,
        /// The parser's complaint.
        #[source]
        source: BoxError,
    },
    /// A certificate used as CA lacks the CA basic constraint.
    #[error("{what} is not a CA certificate")]
    NotCa {
        /// Which certificate (a file name or a description).
        what: String,
    },
    /// A private key does not belong to the certificate it was paired with.
    #[error("private key {key} does not match certificate {cert}")]
    KeyMismatch {
        /// The certificate (a file name or a description).
        cert: String,
        /// The key (a file name or a description).
        key: String,
    },
    /// A key pair could not be generated.
    #[error("cannot generate {alg} key pair")]
    KeyGeneration {
        /// The algorithm asked for.
        alg: KeyAlgorithm,
        /// The generator's complaint.
        #[source]
        source: BoxError,
    },
    /// A certificate could not be built or signed.
    #[error("cannot create {what}")]
    Sign {
        /// Which certificate.
        what: String,
        /// The signer's complaint.
        #[source]
        source: BoxError,
    },
    /// A subject alternative name is neither an IP address nor a DNS name.
    #[error("invalid subject alternative name {value:?}: {reason}")]
    InvalidSan {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A server certificate was requested without any subject alternative name.
    #[error("a server certificate needs at least one subject alternative name")]
    NoSubjectAltNames,
    /// A host to verify against is neither an IP address nor a DNS name.
    #[error("invalid host name {host:?}")]
    InvalidHost {
        /// The host given.
        host: String,
    },
    /// A key algorithm name was not recognised.
    #[error("unknown key algorithm {value:?}, expected \"rsa\" or \"ecdsa\"")]
    UnknownKeyAlgorithm {
        /// The name given.
        value: String,
    },
    /// A certificate does not chain to the CA it was checked against.
    #[error("{what} is not signed by this CA")]
    NotSignedByCa {
        /// Which certificate.
        what: String,
    },
    /// A server certificate does not list the host among its names.
    #[error("{what} does not cover host {host}{}", covered_suffix(.covered))]
    HostNotCovered {
        /// Which certificate.
        what: String,
        /// The host it was checked for.
        host: String,
        /// The IP addresses and DNS names it does cover, in certificate order.
        covered: Vec<String>,
    },
    /// A certificate's validity period ended.
    #[error("{what} expired on {}", fmt_time(*.not_after))]
    Expired {
        /// Which certificate.
        what: String,
        /// End of its validity.
        not_after: SystemTime,
    },
    /// A certificate's validity period has not started yet.
    #[error("{what} is not valid before {}", fmt_time(*.not_before))]
    NotYetValid {
        /// Which certificate.
        what: String,
        /// Start of its validity.
        not_before: SystemTime,
    },
    /// A certificate's extended key usage does not allow the use it was put to.
    #[error("{what} is not valid for {purpose}")]
    WrongPurpose {
        /// Which certificate.
        what: String,
        /// The use that was checked, e.g. "server authentication".
        purpose: &'static str,
    },
    /// A certificate was rejected for another reason.
    #[error("{what} was rejected")]
    Rejected {
        /// Which certificate.
        what: String,
        /// The verifier's complaint.
        #[source]
        source: rustls::Error,
    },
    /// A TLS configuration could not be assembled.
    #[error("cannot build TLS configuration: {what}")]
    TlsConfig {
        /// The step that failed.
        what: &'static str,
        /// The TLS library's complaint.
        #[source]
        source: BoxError,
    },
}

fn covered_suffix(covered: &[String]) -> String {
    if covered.is_empty() {
        " (it lists no names)".to_owned()
    } else {
        format!(" (it covers {})", covered.join(", "))
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`, for messages.
pub(crate) fn fmt_time(t: SystemTime) -> String {
    let Some(dt) = offset_time(t) else {
        return format!("{t:?}");
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// `t` as a UTC date, if `time` can represent it.
pub(crate) fn offset_time(t: SystemTime) -> Option<time::OffsetDateTime> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(e) => i64::try_from(e.duration().as_secs()).ok()?.checked_neg()?,
    };
    time::OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// PEM text of one certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// The certificate, `CERTIFICATE` PEM.
    pub cert_pem: String,
    /// The private key: `RSA PRIVATE KEY` (PKCS#1) for RSA, `PRIVATE KEY`
    /// (PKCS#8) for ECDSA.
    pub key_pem: String,
}

impl fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBundle")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[private key elided]")
            .finish()
    }
}

/// Paths of the store's CA and client set: `ca.pem`, `ca-key.pem`, `cert.pem`
/// and `key.pem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// CA certificate (`ca.pem`).
    pub ca_cert: PathBuf,
    /// CA private key (`ca-key.pem`).
    pub ca_key: PathBuf,
    /// Client certificate (`cert.pem`).
    pub client_cert: PathBuf,
    /// Client private key (`key.pem`).
    pub client_key: PathBuf,
}

impl CertPaths {
    /// File name of the CA certificate.
    pub const CA_CERT: &'static str = "ca.pem";
    /// File name of the CA private key.
    pub const CA_KEY: &'static str = "ca-key.pem";
    /// File name of the client certificate.
    pub const CLIENT_CERT: &'static str = "cert.pem";
    /// File name of the client private key.
    pub const CLIENT_KEY: &'static str = "key.pem";

    /// The four docker-machine file names in `dir` (usually `<store>/certs`).
    pub fn in_dir(dir: &Path) -> Self {
        CertPaths {
            ca_cert: dir.join(Self::CA_CERT),
            ca_key: dir.join(Self::CA_KEY),
            client_cert: dir.join(Self::CLIENT_CERT),
            client_key: dir.join(Self::CLIENT_KEY),
        }
    }
}

/// Organisation of the CA, like the original: the `USER` environment variable,
/// or `unknown` when it is unset or empty.
pub fn default_org() -> String {
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() => u,
        _ => "unknown".to_owned(),
    }
}

/// Organisation of the client certificate for CA organisation `ca_org`:
/// `<ca_org>.<bootstrap>`.
pub fn client_org(ca_org: &str) -> String {
    format!("{ca_org}.<bootstrap>")
}

/// Organisation of the server certificate of machine `machine`:
/// `<ca_org>.<machine>`.
pub fn server_org(ca_org: &str, machine: &str) -> String {
    format!("{ca_org}.{machine}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_algorithm_names() {
        for (s, a) in [
            ("rsa", KeyAlgorithm::Rsa2048),
            ("RSA2048", KeyAlgorithm::Rsa2048),
            ("ecdsa", KeyAlgorithm::EcdsaP256),
            ("ecdsa-p256", KeyAlgorithm::EcdsaP256),
        ] {
            assert_eq!(s.parse::<KeyAlgorithm>().expect("parse"), a);
        }
        assert!(matches!(
            "dsa".parse::<KeyAlgorithm>(),
            Err(CertError::UnknownKeyAlgorithm { value }) if value == "dsa"
        ));
        assert_eq!(KeyAlgorithm::Rsa2048.to_string(), "rsa");
        assert_eq!(KeyAlgorithm::EcdsaP256.to_string(), "ecdsa");
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::Rsa2048);
        assert_eq!(
            serde_json::to_string(&KeyAlgorithm::EcdsaP256).expect("json"),
            "\"ecdsa\""
        );
        let back: KeyAlgorithm = serde_json::from_str("\"rsa2048\"").expect("json");
        assert_eq!(back, KeyAlgorithm::Rsa2048);
    }

    #[test]
    fn paths_and_orgs() {
        let p = CertPaths::in_dir(Path::new("/s/certs"));
        assert_eq!(p.ca_cert, Path::new("/s/certs/ca.pem"));
        assert_eq!(p.ca_key, Path::new("/s/certs/ca-key.pem"));
        assert_eq!(p.client_cert, Path::new("/s/certs/cert.pem"));
        assert_eq!(p.client_key, Path::new("/s/certs/key.pem"));
        assert_eq!(client_org("bob"), "bob.<bootstrap>");
        assert_eq!(server_org("bob", "dev"), "bob.dev");
        assert!(!default_org().is_empty());
    }

    #[test]
    fn error_messages_name_things() {
        let e = CertError::HostNotCovered {
            what: "server certificate".into(),
            host: "10.0.0.9".into(),
            covered: vec!["10.0.0.1".into(), "localhost".into()],
        };
        assert_eq!(
            e.to_string(),
            "server certificate does not cover host 10.0.0.9 (it covers 10.0.0.1, localhost)"
        );
        let e = CertError::Expired {
            what: "CA certificate".into(),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 3_661),
        };
        assert_eq!(
            e.to_string(),
            "CA certificate expired on 1970-01-02 01:01:01 UTC"
        );
    }
}
