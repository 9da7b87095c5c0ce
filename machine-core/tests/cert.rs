//! Certificates: generated contents, mutual-TLS handshakes, store bootstrap and
//! local verification.
//!
//! Everything sits in module `cert` so that `cargo test cert` selects it.

mod cert {
    use std::net::Ipv4Addr;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use machine_core::cert::{
        bootstrap, client_org, client_tls_config, server_org, server_tls_config,
        shared_client_tls_config, verify_client_cert, verify_server_cert, BootstrapOutcome,
        CertBundle, CertError, CertPaths, CertificateAuthority, KeyAlgorithm,
    };
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    const DAY: u64 = 86_400;
    const ALGS: [KeyAlgorithm; 2] = [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcdsaP256];

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read_to_string(&path).expect("fixture")
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
    }

    fn parse<'a>(der: &'a CertificateDer<'a>) -> X509Certificate<'a> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).expect("X.509");
        assert!(rest.is_empty());
        cert
    }

    fn sans(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn unix(t: SystemTime) -> i64 {
        i64::try_from(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after epoch")
                .as_secs(),
        )
        .expect("fits")
    }

    /// The subject holds exactly one attribute: Organization = `org`.
    fn assert_only_org(cert: &X509Certificate<'_>, org: &str) {
        let attrs: Vec<_> = cert.subject().iter_attributes().collect();
        assert_eq!(attrs.len(), 1, "subject must hold only the organisation");
        let orgs: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().expect("string"))
            .collect();
        assert_eq!(orgs, vec![org]);
    }

    /// Valid from about five minutes ago, for 1080 days.
    fn assert_default_validity(cert: &X509Certificate<'_>) {
        let now = unix(SystemTime::now());
        let nb = cert.validity().not_before.timestamp();
        let na = cert.validity().not_after.timestamp();
        assert!(
            nb <= now - 300 && nb >= now - 300 - 120,
            "not_before {nb} vs now {now}"
        );
        assert_eq!(nb % 60, 0, "not_before has its seconds dropped");
        assert_eq!(na - nb, 1080 * 86_400);
    }

    /// Positive and below 2^128; returns the minimal big-endian bytes.
    fn serial_bytes(cert: &X509Certificate<'_>) -> Vec<u8> {
        let raw = cert.raw_serial();
        assert!(!raw.is_empty());
        assert!(raw[0] & 0x80 == 0, "serial must be positive");
        let trimmed: Vec<u8> = raw.iter().copied().skip_while(|&b| b == 0).collect();
        assert!(!trimmed.is_empty(), "serial must not be zero");
        assert!(trimmed.len() <= 16, "serial must be below 2^128");
        trimmed
    }

    /// The subject key identifier of `cert`, if any.
    fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
        cert.iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
    }

    /// The key identifier of the authority key identifier of `cert`, if any.
    fn authority_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
        cert.iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => None,
            })
    }

    fn key_header(bundle_key: &str) -> &str {
        bundle_key.lines().next().expect("first line")
    }

    #[test]
    fn generated_certificates_have_docker_machine_contents() {
        for alg in ALGS {
            let ca = CertificateAuthority::generate("alice", alg).expect("CA");
            let client = ca.issue_client(&client_org("alice"), alg).expect("client");
            let server = ca
                .issue_server(
                    &server_org("alice", "dev"),
                    &sans(&["docker.example.com", "10.0.0.7", "fd00::1", "localhost"]),
                    alg,
                )
                .expect("server");

            let expected_header = match alg {
                KeyAlgorithm::Rsa2048 => "-----BEGIN RSA PRIVATE KEY-----",
                KeyAlgorithm::EcdsaP256 => "-----BEGIN PRIVATE KEY-----",
            };
            for key in [ca.key_pem(), &client.key_pem, &server.key_pem] {
                assert_eq!(key_header(key), expected_header, "{alg}");
            }

            let ca_der = der(ca.cert_pem());
            let client_der = der(&client.cert_pem);
            let server_der = der(&server.cert_pem);
            let ca_x = parse(&ca_der);
            let client_x = parse(&client_der);
            let server_x = parse(&server_der);

            // CA
            assert_only_org(&ca_x, "alice");
            assert!(ca_x.is_ca());
            let ku = ca_x.key_usage().expect("ku").expect("present").value;
            assert!(ku.key_cert_sign() && ku.digital_signature() && ku.key_agreement());
            assert_eq!(ku.key_encipherment(), alg == KeyAlgorithm::Rsa2048);
            assert_eq!(ca_x.issuer().as_raw(), ca_x.subject().as_raw());
            assert_default_validity(&ca_x);
            let skew = (unix(ca.not_after()) - ca_x.validity().not_after.timestamp()).abs();
            assert_eq!(skew, 0);

            // Client
            assert_only_org(&client_x, "alice.<bootstrap>");
            assert!(!client_x.is_ca());
            let eku = client_x
                .extended_key_usage()
                .expect("eku")
                .expect("present")
                .value;
            assert!(eku.client_auth && !eku.server_auth && !eku.any);
            assert!(client_x.subject_alternative_name().expect("san").is_none());
            assert_eq!(client_x.issuer().as_raw(), ca_x.subject().as_raw());
            assert_default_validity(&client_x);

            // Server
            assert_only_org(&server_x, "alice.dev");
            assert!(!server_x.is_ca());
            let eku = server_x
                .extended_key_usage()
                .expect("eku")
                .expect("present")
                .value;
            assert!(eku.server_auth && !eku.client_auth && !eku.any);
            let names = &server_x
                .subject_alternative_name()
                .expect("san")
                .expect("present")
                .value
                .general_names;
            assert_eq!(names.len(), 4);
            assert!(matches!(
                names[0],
                GeneralName::DNSName("docker.example.com")
            ));
            assert!(matches!(names[1], GeneralName::IPAddress(ip) if ip == [10, 0, 0, 7]));
            assert!(
                matches!(names[2], GeneralName::IPAddress(ip) if ip == "fd00::1".parse::<std::net::Ipv6Addr>().expect("ip").octets())
            );
            assert!(matches!(names[3], GeneralName::DNSName("localhost")));
            assert_eq!(server_x.issuer().as_raw(), ca_x.subject().as_raw());
            assert_default_validity(&server_x);

            // Issued certificates point at the CA's key identifier.
            let ca_key_id = subject_key_id(&ca_x).expect("CA has a subject key identifier");
            assert_eq!(authority_key_id(&client_x).as_ref(), Some(&ca_key_id));
            assert_eq!(authority_key_id(&server_x).as_ref(), Some(&ca_key_id));

            // Serials: positive, below 2^128, all different.
            let serials = [
                serial_bytes(&ca_x),
                serial_bytes(&client_x),
                serial_bytes(&server_x),
            ];
            assert_ne!(serials[0], serials[1]);
            assert_ne!(serials[0], serials[2]);
            assert_ne!(serials[1], serials[2]);

            // The client cert works for client authentication.
            verify_client_cert(ca.cert_pem(), &client.cert_pem, SystemTime::now())
                .expect("client ok");
        }
    }

    #[test]
    fn server_without_names_or_with_bad_names_is_refused() {
        let ca = CertificateAuthority::generate("alice", KeyAlgorithm::EcdsaP256).expect("CA");
        assert!(matches!(
            ca.issue_server("alice.dev", &[], KeyAlgorithm::EcdsaP256),
            Err(CertError::NoSubjectAltNames)
        ));
        assert!(matches!(
            ca.issue_server("alice.dev", &sans(&["ok.example", "not ok"]), KeyAlgorithm::EcdsaP256),
            Err(CertError::InvalidSan { value, .. }) if value == "not ok"
        ));
    }

    #[test]
    fn loading_rejects_mismatched_or_non_ca_inputs() {
        let ca = CertificateAuthority::generate("alice", KeyAlgorithm::EcdsaP256).expect("CA");
        let other = CertificateAuthority::generate("bob", KeyAlgorithm::EcdsaP256).expect("CA");
        assert!(matches!(
            CertificateAuthority::from_pem(ca.cert_pem(), other.key_pem()),
            Err(CertError::KeyMismatch { .. })
        ));
        let leaf = ca
            .issue_client("alice.<bootstrap>", KeyAlgorithm::EcdsaP256)
            .expect("leaf");
        assert!(matches!(
            CertificateAuthority::from_pem(&leaf.cert_pem, &leaf.key_pem),
            Err(CertError::NotCa { .. })
        ));
        assert!(matches!(
            CertificateAuthority::from_pem("not pem at all", ca.key_pem()),
            Err(CertError::NoPemBlock { what, .. }) if what == "CA certificate"
        ));
        assert!(matches!(
            CertificateAuthority::from_pem(ca.cert_pem(), "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
            Err(CertError::Pem { what, .. }) if what == "CA private key"
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        match CertificateAuthority::load(&missing, &missing) {
            Err(CertError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected a read error, got {other:?}"),
        }
        // A loaded CA keeps the PEM text exactly.
        let reloaded = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).expect("reload");
        assert_eq!(reloaded.cert_pem(), ca.cert_pem());
        assert_eq!(reloaded.key_pem(), ca.key_pem());
        assert_eq!(reloaded.not_after(), ca.not_after());
    }

    #[test]
    fn docker_machine_style_cas_load_and_sign() {
        // An RSA CA like the original writes (PKCS#1 key, PrintableString subject),
        // the same key as PKCS#8, and an EC CA with a SEC1 key.
        let rsa_cert = fixture("ca.pem");
        let cases = [
            (rsa_cert.clone(), fixture("ca-key.pem")),
            (rsa_cert, fixture("ca-key-pkcs8.pem")),
            (fixture("ec-ca.pem"), fixture("ec-ca-key.pem")),
        ];
        for (i, (cert_pem, key_pem)) in cases.iter().enumerate() {
            let ca = CertificateAuthority::from_pem(cert_pem, key_pem).expect("load fixture CA");
            let alg = if i == 0 {
                KeyAlgorithm::Rsa2048
            } else {
                KeyAlgorithm::EcdsaP256
            };
            let server = ca
                .issue_server("alice.dev", &sans(&["192.168.99.100", "localhost"]), alg)
                .expect("issue");
            verify_server_cert(
                cert_pem,
                &server.cert_pem,
                "192.168.99.100",
                SystemTime::now(),
            )
            .expect("server cert from a loaded CA verifies");
            verify_server_cert(cert_pem, &server.cert_pem, "localhost", SystemTime::now())
                .expect("localhost");
            // The issuer name is copied byte for byte from the CA's subject, and
            // an authority key identifier is written only when the CA has a
            // subject key identifier (older docker-machine CAs have none).
            let ca_der = der(cert_pem);
            let server_der = der(&server.cert_pem);
            let (ca_x, server_x) = (parse(&ca_der), parse(&server_der));
            assert_eq!(server_x.issuer().as_raw(), ca_x.subject().as_raw());
            assert_eq!(authority_key_id(&server_x), subject_key_id(&ca_x));
            assert_eq!(subject_key_id(&ca_x).is_some(), i == 2);
        }
    }

    // ---------------------------------------------------------------------------
    // Mutual TLS over real sockets.

    struct Pki {
        ca: CertificateAuthority,
        client: CertBundle,
        server: CertBundle,
    }

    fn pki(alg: KeyAlgorithm) -> Pki {
        let ca = CertificateAuthority::generate("alice", alg).expect("CA");
        let client = ca.issue_client("alice.<bootstrap>", alg).expect("client");
        let server = ca
            .issue_server("alice.dev", &sans(&["127.0.0.1", "localhost"]), alg)
            .expect("server");
        Pki { ca, client, server }
    }

    #[derive(Debug)]
    struct Outcome {
        client: Result<Vec<u8>, String>,
        server: Result<Vec<u8>, String>,
    }

    /// The rustls error inside an I/O error, in its Debug form (names the kind),
    /// or the I/O error's text.
    fn describe(e: std::io::Error) -> String {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => format!("{tls:?}"),
            None => e.to_string(),
        }
    }

    /// Run one connection: the client sends `ping`, the server answers `pong`.
    async fn exchange(
        server_cfg: Arc<rustls::ServerConfig>,
        client_cfg: Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Outcome {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(describe)?;
            let mut tls = acceptor.accept(tcp).await.map_err(describe)?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(describe)?;
            tls.write_all(b"pong").await.map_err(describe)?;
            tls.shutdown().await.map_err(describe)?;
            Ok::<Vec<u8>, String>(buf.to_vec())
        });
        let connector = tokio_rustls::TlsConnector::from(client_cfg);
        let server_name = ServerName::try_from(name.to_owned()).expect("name");
        let client = async move {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(describe)?;
            let mut tls = connector
                .connect(server_name, tcp)
                .await
                .map_err(describe)?;
            tls.write_all(b"ping").await.map_err(describe)?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.map_err(describe)?;
            Ok::<Vec<u8>, String>(buf.to_vec())
        };
        let run = async {
            let client = client.await;
            let server = server.await.map_err(|e| e.to_string()).and_then(|r| r);
            Outcome { client, server }
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("handshake finished in time")
    }

    #[tokio::test]
    async fn one_shared_client_configuration_per_identity_and_it_works() {
        let p = pki(KeyAlgorithm::EcdsaP256);
        let (ca, cert, key) = (p.ca.cert_pem(), &p.client.cert_pem, &p.client.key_pem);
        let a = shared_client_tls_config(ca, cert, key).expect("client config");
        let b = shared_client_tls_config(ca, cert, key).expect("client config");
        assert!(
            std::sync::Arc::ptr_eq(&a, &b),
            "the same identity, one configuration"
        );
        let other =
            p.ca.issue_client("bob.<bootstrap>", KeyAlgorithm::EcdsaP256)
                .expect("client");
        let c = shared_client_tls_config(ca, &other.cert_pem, &other.key_pem).expect("config");
        assert!(
            !std::sync::Arc::ptr_eq(&a, &c),
            "another key, another configuration"
        );
        assert!(shared_client_tls_config(ca, cert, "not a key").is_err());
        let server_cfg =
            server_tls_config(ca, &p.server.cert_pem, &p.server.key_pem).expect("server config");
        let out = exchange(server_cfg, b, "localhost").await;
        assert_eq!(out.client.as_deref(), Ok(&b"pong"[..]), "{out:?}");
    }

    #[tokio::test]
    async fn mutual_tls_accepts_the_right_client_and_data_flows() {
        for alg in ALGS {
            let p = pki(alg);
            let server_cfg =
                server_tls_config(p.ca.cert_pem(), &p.server.cert_pem, &p.server.key_pem)
                    .expect("server config");
            let client_cfg =
                client_tls_config(p.ca.cert_pem(), &p.client.cert_pem, &p.client.key_pem)
                    .expect("client config");
            for name in ["127.0.0.1", "localhost"] {
                let out = exchange(server_cfg.clone(), client_cfg.clone(), name).await;
                assert_eq!(
                    out.server.as_deref(),
                    Ok(&b"ping"[..]),
                    "{alg} {name}: {out:?}"
                );
                assert_eq!(
                    out.client.as_deref(),
                    Ok(&b"pong"[..]),
                    "{alg} {name}: {out:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn mutual_tls_rejects_wrong_certificates() {
        for alg in ALGS {
            let p = pki(alg);
            let server_cfg =
                server_tls_config(p.ca.cert_pem(), &p.server.cert_pem, &p.server.key_pem)
                    .expect("server config");

            // A client certificate from another CA.
            let other = CertificateAuthority::generate("mallory", alg).expect("other CA");
            let stranger = other
                .issue_client("mallory.<bootstrap>", alg)
                .expect("client");
            let cfg = client_tls_config(p.ca.cert_pem(), &stranger.cert_pem, &stranger.key_pem)
                .expect("client config");
            let out = exchange(server_cfg.clone(), cfg, "localhost").await;
            let err = out
                .server
                .clone()
                .expect_err("server must refuse a foreign client cert");
            assert!(err.contains("UnknownIssuer"), "{alg}: {err}");
            assert!(out.client.is_err(), "{alg}: {out:?}");

            // The server certificate presented as a client certificate (wrong EKU).
            let cfg = client_tls_config(p.ca.cert_pem(), &p.server.cert_pem, &p.server.key_pem)
                .expect("client config");
            let out = exchange(server_cfg.clone(), cfg, "localhost").await;
            let err = out
                .server
                .clone()
                .expect_err("server must refuse a serverAuth-only cert");
            assert!(err.contains("InvalidPurpose"), "{alg}: {err}");
            assert!(out.client.is_err(), "{alg}: {out:?}");

            // A server certificate that does not cover the name dialled.
            let cfg = client_tls_config(p.ca.cert_pem(), &p.client.cert_pem, &p.client.key_pem)
                .expect("client config");
            let out = exchange(server_cfg.clone(), cfg, "docker.other.example").await;
            let err = out
                .client
                .clone()
                .expect_err("client must refuse a cert for other names");
            assert!(err.contains("NotValidForName"), "{alg}: {err}");
            assert!(out.server.is_err(), "{alg}: {out:?}");
        }
    }

    #[test]
    fn tls_configs_reject_mismatched_keys_and_bad_pem() {
        let p = pki(KeyAlgorithm::EcdsaP256);
        assert!(matches!(
            client_tls_config(p.ca.cert_pem(), &p.client.cert_pem, &p.server.key_pem),
            Err(CertError::KeyMismatch { .. })
        ));
        assert!(matches!(
            server_tls_config(p.ca.cert_pem(), &p.server.cert_pem, "garbage"),
            Err(CertError::NoPemBlock { .. })
        ));
        assert!(matches!(
            client_tls_config("", &p.client.cert_pem, &p.client.key_pem),
            Err(CertError::NoPemBlock { what, .. }) if what == "CA certificate"
        ));
    }

    // ---------------------------------------------------------------------------
    // Bootstrap of the store's certificates.

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    fn snapshot(paths: &CertPaths) -> Vec<Vec<u8>> {
        [
            &paths.ca_cert,
            &paths.ca_key,
            &paths.client_cert,
            &paths.client_key,
        ]
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
    }

    #[test]
    fn bootstrap_creates_private_files_and_then_keeps_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("store/certs");
        let paths = CertPaths::in_dir(&certs);
        let outcome = bootstrap(&paths, "alice", KeyAlgorithm::Rsa2048).expect("bootstrap");
        assert_eq!(outcome, BootstrapOutcome::Created);
        for p in [
            &paths.ca_cert,
            &paths.ca_key,
            &paths.client_cert,
            &paths.client_key,
        ] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        assert_eq!(mode(&certs), 0o700);
        let names: Vec<String> = std::fs::read_dir(&certs)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "no temporary files left: {names:?}");

        let ca_pem = std::fs::read_to_string(&paths.ca_cert).expect("read");
        let client_pem = std::fs::read_to_string(&paths.client_cert).expect("read");
        let ca_key = std::fs::read_to_string(&paths.ca_key).expect("read");
        let client_key = std::fs::read_to_string(&paths.client_key).expect("read");
        assert_eq!(key_header(&ca_key), "-----BEGIN RSA PRIVATE KEY-----");
        assert_eq!(key_header(&client_key), "-----BEGIN RSA PRIVATE KEY-----");
        let ca_der = der(&ca_pem);
        assert_only_org(&parse(&ca_der), "alice");
        let client_der = der(&client_pem);
        assert_only_org(&parse(&client_der), "alice.<bootstrap>");
        verify_client_cert(&ca_pem, &client_pem, SystemTime::now()).expect("client chains to CA");
        client_tls_config(&ca_pem, &client_pem, &client_key).expect("usable client set");

        let before = snapshot(&paths);
        let outcome = bootstrap(&paths, "alice", KeyAlgorithm::Rsa2048).expect("again");
        assert_eq!(outcome, BootstrapOutcome::Existing);
        assert_eq!(
            snapshot(&paths),
            before,
            "an existing set is left byte-identical"
        );
    }

    #[test]
    fn bootstrap_refuses_a_lone_ca_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = CertPaths::in_dir(dir.path());
        std::fs::write(&paths.ca_key, "precious").expect("write");
        match bootstrap(&paths, "alice", KeyAlgorithm::EcdsaP256) {
            Err(e @ CertError::OrphanCaKey { .. }) => {
                assert!(
                    e.to_string().contains(&paths.ca_key.display().to_string()),
                    "{e}"
                );
            }
            other => panic!("expected OrphanCaKey, got {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(&paths.ca_key).expect("read"),
            "precious"
        );
        assert!(!paths.ca_cert.exists());
        assert!(!paths.client_cert.exists());
    }

    #[test]
    fn bootstrap_needs_the_key_of_a_current_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = CertPaths::in_dir(dir.path());
        let ca = CertificateAuthority::generate("alice", KeyAlgorithm::EcdsaP256).expect("CA");
        std::fs::write(&paths.ca_cert, ca.cert_pem()).expect("write");
        assert!(matches!(
            bootstrap(&paths, "alice", KeyAlgorithm::EcdsaP256),
            Err(CertError::MissingCaKey { key, .. }) if key == paths.ca_key
        ));
        // A corrupt CA certificate is reported, not replaced.
        std::fs::write(&paths.ca_cert, "junk").expect("write");
        std::fs::write(&paths.ca_key, ca.key_pem()).expect("write");
        assert!(matches!(
            bootstrap(&paths, "alice", KeyAlgorithm::EcdsaP256),
            Err(CertError::NoPemBlock { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(&paths.ca_cert).expect("read"),
            "junk"
        );
    }

    #[test]
    fn bootstrap_regenerates_an_expired_ca_and_its_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = CertPaths::in_dir(dir.path());
        let now = SystemTime::now();
        let old = CertificateAuthority::generate_with_validity(
            "alice",
            KeyAlgorithm::EcdsaP256,
            now - Duration::from_secs(1200 * DAY),
            now - Duration::from_secs(120 * DAY),
        )
        .expect("old CA");
        assert!(old.is_expired_at(now));
        let old_client = old
            .issue_client("alice.<bootstrap>", KeyAlgorithm::EcdsaP256)
            .expect("old client");
        std::fs::write(&paths.ca_cert, old.cert_pem()).expect("write");
        std::fs::write(&paths.ca_key, old.key_pem()).expect("write");
        std::fs::write(&paths.client_cert, &old_client.cert_pem).expect("write");
        std::fs::write(&paths.client_key, &old_client.key_pem).expect("write");

        let outcome = bootstrap(&paths, "alice", KeyAlgorithm::EcdsaP256).expect("bootstrap");
        assert_eq!(outcome, BootstrapOutcome::RegeneratedExpired);
        let ca = CertificateAuthority::load(&paths.ca_cert, &paths.ca_key).expect("new CA");
        assert!(ca.not_after() > now + Duration::from_secs(1000 * DAY));
        assert_ne!(ca.key_pem(), old.key_pem());
        let client_pem = std::fs::read_to_string(&paths.client_cert).expect("read");
        assert_ne!(client_pem, old_client.cert_pem);
        verify_client_cert(ca.cert_pem(), &client_pem, SystemTime::now())
            .expect("new client chains");
        for p in [
            &paths.ca_cert,
            &paths.ca_key,
            &paths.client_cert,
            &paths.client_key,
        ] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
    }

    #[test]
    fn bootstrap_reissues_a_missing_client_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = CertPaths::in_dir(dir.path());
        bootstrap(&paths, "alice", KeyAlgorithm::EcdsaP256).expect("first");
        let ca_before = std::fs::read(&paths.ca_cert).expect("read");
        let client_before = std::fs::read(&paths.client_cert).expect("read");
        std::fs::remove_file(&paths.client_key).expect("rm");
        let outcome = bootstrap(&paths, "alice", KeyAlgorithm::EcdsaP256).expect("second");
        assert_eq!(outcome, BootstrapOutcome::Existing);
        assert_eq!(std::fs::read(&paths.ca_cert).expect("read"), ca_before);
        assert_ne!(
            std::fs::read(&paths.client_cert).expect("read"),
            client_before
        );
        let ca_pem = String::from_utf8(ca_before).expect("utf8");
        let client_pem = std::fs::read_to_string(&paths.client_cert).expect("read");
        let client_key = std::fs::read_to_string(&paths.client_key).expect("read");
        client_tls_config(&ca_pem, &client_pem, &client_key).expect("new pair matches");
    }

    #[test]
    fn bootstrap_uses_a_docker_machine_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = CertPaths::in_dir(dir.path());
        std::fs::write(&paths.ca_cert, fixture("ca.pem")).expect("write");
        std::fs::write(&paths.ca_key, fixture("ca-key.pem")).expect("write");
        let outcome = bootstrap(&paths, "alice", KeyAlgorithm::Rsa2048).expect("bootstrap");
        assert_eq!(outcome, BootstrapOutcome::Existing);
        assert_eq!(
            std::fs::read_to_string(&paths.ca_cert).expect("read"),
            fixture("ca.pem")
        );
        assert_eq!(
            std::fs::read_to_string(&paths.ca_key).expect("read"),
            fixture("ca-key.pem")
        );
        let client_pem = std::fs::read_to_string(&paths.client_cert).expect("read");
        verify_client_cert(&fixture("ca.pem"), &client_pem, SystemTime::now()).expect("chains");
    }

    // ---------------------------------------------------------------------------
    // Local verification.

    #[test]
    fn verify_server_cert_explains_each_failure() {
        let alg = KeyAlgorithm::EcdsaP256;
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate_with_validity(
            "alice",
            alg,
            now - Duration::from_secs(30 * DAY),
            now + Duration::from_secs(1000 * DAY),
        )
        .expect("CA");
        let server = ca
            .issue_server(
                "alice.dev",
                &sans(&["dev.example", "10.0.0.7", "localhost"]),
                alg,
            )
            .expect("server");

        // OK for each name it lists.
        for host in ["10.0.0.7", "dev.example", "localhost"] {
            verify_server_cert(ca.cert_pem(), &server.cert_pem, host, now).expect(host);
        }

        // Signed by another CA.
        let other = CertificateAuthority::generate("alice", alg).expect("other CA");
        assert!(matches!(
            verify_server_cert(other.cert_pem(), &server.cert_pem, "10.0.0.7", now),
            Err(CertError::NotSignedByCa { what }) if what == "server certificate"
        ));

        // Host not covered: the error names the host and what is covered.
        let err = verify_server_cert(ca.cert_pem(), &server.cert_pem, "10.0.0.8", now)
            .expect_err("wrong IP");
        match &err {
            CertError::HostNotCovered { host, covered, .. } => {
                assert_eq!(host, "10.0.0.8");
                assert_eq!(covered, &sans(&["dev.example", "10.0.0.7", "localhost"]));
            }
            other => panic!("expected HostNotCovered, got {other:?}"),
        }
        assert!(err.to_string().contains("10.0.0.8"), "{err}");
        assert!(matches!(
            verify_server_cert(ca.cert_pem(), &server.cert_pem, "other.example", now),
            Err(CertError::HostNotCovered { host, .. }) if host == "other.example"
        ));

        // Expired and not yet valid server certificates.
        let expired = ca
            .issue_server_with_validity(
                "alice.dev",
                &sans(&["10.0.0.7"]),
                alg,
                now - Duration::from_secs(10 * DAY),
                now - Duration::from_secs(DAY),
            )
            .expect("expired");
        match verify_server_cert(ca.cert_pem(), &expired.cert_pem, "10.0.0.7", now) {
            Err(CertError::Expired { what, not_after }) => {
                assert_eq!(what, "server certificate");
                assert!(not_after < now);
            }
            other => panic!("expected Expired, got {other:?}"),
        }
        // Checked at a time inside its validity, the same certificate is fine.
        verify_server_cert(
            ca.cert_pem(),
            &expired.cert_pem,
            "10.0.0.7",
            now - Duration::from_secs(5 * DAY),
        )
        .expect("valid back then");
        let future = ca
            .issue_server_with_validity(
                "alice.dev",
                &sans(&["10.0.0.7"]),
                alg,
                now + Duration::from_secs(DAY),
                now + Duration::from_secs(10 * DAY),
            )
            .expect("future");
        assert!(matches!(
            verify_server_cert(ca.cert_pem(), &future.cert_pem, "10.0.0.7", now),
            Err(CertError::NotYetValid { .. })
        ));

        // An expired CA fails even if the server certificate is current.
        let old_ca = CertificateAuthority::generate_with_validity(
            "alice",
            alg,
            now - Duration::from_secs(20 * DAY),
            now - Duration::from_secs(DAY),
        )
        .expect("old CA");
        let fresh = old_ca
            .issue_server("alice.dev", &sans(&["10.0.0.7"]), alg)
            .expect("fresh");
        assert!(matches!(
            verify_server_cert(old_ca.cert_pem(), &fresh.cert_pem, "10.0.0.7", now),
            Err(CertError::Expired { what, .. }) if what == "CA certificate"
        ));

        // A client certificate is not a server certificate.
        let client = ca.issue_client("alice.<bootstrap>", alg).expect("client");
        assert!(matches!(
            verify_server_cert(ca.cert_pem(), &client.cert_pem, "10.0.0.7", now),
            Err(CertError::WrongPurpose { .. })
        ));

        // Unparsable inputs are named.
        assert!(matches!(
            verify_server_cert(ca.cert_pem(), "hello", "10.0.0.7", now),
            Err(CertError::NoPemBlock { what, .. }) if what == "server certificate"
        ));
        assert!(matches!(
            verify_server_cert("", &server.cert_pem, "10.0.0.7", now),
            Err(CertError::NoPemBlock { what, .. }) if what == "CA certificate"
        ));
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            verify_server_cert(ca.cert_pem(), broken, "10.0.0.7", now),
            Err(CertError::InvalidCertificate { what, .. }) if what == "server certificate"
        ));
        assert!(matches!(
            verify_server_cert(ca.cert_pem(), &server.cert_pem, "bad host!", now),
            Err(CertError::InvalidHost { .. })
        ));
    }

    #[test]
    fn verify_server_cert_with_ipv6_and_wrong_purpose() {
        let alg = KeyAlgorithm::EcdsaP256;
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate("alice", alg).expect("CA");
        let server = ca
            .issue_server("alice.dev", &sans(&["fd00::7"]), alg)
            .expect("server");
        verify_server_cert(ca.cert_pem(), &server.cert_pem, "fd00::7", now).expect("plain");
        verify_server_cert(ca.cert_pem(), &server.cert_pem, "[fd00::7]", now).expect("brackets");

        // A clientAuth-only certificate that does list the host is refused for
        // its purpose, not for its name.
        let issuer = rcgen::Issuer::from_ca_cert_pem(
            ca.cert_pem(),
            rcgen::KeyPair::from_pem(ca.key_pem()).expect("CA key"),
        )
        .expect("issuer");
        let mut params = rcgen::CertificateParams::new(vec!["fd00::7".to_owned()]).expect("params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().expect("key");
        let client_with_name = params.signed_by(&key, &issuer).expect("sign").pem();
        match verify_server_cert(ca.cert_pem(), &client_with_name, "fd00::7", now) {
            Err(e @ CertError::WrongPurpose { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "server certificate is not valid for server authentication"
                );
            }
            other => panic!("expected WrongPurpose, got {other:?}"),
        }
    }
}
