//! Go's `net/rpc` over HTTP, with the gob codec, as libmachine plugins speak
//! it: the client sends `CONNECT /_goRPC_ HTTP/1.0` and the server answers
//! `HTTP/1.0 200 Connected to Go RPC`; from then on each call is a gob
//! `Request{ServiceMethod, Seq}` followed by the argument, and each answer a
//! `Response{ServiceMethod, Seq, Error}` followed by the reply (an empty
//! struct when `Error` is set). Calls may be in flight at the same time; the
//! answers carry their `Seq`.

use super::gob::{Decoder, Encoder, GobError, Type, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The path Go's `rpc.DialHTTP` connects to.
pub const RPC_PATH: &str = "/_goRPC_";
/// What Go's RPC server answers to a CONNECT on that path.
pub const CONNECTED: &str = "200 Connected to Go RPC";

/// What can go wrong in a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The server ran the method and it failed; the text is the method's error.
    #[error("{0}")]
    Server(String),
    /// The connection failed or was closed.
    #[error("connection to the plugin: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes on the connection are not what net/rpc sends.
    #[error("plugin protocol: {0}")]
    Protocol(String),
    /// The connection is closed (the plugin exited, or the client was shut down).
    #[error("connection to the plugin is closed")]
    Closed,
    /// No answer in time.
    #[error("no answer from the plugin to {0} within {1:?}")]
    Timeout(String, Duration),
}

impl From<GobError> for RpcError {
    fn from(e: GobError) -> Self {
        match e {
            GobError::Io(e) => RpcError::Io(e),
            GobError::Eof => RpcError::Closed,
            other => RpcError::Protocol(other.to_string()),
        }
    }
}

/// net/rpc's request header.
pub fn request_type() -> Type {
    Type::structure(
        "Request",
        &[("ServiceMethod", Type::String), ("Seq", Type::Uint)],
    )
}

/// net/rpc's response header.
pub fn response_type() -> Type {
    Type::structure(
        "Response",
        &[
            ("ServiceMethod", Type::String),
            ("Seq", Type::Uint),
            ("Error", Type::String),
        ],
    )
}

/// `struct{}`: the argument and reply of calls that have none.
pub fn empty_type() -> Type {
    Type::structure("", &[])
}

/// The empty struct value.
pub fn empty() -> Value {
    Value::Struct(Vec::new())
}

type Pending = HashMap<u64, mpsc::Sender<Result<Value, RpcError>>>;

struct Writer {
    stream: TcpStream,
    enc: Encoder,
    seq: u64,
}

/// A net/rpc client on one connection. Calls from several threads share it.
pub struct Client {
    writer: Mutex<Writer>,
    pending: Arc<Mutex<Option<Pending>>>,
    stream: TcpStream,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to `addr` as `rpc.DialHTTP` does, giving up after `timeout`.
    pub fn dial_http(addr: SocketAddr, timeout: Duration) -> Result<Client, RpcError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut w = stream.try_clone()?;
        w.write_all(format!("CONNECT {RPC_PATH} HTTP/1.0\n\n").as_bytes())?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut status = String::new();
        reader.by_ref().take(512).read_line(&mut status)?;
        let status = status.trim_end();
        if status.strip_prefix("HTTP/1.0 ") != Some(CONNECTED) {
            return Err(RpcError::Protocol(format!(
                "unexpected HTTP response {status:?}"
            )));
        }
        // the blank line that ends the response
        let mut line = String::new();
        reader.by_ref().take(512).read_line(&mut line)?;
        if !line.trim().is_empty() {
            return Err(RpcError::Protocol("unexpected HTTP header".into()));
        }
        stream.set_read_timeout(None)?;
        Self::on(stream, reader)
    }

    fn on(stream: TcpStream, mut reader: BufReader<TcpStream>) -> Result<Client, RpcError> {
        let pending: Arc<Mutex<Option<Pending>>> = Arc::new(Mutex::new(Some(HashMap::new())));
        let p = pending.clone();
        std::thread::Builder::new()
            .name("plugin-rpc".into())
            .spawn(move || {
                let mut dec = Decoder::new();
                let err = loop {
                    let header = match dec.read(&mut reader) {
                        Ok(h) => h,
                        Err(e) => break RpcError::from(e),
                    };
                    let body = match dec.read(&mut reader) {
                        Ok(b) => b,
                        Err(e) => break RpcError::from(e),
                    };
                    let seq = match header.field("Seq") {
                        None => 0,
                        Some(Value::Uint(s)) => *s,
                        Some(_) => break RpcError::Protocol("bad response header".into()),
                    };
                    let error = header.str_field("Error");
                    let waiter = p
                        .lock()
                        .ok()
                        .and_then(|mut g| g.as_mut().and_then(|m| m.remove(&seq)));
                    if let Some(tx) = waiter {
                        let _ = tx.send(if error.is_empty() {
                            Ok(body)
                        } else {
                            Err(RpcError::Server(error))
                        });
                    }
                };
                // the connection is gone: every waiting call fails
                if let Ok(mut g) = p.lock() {
                    if let Some(waiting) = g.take() {
                        for (_, tx) in waiting {
                            let _ = tx.send(Err(match &err {
                                RpcError::Closed | RpcError::Io(_) => RpcError::Closed,
                                other => RpcError::Protocol(other.to_string()),
                            }));
                        }
                    }
                }
            })?;
        Ok(Client {
            writer: Mutex::new(Writer {
                stream: stream.try_clone()?,
                enc: Encoder::new(),
                seq: 0,
            }),
            pending,
            stream,
        })
    }

    /// Call `method` (`RPCServerDriver.GetState`) with `arg` of type `ty`;
    /// wait at most `timeout` (forever when `None`) for the reply.
    pub fn call(
        &self,
        method: &str,
        ty: &Type,
        arg: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        let (tx, rx) = mpsc::channel();
        {
            let mut w = self.writer.lock().map_err(|_| RpcError::Closed)?;
            w.seq += 1;
            let seq = w.seq;
            match self.pending.lock().map_err(|_| RpcError::Closed)?.as_mut() {
                Some(p) => {
                    p.insert(seq, tx);
                }
                None => return Err(RpcError::Closed),
            }
            let header = Value::Struct(vec![
                ("ServiceMethod".into(), Value::String(method.into())),
                ("Seq".into(), Value::Uint(seq)),
            ]);
            let Writer { stream, enc, .. } = &mut *w;
            let mut bytes = enc.encode(&request_type(), &header)?;
            bytes.extend(enc.encode(ty, arg)?);
            if let Err(e) = stream.write_all(&bytes) {
                if let Ok(mut g) = self.pending.lock() {
                    if let Some(p) = g.as_mut() {
                        p.remove(&seq);
                    }
                }
                return Err(e.into());
            }
        }
        match timeout {
            None => rx.recv().map_err(|_| RpcError::Closed)?,
            Some(t) => match rx.recv_timeout(t) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => Err(RpcError::Timeout(method.into(), t)),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(RpcError::Closed),
            },
        }
    }

    /// Close the connection; calls in flight fail.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accept the HTTP CONNECT a Go client sends first; answer as Go's server does.
pub fn accept_http(reader: &mut BufReader<TcpStream>, w: &mut TcpStream) -> Result<(), RpcError> {
    let mut request = String::new();
    reader.by_ref().take(1024).read_line(&mut request)?;
    loop {
        let mut line = String::new();
        let n = reader.by_ref().take(4096).read_line(&mut line)?;
        if n == 0 || line.trim().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    if parts.next() != Some("CONNECT") || parts.next() != Some(RPC_PATH) {
        let _ = w.write_all(b"HTTP/1.0 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n405 must CONNECT\n");
        return Err(RpcError::Protocol(format!(
            "expected CONNECT {RPC_PATH}, got {:?}",
            request.trim()
        )));
    }
    w.write_all(format!("HTTP/1.0 {CONNECTED}\n\n").as_bytes())?;
    Ok(())
}

/// One call a server received.
#[derive(Debug)]
pub struct Incoming {
    pub method: String,
    pub seq: u64,
    pub arg: Value,
}

/// Read the next call from a connection (after [`accept_http`]).
pub fn read_call(dec: &mut Decoder, r: &mut impl Read) -> Result<Incoming, RpcError> {
    let header = dec.read(r)?;
    let arg = dec.read(r)?;
    let seq = match header.field("Seq") {
        None => 0,
        Some(v) => v
            .as_int()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| RpcError::Protocol("bad request header".into()))?,
    };
    Ok(Incoming {
        method: header.str_field("ServiceMethod"),
        seq,
        arg,
    })
}

/// Write the answer to call `seq`: `Ok((type, value))` or an error text.
pub fn write_reply(
    enc: &mut Encoder,
    w: &mut impl Write,
    method: &str,
    seq: u64,
    reply: Result<(Type, Value), String>,
) -> Result<(), RpcError> {
    let (error, ty, body) = match reply {
        Ok((t, v)) => (String::new(), t, v),
        Err(e) => (e, empty_type(), empty()),
    };
    let header = Value::Struct(vec![
        ("ServiceMethod".into(), Value::String(method.into())),
        ("Seq".into(), Value::Uint(seq)),
        ("Error".into(), Value::String(error)),
    ]);
    let mut bytes = enc.encode(&response_type(), &header)?;
    bytes.extend(enc.encode(&ty, &body)?);
    w.write_all(&bytes)?;
    Ok(())
}
