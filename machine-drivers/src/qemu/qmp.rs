//! A minimal client of the QEMU Machine Protocol over a unix socket: greeting,
//! capabilities negotiation, then one command at a time. Asynchronous events
//! arriving between commands are skipped.

use serde_json::{json, Value};
use std::io;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// One QMP connection, ready for commands.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("QMP: no answer to {what}"))
}

impl Qmp {
    /// Connect to the socket at `path` and negotiate capabilities. Every
    /// exchange, this one included, is bounded by `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> io::Result<Qmp> {
        let stream = tokio::time::timeout(timeout, UnixStream::connect(path))
            .await
            .map_err(|_| timed_out("connect"))??;
        let (r, w) = stream.into_split();
        let mut q = Qmp {
            reader: BufReader::new(r),
            writer: w,
            timeout,
        };
        let greeting = tokio::time::timeout(timeout, q.read_message())
            .await
            .map_err(|_| timed_out("the greeting"))??;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "QMP: unexpected greeting",
            ));
        }
        q.execute("qmp_capabilities", None).await?;
        Ok(q)
    }

    async fn read_message(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "QMP: connection closed",
                ));
            }
            if !line.trim().is_empty() {
                return serde_json::from_str(line.trim())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("QMP: {e}")));
            }
        }
    }

    /// Run `command` with optional `arguments`; the `return` value on success,
    /// the error's description as an error otherwise.
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> io::Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        let limit = self.timeout;
        let exchange = async {
            self.writer.write_all(text.as_bytes()).await?;
            loop {
                let m = self.read_message().await?;
                if let Some(r) = m.get("return") {
                    return Ok(r.clone());
                }
                if let Some(e) = m.get("error") {
                    let desc = e
                        .get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error");
                    return Err(io::Error::other(format!("QMP {command}: {desc}")));
                }
                // an event: keep reading
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| timed_out(command))?
    }

    /// `query-status`: the run state (`running`, `paused`, `shutdown`, ...).
    pub async fn status(&mut self) -> io::Result<String> {
        let r = self.execute("query-status", None).await?;
        Ok(r.get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    #[tokio::test]
    async fn greeting_capabilities_events_and_errors() {
        let d = tempfile::tempdir().expect("tmp");
        let sock = d.path().join("qmp.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.expect("accept");
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .await
                .expect("w");
            let mut line = String::new();
            let mut seen = Vec::new();
            while r.read_line(&mut line).await.expect("read") > 0 {
                let v: Value = serde_json::from_str(line.trim()).expect("json");
                let cmd = v["execute"].as_str().unwrap_or_default().to_string();
                seen.push(cmd.clone());
                let reply = match cmd.as_str() {
                    "query-status" => "{\"event\": \"RESUME\"}\r\n{\"return\": {\"status\": \"running\", \"running\": true}}\r\n".to_string(),
                    "bogus" => "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"no such command\"}}\r\n".to_string(),
                    _ => "{\"return\": {}}\r\n".to_string(),
                };
                w.write_all(reply.as_bytes()).await.expect("w");
                line.clear();
            }
            seen
        });
        let mut q = Qmp::connect(&sock, Duration::from_secs(5))
            .await
            .expect("connect");
        assert_eq!(q.status().await.expect("status"), "running");
        let e = q.execute("bogus", None).await.expect_err("error");
        assert!(e.to_string().contains("no such command"), "{e}");
        drop(q);
        let seen = server.await.expect("join");
        assert_eq!(seen, ["qmp_capabilities", "query-status", "bogus"]);
    }
}
