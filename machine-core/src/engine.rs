//! Talking to a machine's Docker daemon: the readiness check is a real mutual-TLS
//! handshake with our client certificate followed by `GET /version`.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Errors reaching the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// TCP connection failed.
    #[error("cannot connect to the Docker daemon at {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (wrong CA, certificate not covering the address...).
    #[error("TLS handshake with the Docker daemon at {addr} failed")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered something other than a version document.
    #[error("unexpected answer from the Docker daemon at {addr}: {reason}")]
    BadResponse { addr: String, reason: String },
    /// The deadline passed.
    #[error("the Docker daemon at {addr} did not answer within {seconds} s")]
    Timeout { addr: String, seconds: u64 },
    /// A Docker API call (through bollard) failed.
    #[error("Docker API call to {addr} failed")]
    Api {
        addr: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// What `GET /version` told us.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct EngineVersion {
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
}

/// Parse `tcp://host:port` into (host, port).
pub fn parse_tcp_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("tcp://")?;
    let rest = rest.split('/').next()?;
    if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6.split_once("]:")?;
        return Some((h.to_string(), p.parse().ok()?));
    }
    let (h, p) = rest.rsplit_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
}

/// Ask the daemon at `host:port` for its version over mutual TLS, within `timeout`.
pub async fn version(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<EngineVersion, EngineError> {
    let addr = format!("{host}:{port}");
    tokio::time::timeout(timeout, version_inner(host, port, tls, &addr))
        .await
        .map_err(|_| EngineError::Timeout {
            addr: addr.clone(),
            seconds: timeout.as_secs(),
        })?
}

/// The daemon's version as its `GET /_ping` answer tells it (the `Server:
/// Docker/VERSION (OS)` and `Api-Version` headers every Docker API answer
/// carries), within `timeout`. Lighter for the daemon than `/version`, which
/// asks containerd and runs `runc` and `docker-init` for their versions;
/// `/version` is asked when the headers are missing. `arch` stays empty.
pub async fn ping_version(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<EngineVersion, EngineError> {
    let addr = format!("{host}:{port}");
    let both = async {
        let raw = request(host, port, Arc::clone(&tls), &addr, "/_ping").await?;
        match parse_ping_response(&raw) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => version_inner(host, port, tls, &addr).await,
            Err(reason) => Err(EngineError::BadResponse {
                addr: addr.clone(),
                reason,
            }),
        }
    };
    tokio::time::timeout(timeout, both)
        .await
        .map_err(|_| EngineError::Timeout {
            addr: addr.clone(),
            seconds: timeout.as_secs(),
        })?
}

/// Parse the head of an HTTP response into `resp`; the head's length when
/// it is complete and its status is `200 OK`.
fn parse_ok_head<'b>(
    resp: &mut httparse::Response<'_, 'b>,
    raw: &'b [u8],
) -> Result<usize, String> {
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("incomplete HTTP header".into()),
        Err(e) => return Err(format!("bad HTTP header: {e}")),
    };
    let code = resp.code.unwrap_or_default();
    if code != 200 {
        return Err(format!(
            "HTTP status {code} {}",
            printable(resp.reason.unwrap_or_default())
        ));
    }
    Ok(head_len)
}

/// Parse an answer to `GET /_ping`: the version from its `Server` header,
/// `None` when the header does not name a Docker version.
pub fn parse_ping_response(raw: &[u8]) -> Result<Option<EngineVersion>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    parse_ok_head(&mut resp, raw)?;
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let Some(server) = header("Server").and_then(|s| s.strip_prefix("Docker/")) else {
        return Ok(None);
    };
    let (version, rest) = server.split_once(' ').unwrap_or((server, ""));
    let os = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_default();
    if version.is_empty() || version.chars().any(char::is_control) {
        return Ok(None);
    }
    Ok(Some(EngineVersion {
        version: version.to_string(),
        api_version: printable(header("Api-Version").unwrap_or_default()),
        os: printable(os),
        arch: String::new(),
    }))
}

async fn version_inner(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    addr: &str,
) -> Result<EngineVersion, EngineError> {
    let buf = request(host, port, tls, addr, "/version").await?;
    parse_version_response(&buf).map_err(|reason| EngineError::BadResponse {
        addr: addr.to_string(),
        reason,
    })
}

/// One `GET path` over a new mutual-TLS connection; the raw answer.
async fn request(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    addr: &str,
    path: &str,
) -> Result<Vec<u8>, EngineError> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|source| EngineError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    // Small request and answer: do not let Nagle and delayed ACKs add 40 ms.
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
        EngineError::BadResponse {
            addr: addr.to_string(),
            reason: format!("invalid server name: {e}"),
        }
    })?;
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|source| EngineError::Tls {
            addr: addr.to_string(),
            source,
        })?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: machine\r\nConnection: close\r\n\r\n"
    );
    let io = |source: std::io::Error| EngineError::Tls {
        addr: addr.to_string(),
        source,
    };
    s.write_all(req.as_bytes()).await.map_err(io)?;
    let mut buf = Vec::new();
    // The daemon closes after the answer (Connection: close); some TLS peers skip
    // close_notify, so an unexpected EOF after data is accepted. A version
    // document is a few hundred bytes: more than MAX_RESPONSE is not read.
    if let Err(e) = (&mut s).take(MAX_RESPONSE).read_to_end(&mut buf).await {
        if buf.is_empty() || e.kind() != std::io::ErrorKind::UnexpectedEof {
            return Err(io(e));
        }
    }
    Ok(buf)
}

/// The most of a daemon's answer to `GET /version` that is read.
pub const MAX_RESPONSE: u64 = 1 << 20;

/// Parse an HTTP/1.1 response carrying the `/version` JSON document. Works
/// on bytes throughout: a peer's answer cannot make it panic.
pub fn parse_version_response(raw: &[u8]) -> Result<EngineVersion, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = parse_ok_head(&mut resp, raw)?;
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = raw.get(head_len..).unwrap_or_default();
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    let v: serde_json::Value =
        serde_json::from_slice(body.trim_ascii()).map_err(|e| format!("bad JSON: {e}"))?;
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    if s("Version").is_empty() {
        return Err("no Version field".into());
    }
    Ok(EngineVersion {
        version: s("Version"),
        api_version: s("ApiVersion"),
        os: s("Os"),
        arch: s("Arch"),
    })
}

/// Decode a chunked body (chunk sizes read by httparse).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Err("truncated chunked body".into()),
            Err(_) => return Err("bad chunk size".into()),
        };
        if size == 0 {
            return Ok(out);
        }
        let end = usize::try_from(size)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&e| e <= rest.len())
            .ok_or("truncated chunk")?;
        out.extend_from_slice(&rest[start..end]);
        rest = rest[end..]
            .strip_prefix(b"\r\n")
            .ok_or("chunk not followed by CRLF")?;
    }
}

/// `s` with control characters replaced, for messages.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\",\"Os\":\"linux\",\"Arch\":\"amd64\"}\n";
        assert_eq!(
            parse_version_response(plain).expect("ok").version,
            "20.10.24"
        );
        let body = "{\"Version\":\"26.1.5\"}";
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        assert_eq!(
            parse_version_response(chunked.as_bytes())
                .expect("ok")
                .version,
            "26.1.5"
        );
        assert!(parse_version_response(
            b"HTTP/1.1 400 Bad\r\n\r\nClient sent an HTTP request to an HTTPS server."
        )
        .is_err());
    }

    #[test]
    fn a_character_split_across_chunks_is_joined_not_a_panic() {
        let doc = "{\"Version\":\"caf\u{e9}\"}".as_bytes();
        let cut = doc
            .iter()
            .position(|&b| b == 0xc3)
            .expect("first byte of é")
            + 1;
        let (a, b) = doc.split_at(cut);
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in [a, b] {
            raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            raw.extend_from_slice(part);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(
            parse_version_response(&raw).expect("ok").version,
            "caf\u{e9}"
        );
    }

    #[test]
    fn hostile_answers_are_errors() {
        for raw in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"garbage\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\xc3",
            b"HTTP/1.1 200 OK\r\n\r\n{\"Version\":\"\xff\xfe\"}",
            b"HTTP/1.1 500 \x1b[31mred\r\n\r\n",
        ] {
            match parse_version_response(raw) {
                Ok(v) => panic!("{raw:?}: {v:?}"),
                Err(e) => assert!(!e.contains('\x1b'), "{e}"),
            }
        }
    }

    #[test]
    fn ping_answers() {
        let raw = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: 2\r\n\r\nOK";
        let v = parse_ping_response(raw).expect("ok").expect("version");
        assert_eq!(
            (v.version.as_str(), v.api_version.as_str(), v.os.as_str()),
            ("20.10.24+dfsg1", "1.41", "linux")
        );
        // no Server header (a proxy in front): ask /version instead
        let bare = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
        assert_eq!(parse_ping_response(bare).expect("ok"), None);
        let other = b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nOK";
        assert_eq!(parse_ping_response(other).expect("ok"), None);
        assert!(parse_ping_response(b"HTTP/1.1 401 Unauthorized\r\n\r\n").is_err());
        assert!(parse_ping_response(b"garbage").is_err());
    }

    #[test]
    fn tcp_urls() {
        assert_eq!(
            parse_tcp_url("tcp://1.2.3.4:2376"),
            Some(("1.2.3.4".into(), 2376))
        );
        assert_eq!(
            parse_tcp_url("tcp://[::1]:2376"),
            Some(("::1".into(), 2376))
        );
        assert_eq!(parse_tcp_url("unix:///x"), None);
    }
}
