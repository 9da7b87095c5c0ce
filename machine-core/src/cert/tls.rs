//! Local verification of certificates and rustls configurations for mutual TLS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::authority::{parse_cert_pem, parse_key_pem, CertInfo};
use super::CertError;

const CA_WHAT: &str = "CA certificate";
const SERVER_WHAT: &str = "server certificate";
const CLIENT_WHAT: &str = "client certificate";

/// The one crypto provider this crate uses, passed explicitly to every builder.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn unix_time(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    )
}

/// A root store holding just the CA in `ca_der`.
fn roots(ca_der: CertificateDer<'static>) -> Result<Arc<RootCertStore>, CertError> {
    let mut store = RootCertStore::empty();
    store.add(ca_der).map_err(|source| CertError::Rejected {
        what: CA_WHAT.to_owned(),
        source,
    })?;
    Ok(Arc::new(store))
}

/// Parse `ca_pem` and check that the CA itself is a CA and valid at `now`:
/// webpki does not look at the validity of trust anchors.
fn checked_ca(ca_pem: &str, now: SystemTime) -> Result<CertificateDer<'static>, CertError> {
    let der = parse_cert_pem(ca_pem, CA_WHAT)?;
    let info = CertInfo::parse(&der, CA_WHAT)?;
    if !info.is_ca {
        return Err(CertError::NotCa {
            what: CA_WHAT.to_owned(),
        });
    }
    if now > info.not_after {
        return Err(CertError::Expired {
            what: CA_WHAT.to_owned(),
            not_after: info.not_after,
        });
    }
    if now < info.not_before {
        return Err(CertError::NotYetValid {
            what: CA_WHAT.to_owned(),
            not_before: info.not_before,
        });
    }
    Ok(der)
}

/// Check locally, without any network access, that `server_pem` is signed by
/// `ca_pem`, is meant for server authentication, covers `host` (an IP address,
/// IPv6 optionally in brackets, or a DNS name) and is valid at `now`.
///
/// The decision is made by rustls's webpki verifier, the same code that checks
/// a daemon's certificate during a handshake. Errors say which check failed:
/// [`CertError::NotSignedByCa`], [`CertError::HostNotCovered`] (with the names
/// the certificate does cover), [`CertError::Expired`] /
/// [`CertError::NotYetValid`] (for the server certificate or the CA),
/// [`CertError::WrongPurpose`], or a PEM / parse error naming the input.
pub fn verify_server_cert(
    ca_pem: &str,
    server_pem: &str,
    host: &str,
    now: SystemTime,
) -> Result<(), CertError> {
    let ca_der = checked_ca(ca_pem, now)?;
    let server_der = parse_cert_pem(server_pem, SERVER_WHAT)?;
    let info = CertInfo::parse(&server_der, SERVER_WHAT)?;
    let server_name = server_name(host)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_der)?, provider())
        .build()
        .map_err(|e| CertError::TlsConfig {
            what: "server certificate verifier",
            source: Box::new(e),
        })?;
    verifier
        .verify_server_cert(&server_der, &[], &server_name, &[], unix_time(now))
        .map(|_| ())
        .map_err(|e| explain(e, SERVER_WHAT, &info, Some(host)))
}

/// Check locally that `client_pem` is signed by `ca_pem`, is meant for client
/// authentication and is valid at `now`: what a daemon's TLS server checks.
pub fn verify_client_cert(
    ca_pem: &str,
    client_pem: &str,
    now: SystemTime,
) -> Result<(), CertError> {
    let ca_der = checked_ca(ca_pem, now)?;
    let client_der = parse_cert_pem(client_pem, CLIENT_WHAT)?;
    let info = CertInfo::parse(&client_der, CLIENT_WHAT)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_der)?, provider())
        .build()
        .map_err(|e| CertError::TlsConfig {
            what: "client certificate verifier",
            source: Box::new(e),
        })?;
    verifier
        .verify_client_cert(&client_der, &[], unix_time(now))
        .map(|_| ())
        .map_err(|e| explain(e, CLIENT_WHAT, &info, None))
}

fn server_name(host: &str) -> Result<ServerName<'static>, CertError> {
    let trimmed = host.trim();
    let bare = trimmed
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(trimmed);
    ServerName::try_from(bare.to_owned()).map_err(|_| CertError::InvalidHost {
        host: host.to_owned(),
    })
}

/// Turn a verifier error into the matching [`CertError`].
fn explain(err: rustls::Error, what: &str, info: &CertInfo, host: Option<&str>) -> CertError {
    let what_s = what.to_owned();
    let purpose = if what == SERVER_WHAT {
        "server authentication"
    } else {
        "client authentication"
    };
    match err {
        rustls::Error::InvalidCertificate(ref ce) => {
            match ce {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    CertError::NotSignedByCa { what: what_s }
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => CertError::HostNotCovered {
                    what: what_s,
                    host: host.unwrap_or_default().to_owned(),
                    covered: info.names.clone(),
                },
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    CertError::Expired {
                        what: what_s,
                        not_after: info.not_after,
                    }
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    CertError::NotYetValid {
                        what: what_s,
                        not_before: info.not_before,
                    }
                }
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => CertError::WrongPurpose {
                    what: what_s,
                    purpose,
                },
                _ => CertError::Rejected {
                    what: what_s,
                    source: err,
                },
            }
        }
        other => CertError::Rejected {
            what: what_s,
            source: other,
        },
    }
}

fn tls_err(what: &'static str) -> impl FnOnce(rustls::Error) -> CertError {
    move |e| match e {
        rustls::Error::InconsistentKeys(_) => CertError::KeyMismatch {
            cert: format!("{what} certificate"),
            key: format!("{what} key"),
        },
        other => CertError::TlsConfig {
            what,
            source: Box::new(other),
        },
    }
}

/// rustls client configuration for talking to a docker daemon with mutual
/// TLS: trusts only the CA in `ca_pem` and authenticates with `cert_pem` /
/// `key_pem` (PKCS#1, SEC1 or PKCS#8 key). TLS 1.2 and 1.3, aws-lc-rs.
///
/// The daemon's name is checked against its certificate when connecting,
/// with the server name given to the connector.
pub fn client_tls_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, CertError> {
    let roots = roots(parse_cert_pem(ca_pem, CA_WHAT)?)?;
    let cert = parse_cert_pem(cert_pem, CLIENT_WHAT)?;
    let key = parse_key_pem(key_pem, "client private key")?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("client"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .map_err(tls_err("client"))?;
    Ok(Arc::new(config))
}

/// [`client_tls_config`], made once per process for each distinct CA,
/// certificate and key: machines of one store share their client
/// certificate, so a listing of many machines parses it and builds the
/// configuration once (and the handshakes share its TLS session cache).
pub fn shared_client_tls_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, CertError> {
    type Cache = HashMap<(String, String, String), Arc<ClientConfig>>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (ca_pem.to_owned(), cert_pem.to_owned(), key_pem.to_owned());
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(found);
    }
    let config = client_tls_config(ca_pem, cert_pem, key_pem)?;
    if let Ok(mut c) = cache.lock() {
        // a long-lived process whose certificates are regenerated again and
        // again keeps a bounded number of old configurations
        if c.len() >= 64 {
            c.clear();
        }
        c.insert(key, Arc::clone(&config));
    }
    Ok(config)
}

/// rustls server configuration for a docker daemon endpoint with mutual TLS:
/// presents `cert_pem` / `key_pem` and requires every client to present a
/// certificate signed by the CA in `ca_pem` with extended key usage
/// clientAuth. TLS 1.2 and 1.3, aws-lc-rs.
pub fn server_tls_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, CertError> {
    let roots = roots(parse_cert_pem(ca_pem, CA_WHAT)?)?;
    let cert = parse_cert_pem(cert_pem, SERVER_WHAT)?;
    let key = parse_key_pem(key_pem, "server private key")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| CertError::TlsConfig {
            what: "client certificate verifier",
            source: Box::new(e),
        })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("server"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .map_err(tls_err("server"))?;
    Ok(Arc::new(config))
}
