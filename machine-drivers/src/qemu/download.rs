//! Downloading an image over http or https into a file, hashing it on the way.
//!
//! A [`Downloader`] is an HTTP client (reqwest on hyper, TLS by rustls with
//! the aws-lc-rs provider) that trusts the roots it was made with:
//! [`Downloader::system`] reads the system's bundle (`SSL_CERT_FILE`, else
//! Debian's `/etc/ssl/certs/ca-certificates.crt`). It follows at most
//! [`MAX_REDIRECTS`] redirects, uses no proxy, and ends a download when the
//! server sends nothing for the stall limit ([`STALL_LIMIT`] by default).

use super::image::{ImageError, Progress};
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a download may go without receiving anything.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);
/// How long connecting (TCP and the TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most redirects one download follows.
pub const MAX_REDIRECTS: usize = 7;

/// The PEM file of trusted roots: `SSL_CERT_FILE`, else Debian's bundle.
pub fn system_roots_file() -> PathBuf {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"))
}

/// The certificates of a PEM file as trusted roots. Certificates that are not
/// usable as roots are skipped; a file that cannot be read or parsed is an error.
pub fn roots_from_pem_file(path: &Path) -> Result<rustls::RootCertStore, ImageError> {
    use rustls_pki_types::pem::PemObject;
    let bad = |source| ImageError::Roots {
        path: path.to_path_buf(),
        source,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(bad)? {
        let _ = roots.add(cert.map_err(bad)?);
    }
    Ok(roots)
}

/// An HTTP(S) client for images.
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
    stall: Duration,
}

impl Downloader {
    /// A downloader trusting `roots` for https.
    pub fn new(roots: rustls::RootCertStore) -> Result<Downloader, ImageError> {
        Downloader::with_stall_limit(roots, STALL_LIMIT)
    }

    /// A downloader trusting the system's roots ([`system_roots_file`]).
    pub fn system() -> Result<Downloader, ImageError> {
        Downloader::new(roots_from_pem_file(&system_roots_file())?)
    }

    /// A downloader trusting `roots`, ending a download when the server sends
    /// nothing for `stall`: the response's head must arrive within `stall`
    /// of the request (connecting included, itself bounded by
    /// [`CONNECT_TIMEOUT`]), and each part of the body within `stall` of the
    /// one before.
    pub fn with_stall_limit(
        roots: rustls::RootCertStore,
        stall: Duration,
    ) -> Result<Downloader, ImageError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ImageError::Client {
                source: Box::new(e),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(concat!("machine/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .referer(false)
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(stall)
            .build()
            .map_err(|e| ImageError::Client {
                source: Box::new(e),
            })?;
        Ok(Downloader { client, stall })
    }

    /// GET `url` (following redirects) into `dest`, telling `progress` how far
    /// it got; returns the body's SHA-256 as lowercase hex. Only `200 OK` is
    /// a success.
    pub async fn fetch_to(
        &self,
        url: &str,
        dest: &Path,
        progress: Progress<'_>,
    ) -> Result<String, ImageError> {
        let fail = |e| self.request_error(url, e);
        let mut response = self.client.get(url).send().await.map_err(fail)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(ImageError::HttpStatus {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let length = response.content_length();
        let mut file = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(dest).map_err(|source| ImageError::Io {
                path: dest.to_path_buf(),
                source,
            })?,
        );
        let write_err = |source| ImageError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let mut hasher = sha2::Sha256::new();
        let mut report = Reporter::new(url, length, progress);
        let mut got: u64 = 0;
        while let Some(chunk) = response.chunk().await.map_err(fail)? {
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(write_err)?;
            got += chunk.len() as u64;
            report.at(got, false);
        }
        file.flush().map_err(write_err)?;
        report.at(got, true);
        Ok(hex::encode(hasher.finalize()))
    }

    /// [`image::download`](super::image::download) through this downloader:
    /// `url` into `<cache>/images/<sha256>/disk`, checked against `sha256`.
    pub async fn download(
        &self,
        cache_dir: &Path,
        url: &str,
        sha256: &str,
        progress: Progress<'_>,
    ) -> Result<PathBuf, ImageError> {
        super::image::download_via(Some(self), cache_dir, url, sha256, progress).await
    }

    /// The typed error for a failed request or body read.
    fn request_error(&self, url: &str, e: reqwest::Error) -> ImageError {
        let url = url.to_string();
        if e.is_redirect() {
            return ImageError::Redirects {
                url,
                limit: MAX_REDIRECTS,
            };
        }
        if let Some(tls) = rustls_cause(&e) {
            return match tls {
                rustls::Error::InvalidCertificate(_) => ImageError::Certificate {
                    url,
                    source: tls.clone(),
                },
                _ => ImageError::Tls {
                    url,
                    source: tls.clone(),
                },
            };
        }
        if e.is_timeout() && !e.is_connect() {
            return ImageError::Stalled {
                url,
                limit: self.stall,
            };
        }
        ImageError::Request { url, source: e }
    }
}

/// The TLS error somewhere in `e`'s chain of causes. An I/O error is
/// followed into the error it wraps: its `source()` skips that one.
fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// Progress lines of a download: at most one a second, or at each further
/// tenth of a known length, and one at the end.
struct Reporter<'a> {
    url: &'a str,
    length: Option<u64>,
    progress: Progress<'a>,
    last: Instant,
    last_pct: u64,
}

impl<'a> Reporter<'a> {
    fn new(url: &'a str, length: Option<u64>, progress: Progress<'a>) -> Self {
        Reporter {
            url,
            length,
            progress,
            last: Instant::now(),
            last_pct: 0,
        }
    }

    fn at(&mut self, got: u64, force: bool) {
        let mib = |b: u64| b / (1024 * 1024);
        let pct = self
            .length
            .map(|l| (got * 100).checked_div(l).unwrap_or(100));
        let due = force
            || self.last.elapsed() >= Duration::from_secs(1)
            || pct.is_some_and(|p| p >= self.last_pct + 10);
        if !due {
            return;
        }
        self.last = Instant::now();
        let url = self.url;
        match (pct, self.length) {
            (Some(p), Some(l)) => {
                self.last_pct = p;
                (self.progress)(&format!(
                    "Downloading {url}: {p}% ({} of {} MiB)",
                    mib(got),
                    mib(l)
                ));
            }
            _ => (self.progress)(&format!("Downloading {url}: {} MiB", mib(got))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering each connection with `answer(request
    /// line)`, then closing it.
    async fn serve(answer: fn(&str) -> Vec<u8>) -> (u16, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&req);
                    let line = text.lines().next().unwrap_or_default();
                    let _ = c.write_all(&answer(line)).await;
                    let _ = c.shutdown().await;
                });
            }
        });
        (port, task)
    }

    fn plain() -> Downloader {
        Downloader::new(rustls::RootCertStore::empty()).expect("downloader")
    }

    #[tokio::test]
    async fn https_download_checks_the_server_certificate() {
        use machine_core::cert::{CertificateAuthority, KeyAlgorithm};
        use rustls_pki_types::pem::PemObject;
        let d = tempfile::tempdir().expect("tmp");
        let ca = CertificateAuthority::generate("test", KeyAlgorithm::default()).expect("ca");
        let server = ca
            .issue_server("test", &["127.0.0.1".to_string()], KeyAlgorithm::default())
            .expect("server");
        let cert = rustls_pki_types::CertificateDer::from_pem_slice(server.cert_pem.as_bytes())
            .expect("cert");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
            .expect("key");
        let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        let url = format!("https://127.0.0.1:{port}/disk.img");
        let dest = d.path().join("out");
        // trusted CA: downloaded and hashed
        let ca_file = d.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).expect("ca file");
        let trusted =
            Downloader::new(roots_from_pem_file(&ca_file).expect("roots")).expect("downloader");
        let h = trusted
            .fetch_to(&url, &dest, &|_: &str| {})
            .await
            .expect("https download");
        assert_eq!(h, hex::encode(sha2::Sha256::digest(b"hello")));
        // another CA: refused
        let other = CertificateAuthority::generate("other", KeyAlgorithm::default()).expect("ca");
        let other_file = d.path().join("other.pem");
        std::fs::write(&other_file, other.cert_pem()).expect("ca file");
        let untrusting =
            Downloader::new(roots_from_pem_file(&other_file).expect("roots")).expect("downloader");
        let e = untrusting
            .fetch_to(&url, &dest, &|_: &str| {})
            .await
            .expect_err("untrusted");
        assert!(
            e.to_string().contains("certificate") || e.to_string().contains("Unknown"),
            "{e}"
        );
        assert!(matches!(e, ImageError::Certificate { .. }), "{e:?}");
        let chain = machine_core::host::error_chain(&e);
        assert!(chain.contains("UnknownIssuer"), "{chain}");
    }

    #[tokio::test]
    async fn a_server_that_stops_sending_ends_the_download() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut c, _) = l.accept().await.expect("accept");
            let mut req = [0u8; 1024];
            let _ = c.read(&mut req).await;
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nstart")
                .await
                .expect("write");
            // then nothing, with the connection open
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let d = tempfile::tempdir().expect("tmp");
        let url = format!("http://127.0.0.1:{port}/img.qcow2");
        let dl = Downloader::with_stall_limit(
            rustls::RootCertStore::empty(),
            Duration::from_millis(500),
        )
        .expect("downloader");
        let e = dl
            .fetch_to(&url, &d.path().join("part"), &|_: &str| {})
            .await
            .expect_err("stalled");
        assert!(
            e.to_string().contains("no data for") || format!("{e:?}").contains("no data for"),
            "{e:?}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn chunked_body_is_decoded_and_hashed() {
        let (port, server) = serve(|_| {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                .to_vec()
        })
        .await;
        let d = tempfile::tempdir().expect("tmp");
        let dest = d.path().join("out");
        let h = plain()
            .fetch_to(&format!("http://127.0.0.1:{port}/"), &dest, &|_: &str| {})
            .await
            .expect("body");
        assert_eq!(std::fs::read(&dest).expect("read"), b"hello world");
        assert_eq!(h, hex::encode(sha2::Sha256::digest(b"hello world")));
        server.abort();
    }

    #[tokio::test]
    async fn redirects_are_followed_and_bounded() {
        let (port, server) = serve(|line| {
            if line.starts_with("GET /a/moved ") {
                // relative to the directory of the request
                b"HTTP/1.1 302 Found\r\nLocation: disk.img\r\nContent-Length: 0\r\n\r\n".to_vec()
            } else if line.starts_with("GET /a/disk.img ") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndisk".to_vec()
            } else if line.starts_with("GET /loop ") {
                b"HTTP/1.1 301 Moved Permanently\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"
                    .to_vec()
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
        })
        .await;
        let d = tempfile::tempdir().expect("tmp");
        let dest = d.path().join("out");
        let lines = std::sync::Mutex::new(Vec::<String>::new());
        let progress = |s: &str| lines.lock().expect("lock").push(s.to_string());
        let url = format!("http://127.0.0.1:{port}/a/moved");
        let h = plain()
            .fetch_to(&url, &dest, &progress)
            .await
            .expect("redirected");
        assert_eq!(h, hex::encode(sha2::Sha256::digest(b"disk")));
        let lines = lines.into_inner().expect("lines");
        assert_eq!(
            lines.last().map(String::as_str),
            Some(format!("Downloading {url}: 100% (0 of 0 MiB)").as_str()),
            "{lines:?}"
        );
        let url = format!("http://127.0.0.1:{port}/loop");
        let e = plain()
            .fetch_to(&url, &dest, &|_: &str| {})
            .await
            .expect_err("loop");
        assert!(matches!(e, ImageError::Redirects { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
        let e = plain()
            .fetch_to(
                &format!("http://127.0.0.1:{port}/nope"),
                &dest,
                &|_: &str| {},
            )
            .await
            .expect_err("404");
        assert!(
            matches!(e, ImageError::HttpStatus { status: 404, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("404"), "{e}");
        server.abort();
    }

    #[tokio::test]
    async fn a_body_shorter_than_its_length_is_an_error() {
        let (port, server) =
            serve(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec()).await;
        let d = tempfile::tempdir().expect("tmp");
        let url = format!("http://127.0.0.1:{port}/disk.img");
        let e = plain()
            .fetch_to(&url, &d.path().join("out"), &|_: &str| {})
            .await
            .expect_err("short body");
        assert!(matches!(e, ImageError::Request { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
        server.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_url() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let d = tempfile::tempdir().expect("tmp");
        let url = format!("http://127.0.0.1:{port}/disk.img");
        let e = plain()
            .fetch_to(&url, &d.path().join("out"), &|_: &str| {})
            .await
            .expect_err("refused");
        let ImageError::Request { url: u, source } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(u, &url);
        assert!(source.is_connect(), "{source:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_ends_the_download() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (_c, _) = l.accept().await.expect("accept");
            // the connection stays open; no response
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let d = tempfile::tempdir().expect("tmp");
        let dl = Downloader::with_stall_limit(
            rustls::RootCertStore::empty(),
            Duration::from_millis(500),
        )
        .expect("downloader");
        let t = Instant::now();
        let e = dl
            .fetch_to(
                &format!("http://127.0.0.1:{port}/img.qcow2"),
                &d.path().join("part"),
                &|_: &str| {},
            )
            .await
            .expect_err("no response");
        assert!(matches!(e, ImageError::Stalled { .. }), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        server.abort();
    }

    #[tokio::test]
    async fn downloads_are_checked_and_kept_in_the_cache() {
        let (port, server) =
            serve(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nimage".to_vec()).await;
        let d = tempfile::tempdir().expect("tmp");
        let cache = d.path().join("cache");
        let url = format!("http://127.0.0.1:{port}/disk.img");
        let wrong = "0".repeat(64);
        let e = plain()
            .download(&cache, &url, &wrong, &|_: &str| {})
            .await
            .expect_err("wrong checksum");
        assert!(matches!(e, ImageError::Checksum { .. }), "{e:?}");
        assert!(!cache.join("images").join(&wrong).exists());
        let sum = hex::encode(sha2::Sha256::digest(b"image"));
        let disk = plain()
            .download(&cache, &url, &sum, &|_: &str| {})
            .await
            .expect("download");
        assert_eq!(disk, cache.join("images").join(&sum).join("disk"));
        assert_eq!(std::fs::read(&disk).expect("disk"), b"image");
        // kept: no request the second time
        server.abort();
        let again = plain()
            .download(&cache, &url, &sum, &|_: &str| {})
            .await
            .expect("cached");
        assert_eq!(again, disk);
    }

    #[test]
    fn roots_come_from_a_pem_file() {
        use machine_core::cert::{CertificateAuthority, KeyAlgorithm};
        let d = tempfile::tempdir().expect("tmp");
        let ca = CertificateAuthority::generate("test", KeyAlgorithm::default()).expect("ca");
        let f = d.path().join("ca.pem");
        std::fs::write(&f, ca.cert_pem()).expect("write");
        assert_eq!(roots_from_pem_file(&f).expect("roots").len(), 1);
        let e = roots_from_pem_file(&d.path().join("missing.pem")).expect_err("missing");
        assert!(matches!(e, ImageError::Roots { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
