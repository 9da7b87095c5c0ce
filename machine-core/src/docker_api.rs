//! The Docker Engine API of a machine, through the `bollard` client, over
//! our own mutual-TLS transport.
//!
//! bollard is used without any TLS feature of its own: each request opens a
//! TCP connection to the daemon, makes the TLS handshake with the rustls
//! configuration it is given (the machine's CA as the only root, our client
//! certificate, aws-lc-rs) and speaks HTTP/1.1 on it with hyper. So there is
//! one crypto provider in the build, no system trust store is consulted, and
//! the server name checked is the machine's address. An answer larger than
//! [`MAX_ANSWER`] ends the connection with an error.

use bollard::{BollardRequest, Docker};
use hyper::body::Incoming;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes read from the daemon on one connection (one request and
/// its answer): a node or task list of a large cluster fits many times.
pub const MAX_ANSWER: u64 = 16 << 20;

/// The Docker API version asked for before negotiation: the newest one
/// bollard knows; [`connect`] lowers it to what the daemon speaks.
pub use bollard::API_DEFAULT_VERSION;

/// Where and how to reach one daemon.
#[derive(Debug)]
struct Target {
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    /// `host:port` as the Host header and messages show it.
    authority: String,
}

/// A bollard client for the daemon at `host:port`, speaking mutual TLS with
/// `tls`; each request is bounded by `timeout` (whole seconds, at least 1).
/// Nothing is sent until the first request.
pub fn client(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Docker, bollard::errors::Error> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let target = Arc::new(Target {
        host: host.to_string(),
        port,
        tls,
        authority: authority.clone(),
    });
    let transport = move |req: BollardRequest| {
        let target = Arc::clone(&target);
        async move { target.send(req).await }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some(format!("https://{authority}")),
        timeout.as_secs().max(1),
        API_DEFAULT_VERSION,
    )
}

/// [`client`], then the API version agreed with the daemon (one `GET
/// /version`): a daemon older than bollard's newest API version is spoken
/// to in its own.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Docker, bollard::errors::Error> {
    client(host, port, tls, timeout)?.negotiate_version().await
}

impl Target {
    async fn send(
        &self,
        mut req: BollardRequest,
    ) -> Result<hyper::Response<Incoming>, bollard::errors::Error> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await?;
        let io = hyper_util::rt::TokioIo::new(Capped {
            inner: tls,
            left: MAX_ANSWER,
        });
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Docker API connection ended");
            }
        });
        // bollard builds absolute URIs; on a connection of our own the
        // request line carries the path and the Host header the authority.
        let path: hyper::Uri = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e: http::uri::InvalidUri| {
                bollard::errors::Error::from(http::Error::from(e))
            })?;
        *req.uri_mut() = path;
        let host = http::HeaderValue::from_str(&self.authority)
            .map_err(|e| bollard::errors::Error::from(http::Error::from(e)))?;
        req.headers_mut().insert(http::header::HOST, host);
        Ok(sender.send_request(req).await?)
    }
}

/// A stream that fails once more than its allowance has been read.
struct Capped<S> {
    inner: S,
    left: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::Error::other(format!(
                "the Docker daemon's answer is larger than {MAX_ANSWER} bytes"
            ))));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = u64::try_from(buf.filled().len().saturating_sub(before)).unwrap_or(u64::MAX);
        self.left = self.left.saturating_sub(read);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn capped_stream_fails_past_its_allowance() {
        let data = vec![7u8; 100];
        let mut c = Capped {
            inner: &data[..],
            left: 10,
        };
        let mut out = Vec::new();
        let e = c.read_to_end(&mut out).await.expect_err("capped");
        assert!(e.to_string().contains("larger than"), "{e}");
        assert!(out.len() >= 10);
        let mut c = Capped {
            inner: &data[..],
            left: 1000,
        };
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.expect("fits");
        assert_eq!(out, data);
    }
}
