//! The plugin side: serve one of our drivers to a host that speaks the
//! libmachine plugin protocol (the original `docker-machine`, or anything
//! embedding libmachine).
//!
//! [`serve`] listens on a loopback port, prints its address as the first
//! line of stdout, answers `RPCServerDriver.*` calls (several at a time:
//! heartbeats arrive while `Create` runs) and returns when the host calls
//! `Close` (exit status 0) or stops sending heartbeats for
//! [`HEARTBEAT_TIMEOUT`] (status 1).

use super::gob::{Decoder, Encoder, Type, Value};
use super::rpc::{accept_http, empty, empty_type, read_call, write_reply, Incoming};
use super::{flags_from_rpc, options_to_flags, state_to_int, API_VERSION, SERVICE, SERVICE_V0};
use machine_core::driver::{Driver, DriverContext, DriverFactory, DriverOptions};
use serde_json::{Map, Value as Json};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the server waits for a heartbeat before it exits.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// What ends a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot serve the plugin: {0}")]
    Io(#[from] std::io::Error),
}

enum Event {
    Heartbeat,
    Close,
}

#[derive(Default)]
struct State {
    ctx: Option<DriverContext>,
    raw: Map<String, Json>,
    driver: Option<Box<dyn Driver>>,
}

struct Shared {
    factory: Arc<dyn DriverFactory>,
    state: tokio::sync::Mutex<State>,
    events: Mutex<mpsc::Sender<Event>>,
}

/// Serve `factory`'s driver; print the address to `out`. Returns the exit
/// status: 0 after `Close`, 1 when heartbeats stopped.
pub fn serve(factory: Arc<dyn DriverFactory>, out: &mut dyn Write) -> Result<i32, ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        factory,
        state: tokio::sync::Mutex::new(State::default()),
        events: Mutex::new(tx),
    });
    let handle = rt.handle().clone();
    let s = shared.clone();
    std::thread::Builder::new()
        .name("plugin-accept".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, h) = (s.clone(), handle.clone());
                let _ = std::thread::Builder::new()
                    .name("plugin-conn".into())
                    .spawn(move || {
                        if let Err(e) = connection(conn, s, h) {
                            tracing::debug!("plugin connection ended: {e}");
                        }
                    });
            }
        })?;
    let code = loop {
        match rx.recv_timeout(HEARTBEAT_TIMEOUT) {
            Ok(Event::Heartbeat) => continue,
            Ok(Event::Close) => break 0,
            Err(_) => {
                tracing::debug!("no heartbeat from the host: exiting");
                break 1;
            }
        }
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(code)
}

fn connection(
    conn: TcpStream,
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
) -> Result<(), super::rpc::RpcError> {
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    accept_http(&mut reader, &mut writer)?;
    let out = Arc::new(Mutex::new((writer, Encoder::new())));
    let mut dec = Decoder::new();
    loop {
        let call = read_call(&mut dec, &mut reader)?;
        let (shared, out) = (shared.clone(), out.clone());
        rt.spawn(async move {
            let Incoming { method, seq, arg } = call;
            let reply = handle(&shared, &method, arg).await;
            let close = reply.is_ok() && short(&method) == Some("Close");
            if let Ok(mut g) = out.lock() {
                let (w, enc) = &mut *g;
                if let Err(e) = write_reply(enc, w, &method, seq, reply) {
                    tracing::debug!("cannot answer {method}: {e}");
                }
            }
            if close {
                if let Ok(tx) = shared.events.lock() {
                    let _ = tx.send(Event::Close);
                }
            }
        });
    }
}

fn short(method: &str) -> Option<&str> {
    let (svc, m) = method.split_once('.')?;
    (svc == SERVICE || svc == SERVICE_V0).then_some(m)
}

fn string(s: impl Into<String>) -> Result<(Type, Value), String> {
    Ok((Type::String, Value::String(s.into())))
}

async fn handle(shared: &Shared, method: &str, arg: Value) -> Result<(Type, Value), String> {
    let Some(m) = short(method) else {
        return Err(format!("rpc: can't find service {method}"));
    };
    let done = || Ok((empty_type(), empty()));
    let name = shared.factory.name().to_string();
    match m {
        "GetVersion" => return Ok((Type::Int, Value::Int(API_VERSION))),
        "Heartbeat" => {
            if let Ok(tx) = shared.events.lock() {
                let _ = tx.send(Event::Heartbeat);
            }
            return done();
        }
        "Close" => return done(),
        "DriverName" => return string(name),
        "GetCreateFlags" => {
            let (t, v) = options_to_flags(&shared.factory.options());
            return Ok((t, v));
        }
        _ => {}
    }
    let mut st = shared.state.lock().await;
    match m {
        "SetConfigRaw" => {
            let bytes = match &arg {
                Value::Bytes(b) => b.clone(),
                Value::String(s) => s.as_bytes().to_vec(),
                _ => return Err("SetConfigRaw expects the driver's JSON".into()),
            };
            let raw: Map<String, Json> =
                serde_json::from_slice(&bytes).map_err(|e| format!("driver JSON: {e}"))?;
            let text = |k: &str| {
                raw.get(k)
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (machine, store) = (text("MachineName"), text("StorePath"));
            let ctx = DriverContext {
                machine_dir: PathBuf::from(&store).join("machines").join(&machine),
                store_root: PathBuf::from(&store),
                machine_name: machine,
            };
            // a bare base driver (before create) does not make a driver yet
            st.driver = match shared.factory.load_driver(&ctx, &raw) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::debug!("saved state not loaded: {e}");
                    None
                }
            };
            st.ctx = Some(ctx);
            st.raw = raw;
            done()
        }
        "GetConfigRaw" => {
            let map = match &st.driver {
                Some(d) => d.saved_state().map_err(|e| e.to_string())?,
                None => st.raw.clone(),
            };
            let bytes = serde_json::to_vec(&map).map_err(|e| e.to_string())?;
            Ok((Type::Bytes, Value::Bytes(bytes)))
        }
        "GetMachineName" => string(
            st.ctx
                .as_ref()
                .map(|c| c.machine_name.clone())
                .unwrap_or_default(),
        ),
        "SetConfigFromFlags" => {
            let declared = shared.factory.options();
            // the host sends every flag of its create command: keep the driver's
            let given: Vec<_> = flags_from_rpc(&arg)?
                .into_iter()
                .filter(|(k, _)| declared.iter().any(|o| &o.flag == k))
                .collect();
            let options = DriverOptions::resolve(&name, &declared, given, &|_| None)
                .map_err(|e| e.to_string())?;
            let ctx = st.ctx.clone().ok_or("SetConfigRaw must come first")?;
            let driver = shared
                .factory
                .new_driver(&ctx, &options)
                .map_err(|e| e.to_string())?;
            st.driver = Some(driver);
            done()
        }
        _ => {
            let Some(d) = st.driver.as_mut() else {
                return Err(format!("driver {name} is not configured yet (call SetConfigRaw or SetConfigFromFlags first)"));
            };
            let e = |e: machine_core::driver::DriverError| e.to_string();
            match m {
                "GetIP" => string(d.ip().await.map_err(e)?),
                "GetURL" => string(d.url().await.map_err(e)?),
                "GetState" => Ok((
                    Type::Int,
                    Value::Int(state_to_int(d.state().await.map_err(e)?)),
                )),
                "GetSSHHostname" => match d.ssh_target() {
                    Some(t) => string(t.host),
                    None => string(d.ip().await.map_err(e)?),
                },
                "GetSSHPort" => Ok((
                    Type::Int,
                    Value::Int(d.ssh_target().map(|t| i64::from(t.port)).unwrap_or(22)),
                )),
                "GetSSHUsername" => string(
                    d.ssh_target()
                        .map(|t| t.user)
                        .unwrap_or_else(|| "root".into()),
                ),
                "GetSSHKeyPath" => string(
                    d.ssh_target()
                        .and_then(|t| t.key_path)
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                "PreCreateCheck" => d.pre_create_check().await.map_err(e).and_then(|_| done()),
                "Create" => d.create().await.map_err(e).and_then(|_| done()),
                "Remove" => d.remove().await.map_err(e).and_then(|_| done()),
                "Start" => d.start().await.map_err(e).and_then(|_| done()),
                "Stop" => d.stop().await.map_err(e).and_then(|_| done()),
                "Restart" => d.restart().await.map_err(e).and_then(|_| done()),
                "Kill" => d.kill().await.map_err(e).and_then(|_| done()),
                "Upgrade" => Err(format!("driver {name} does not support upgrade")),
                other => Err(format!("rpc: can't find method {SERVICE}.{other}")),
            }
        }
    }
}
