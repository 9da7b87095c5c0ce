//! The certificate authority: generating, loading and issuing.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use super::{BoxError, CertBundle, CertError, KeyAlgorithm, BACKDATE, VALIDITY_DAYS};

/// A certificate authority able to sign client and server certificates.
///
/// Holds the CA certificate and key as PEM text (exactly as loaded or
/// generated) together with the parsed signing key.
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Whether the CA certificate has a subject key identifier; issued
    /// certificates then name it in an authority key identifier.
    has_key_id: bool,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key", &"[private key elided]")
            .finish_non_exhaustive()
    }
}

/// The kind of leaf certificate being issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

impl CertificateAuthority {
    /// Generate a new self-signed CA whose subject has the single Organization
    /// `org`, valid from five minutes ago for 1080 days.
    pub fn generate(org: &str, alg: KeyAlgorithm) -> Result<Self, CertError> {
        let (not_before, not_after) = default_validity(SystemTime::now());
        Self::generate_with_validity(org, alg, not_before, not_after)
    }

    /// [`generate`](Self::generate) with an explicit validity period. Meant for
    /// tests that need expired or not yet valid certificates.
    #[doc(hidden)]
    pub fn generate_with_validity(
        org: &str,
        alg: KeyAlgorithm,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Self, CertError> {
        let key = generate_key(alg)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(org);
        params.serial_number = Some(random_serial());
        params.not_before = x509_time(not_before, "CA certificate")?;
        params.not_after = x509_time(not_after, "CA certificate")?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = key_usages(alg, None);
        let cert = params.self_signed(&key).map_err(|e| CertError::Sign {
            what: "CA certificate".to_owned(),
            source: Box::new(e),
        })?;
        let key_pem = key_to_pem(&key, alg)?;
        Self::from_pem_named(&cert.pem(), &key_pem, "CA certificate", "CA private key")
    }

    /// Use an existing CA given as PEM text.
    ///
    /// The key may be PKCS#1 (`RSA PRIVATE KEY`, what docker-machine writes),
    /// SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`). The certificate must
    /// carry the CA basic constraint and match the key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        Self::from_pem_named(cert_pem, key_pem, "CA certificate", "CA private key")
    }

    /// Read an existing CA from `cert` and `key` (see [`from_pem`](Self::from_pem)).
    /// Errors name the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, CertError> {
        let cert_pem = read_text(cert)?;
        let key_pem = read_text(key)?;
        Self::from_pem_named(
            &cert_pem,
            &key_pem,
            &cert.display().to_string(),
            &key.display().to_string(),
        )
    }

    fn from_pem_named(
        cert_pem: &str,
        key_pem: &str,
        cert_what: &str,
        key_what: &str,
    ) -> Result<Self, CertError> {
        let cert_der = parse_cert_pem(cert_pem, cert_what)?;
        let info = CertInfo::parse(&cert_der, cert_what)?;
        if !info.is_ca {
            return Err(CertError::NotCa {
                what: cert_what.to_owned(),
            });
        }
        let key_der = parse_key_pem(key_pem, key_what)?;
        let key = KeyPair::try_from(&key_der).map_err(|e| CertError::InvalidKey {
            what: key_what.to_owned(),
            source: Box::new(e),
        })?;
        if key.der_bytes() != info.public_key.as_slice() {
            return Err(CertError::KeyMismatch {
                cert: cert_what.to_owned(),
                key: key_what.to_owned(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| {
            CertError::InvalidCertificate {
                what: cert_what.to_owned(),
                source: Box::new(e),
            }
        })?;
        Ok(CertificateAuthority {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
            has_key_id: info.key_id.is_some(),
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }

    /// The CA certificate as PEM text.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key as PEM text.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Start of the CA certificate's validity.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of the CA certificate's validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Whether the CA certificate's validity has ended at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }

    /// Issue a client certificate (extended key usage clientAuth) whose subject
    /// has the single Organization `org`; docker-machine uses
    /// [`client_org`](super::client_org) for it.
    pub fn issue_client(&self, org: &str, alg: KeyAlgorithm) -> Result<CertBundle, CertError> {
        let (not_before, not_after) = default_validity(SystemTime::now());
        self.issue(Role::Client, org, &[], alg, not_before, not_after)
    }

    /// Issue a server certificate (extended key usage serverAuth) whose subject
    /// has the single Organization `org` ([`server_org`](super::server_org)).
    ///
    /// `sans` become the subject alternative names in the order given: values
    /// that parse as IP addresses (IPv6 optionally in brackets) become IP
    /// entries, the rest DNS entries. Repeated values are kept once, at their
    /// first position. docker-machine passes the `--tls-san` values, then the
    /// machine IP, then `localhost`.
    pub fn issue_server(
        &self,
        org: &str,
        sans: &[String],
        alg: KeyAlgorithm,
    ) -> Result<CertBundle, CertError> {
        let (not_before, not_after) = default_validity(SystemTime::now());
        self.issue(Role::Server, org, sans, alg, not_before, not_after)
    }

    /// [`issue_client`](Self::issue_client) with an explicit validity period.
    /// Meant for tests.
    #[doc(hidden)]
    pub fn issue_client_with_validity(
        &self,
        org: &str,
        alg: KeyAlgorithm,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<CertBundle, CertError> {
        self.issue(Role::Client, org, &[], alg, not_before, not_after)
    }

    /// [`issue_server`](Self::issue_server) with an explicit validity period.
    /// Meant for tests.
    #[doc(hidden)]
    pub fn issue_server_with_validity(
        &self,
        org: &str,
        sans: &[String],
        alg: KeyAlgorithm,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<CertBundle, CertError> {
        self.issue(Role::Server, org, sans, alg, not_before, not_after)
    }

    fn issue(
        &self,
        role: Role,
        org: &str,
        sans: &[String],
        alg: KeyAlgorithm,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<CertBundle, CertError> {
        let what = match role {
            Role::Client => "client certificate",
            Role::Server => "server certificate",
        };
        let mut params = CertificateParams::default();
        if role == Role::Server {
            params.subject_alt_names = san_list(sans)?;
            if params.subject_alt_names.is_empty() {
                return Err(CertError::NoSubjectAltNames);
            }
        }
        let key = generate_key(alg)?;
        params.distinguished_name = subject(org);
        params.serial_number = Some(random_serial());
        params.not_before = x509_time(not_before, what)?;
        params.not_after = x509_time(not_after, what)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages(alg, Some(role));
        params.extended_key_usages = vec![match role {
            Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
            Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        params.use_authority_key_identifier_extension = self.has_key_id;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| CertError::Sign {
                what: what.to_owned(),
                source: Box::new(e),
            })?;
        Ok(CertBundle {
            cert_pem: cert.pem(),
            key_pem: key_to_pem(&key, alg)?,
        })
    }
}

/// Validity like the original: from `now` minus five minutes, with seconds
/// dropped, for 1080 days.
pub(crate) fn default_validity(now: SystemTime) -> (SystemTime, SystemTime) {
    let start = now.checked_sub(BACKDATE).unwrap_or(SystemTime::UNIX_EPOCH);
    let secs = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 60);
    let not_after = not_before + Duration::from_secs(VALIDITY_DAYS * 24 * 60 * 60);
    (not_before, not_after)
}

/// `t` as a certificate time; X.509 can express the years 0 to 9999.
fn x509_time(t: SystemTime, what: &str) -> Result<OffsetDateTime, CertError> {
    super::offset_time(t)
        .filter(|dt| (0..=9999).contains(&dt.year()))
        .ok_or_else(|| CertError::Sign {
            what: what.to_owned(),
            source: "validity date outside what X.509 can express".into(),
        })
}

fn subject(org: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn
}

/// A random serial number in 1..2^128.
fn random_serial() -> SerialNumber {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    let mut rng = rand::thread_rng();
    loop {
        rng.fill_bytes(&mut bytes);
        if bytes.iter().any(|&b| b != 0) {
            return SerialNumber::from_slice(&bytes);
        }
    }
}

/// Key usages: the original sets digitalSignature, keyEncipherment and
/// keyAgreement (plus certSign for the CA) and only digitalSignature for
/// clients. keyEncipherment is left out for ECDSA keys, where RFC 5480
/// forbids it.
fn key_usages(alg: KeyAlgorithm, role: Option<Role>) -> Vec<KeyUsagePurpose> {
    use KeyUsagePurpose::*;
    let mut usages = match role {
        Some(Role::Client) => return vec![DigitalSignature],
        Some(Role::Server) => vec![DigitalSignature, KeyEncipherment, KeyAgreement],
        None => vec![KeyCertSign, DigitalSignature, KeyEncipherment, KeyAgreement],
    };
    if alg == KeyAlgorithm::EcdsaP256 {
        usages.retain(|u| *u != KeyEncipherment);
    }
    usages
}

fn san_list(sans: &[String]) -> Result<Vec<SanType>, CertError> {
    let mut out: Vec<SanType> = Vec::with_capacity(sans.len());
    for raw in sans {
        let value = raw.trim();
        if value.is_empty() {
            return Err(CertError::InvalidSan {
                value: raw.clone(),
                reason: "empty",
            });
        }
        let ip_text = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(value);
        let san = match ip_text.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                if value
                    .chars()
                    .any(|c| !c.is_ascii() || c.is_ascii_whitespace() || c.is_ascii_control())
                {
                    return Err(CertError::InvalidSan {
                        value: raw.clone(),
                        reason: "not an IP address, and a DNS name must be printable ASCII without spaces",
                    });
                }
                let name = rcgen::string::Ia5String::try_from(value).map_err(|_| {
                    CertError::InvalidSan {
                        value: raw.clone(),
                        reason: "not representable as a DNS name",
                    }
                })?;
                SanType::DnsName(name)
            }
        };
        if !out.contains(&san) {
            out.push(san);
        }
    }
    Ok(out)
}

fn generate_key(alg: KeyAlgorithm) -> Result<KeyPair, CertError> {
    let generated = match alg {
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
    };
    generated.map_err(|e| CertError::KeyGeneration {
        alg,
        source: Box::new(e),
    })
}

/// PEM of a freshly generated key: PKCS#1 for RSA (like the original), PKCS#8
/// for ECDSA.
fn key_to_pem(key: &KeyPair, alg: KeyAlgorithm) -> Result<String, CertError> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Ok(key.serialize_pem()),
        KeyAlgorithm::Rsa2048 => {
            let encode_err = |e: BoxError| CertError::InvalidKey {
                what: "generated RSA key".to_owned(),
                source: e,
            };
            let info = pkcs8::PrivateKeyInfo::try_from(key.serialized_der())
                .map_err(|e| encode_err(Box::new(e)))?;
            pkcs8::der::pem::encode_string(
                "RSA PRIVATE KEY",
                pkcs8::LineEnding::LF,
                info.private_key,
            )
            .map_err(|e| encode_err(e.to_string().into()))
        }
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

/// First `CERTIFICATE` block of `pem_text`.
pub(crate) fn parse_cert_pem(
    pem_text: &str,
    what: &str,
) -> Result<CertificateDer<'static>, CertError> {
    CertificateDer::from_pem_slice(pem_text.as_bytes()).map_err(|e| match e {
        pem::Error::NoItemsFound => CertError::NoPemBlock {
            what: what.to_owned(),
            expected: "CERTIFICATE",
        },
        source => CertError::Pem {
            what: what.to_owned(),
            source,
        },
    })
}

/// First private key block (PKCS#1, SEC1 or PKCS#8) of `pem_text`.
pub(crate) fn parse_key_pem(
    pem_text: &str,
    what: &str,
) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem_text.as_bytes()).map_err(|e| match e {
        pem::Error::NoItemsFound => CertError::NoPemBlock {
            what: what.to_owned(),
            expected: "private key",
        },
        source => CertError::Pem {
            what: what.to_owned(),
            source,
        },
    })
}

/// The parts of a certificate this module looks at.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    pub(crate) is_ca: bool,
    /// Contents of the subjectPublicKey bit string.
    pub(crate) public_key: Vec<u8>,
    /// IP addresses and DNS names of the subject alternative names, in order.
    pub(crate) names: Vec<String>,
    /// The subject key identifier, if the certificate has one.
    pub(crate) key_id: Option<Vec<u8>>,
}

impl CertInfo {
    pub(crate) fn parse(der: &CertificateDer<'_>, what: &str) -> Result<Self, CertError> {
        use x509_parser::extensions::{GeneralName, ParsedExtension};
        let invalid = |source: BoxError| CertError::InvalidCertificate {
            what: what.to_owned(),
            source,
        };
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| invalid(Box::new(e)))?;
        let mut names = Vec::new();
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| invalid(Box::new(e)))?
        {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => names.push((*n).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let key_id = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        Ok(CertInfo {
            key_id,
            not_before: system_time(cert.validity().not_before.timestamp()),
            not_after: system_time(cert.validity().not_after.timestamp()),
            is_ca: cert.is_ca(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            names,
        })
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(unix.unsigned_abs()))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_backdated_and_rounded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_123);
        let (nb, na) = default_validity(now);
        let nb_s = nb
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch")
            .as_secs();
        assert_eq!(nb_s % 60, 0);
        assert!(nb_s <= 1_700_000_123 - 300 && nb_s > 1_700_000_123 - 360);
        assert_eq!(
            na.duration_since(nb).expect("ordered"),
            Duration::from_secs(1080 * 86_400)
        );
    }

    #[test]
    fn san_list_kinds_order_and_errors() {
        let sans: Vec<String> = [
            "docker.example",
            "10.1.2.3",
            "[::1]",
            "10.1.2.3",
            "localhost",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let list = san_list(&sans).expect("sans");
        assert_eq!(list.len(), 4);
        assert!(matches!(&list[0], SanType::DnsName(n) if n.as_str() == "docker.example"));
        assert!(matches!(&list[1], SanType::IpAddress(ip) if ip.to_string() == "10.1.2.3"));
        assert!(matches!(&list[2], SanType::IpAddress(ip) if ip.to_string() == "::1"));
        assert!(matches!(&list[3], SanType::DnsName(n) if n.as_str() == "localhost"));

        for bad in ["", "two words", "h\u{e9}te"] {
            assert!(matches!(
                san_list(&[bad.to_string()]),
                Err(CertError::InvalidSan { value, .. }) if value == bad
            ));
        }
    }

    #[test]
    fn key_usage_sets() {
        use KeyUsagePurpose::*;
        assert_eq!(
            key_usages(KeyAlgorithm::Rsa2048, None),
            vec![KeyCertSign, DigitalSignature, KeyEncipherment, KeyAgreement]
        );
        assert_eq!(
            key_usages(KeyAlgorithm::EcdsaP256, Some(Role::Server)),
            vec![DigitalSignature, KeyAgreement]
        );
        assert_eq!(
            key_usages(KeyAlgorithm::Rsa2048, Some(Role::Client)),
            vec![DigitalSignature]
        );
    }

    #[test]
    fn serials_are_positive_and_distinct() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != 0));
    }
}
