//! The host side: run a `docker-machine-driver-NAME` executable and use it
//! as a [`Driver`].

use super::gob::{Type, Value};
use super::rpc::{empty, empty_type, Client, RpcError};
use super::{
    flags_to_options, rpc_flags, state_from_int, API_VERSION, ENV_DRIVER_NAME, ENV_TOKEN, SERVICE,
    TOKEN,
};
use async_trait::async_trait;
use machine_core::config::BaseDriver;
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, DriverSource,
};
use machine_core::foreign::{self, CallError, ForeignDriver, ForeignObject, Member, Naming};
use machine_core::progress::Listener;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often the host calls `Heartbeat` (a plugin exits when they stop).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a plugin may take to print its address, unless
/// `MACHINE_PLUGIN_START_TIMEOUT` (seconds) says otherwise.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long quick calls (getters, configuration) may take.
const QUICK: Option<Duration> = Some(Duration::from_secs(60));
/// The prefix of plugin executables.
pub const EXECUTABLE_PREFIX: &str = "docker-machine-driver-";
/// Names (comma-separated, or `*`) served by their plugin even when a
/// driver of that name is built in.
pub const FORCE_ENV: &str = "MACHINE_PLUGIN_DRIVERS";

fn start_timeout() -> Duration {
    std::env::var("MACHINE_PLUGIN_START_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s < 3600.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(START_TIMEOUT)
}

fn failed(driver: &str, operation: &str, message: impl std::fmt::Display) -> DriverError {
    DriverError::Failed {
        driver: driver.to_string(),
        operation: operation.to_string(),
        message: message.to_string(),
    }
}

/// A running plugin process and the RPC connection to it. Dropping it closes
/// the plugin and makes sure the process has ended.
pub struct Plugin {
    name: String,
    client: Client,
    child: Mutex<Child>,
    stop_heartbeat: Mutex<Option<mpsc::Sender<()>>>,
    output: Option<Arc<Output>>,
}

/// A plugin's stdout. Its first line is the plugin's address; each later
/// line is its log, logged as `(LABEL) line` and, while a call made within
/// a reporting operation runs ([`Plugin::hear`]), passed to that operation's
/// progress callback.
#[derive(Debug)]
struct Output {
    pipe: File,
    state: Mutex<OutputState>,
    /// Signalled when the reader has passed on what it took, and at the end.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct OutputState {
    /// The machine's name once the plugin serves one (the driver's before).
    label: String,
    /// Bytes taken from the pipe and not yet passed on.
    busy: bool,
    /// The pipe is closed: the plugin has exited.
    ended: bool,
    listener: Option<Listener>,
}

/// How long the end of a call waits for the plugin's output to be passed on.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

impl Output {
    fn label(&self) -> String {
        self.state
            .lock()
            .map(|s| s.label.clone())
            .unwrap_or_default()
    }

    fn set_busy(&self, busy: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.busy = busy;
        }
        self.changed.notify_all();
    }

    /// Whether bytes wait in the pipe.
    fn pending(&self) -> bool {
        let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN))
    }

    /// One log line of the plugin.
    fn line(&self, line: &str) {
        let (label, listener) = match self.state.lock() {
            Ok(s) => (s.label.clone(), s.listener.clone()),
            Err(_) => return,
        };
        let line = format!("({label}) {line}");
        tracing::info!("{line}");
        if let Some(l) = listener {
            l.send(&line);
        }
    }

    /// Read the pipe to its end: the first line to `addr`, the rest to
    /// [`line`](Self::line). Bytes are waited for before they are taken, so
    /// that [`drain`](Self::drain) sees them either in the pipe or being
    /// passed on.
    fn read(&self, addr: mpsc::Sender<String>) {
        let mut addr = Some(addr);
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
            self.set_busy(true);
            let n = match (&self.pipe).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    self.set_busy(false);
                    continue;
                }
                Err(_) => 0,
            };
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&raw[..i]);
                let text = text.trim_end_matches('\r');
                match addr.take() {
                    Some(tx) => {
                        let _ = tx.send(text.to_string());
                    }
                    None => self.line(text),
                }
            }
            self.set_busy(false);
        }
        if addr.is_none() && !pending.is_empty() {
            self.line(&String::from_utf8_lossy(&pending));
        }
        drop(addr);
        if let Ok(mut s) = self.state.lock() {
            s.busy = false;
            s.ended = true;
        }
        self.changed.notify_all();
    }

    /// Wait (at most [`OUTPUT_DRAIN`]) until every byte the plugin has
    /// written so far has been passed on.
    fn drain(&self) {
        let deadline = Instant::now() + OUTPUT_DRAIN;
        let Ok(mut s) = self.state.lock() else { return };
        while !s.ended && (s.busy || self.pending()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            s = match self
                .changed
                .wait_timeout(s, left.min(Duration::from_millis(20)))
            {
                Ok((s, _)) => s,
                Err(_) => return,
            };
        }
    }
}

/// While alive, the plugin's log lines also go to an operation's listener;
/// dropping it waits until the lines printed so far have gone there.
struct Hearing<'a>(Option<&'a Output>);

impl Drop for Hearing<'_> {
    fn drop(&mut self) {
        if let Some(o) = self.0 {
            o.drain();
            if let Ok(mut s) = o.state.lock() {
                s.listener = None;
            }
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Start `executable` as the plugin of driver `name`, wait (bounded) for
    /// its address, connect and check its API version. The process is ended
    /// on every failure.
    pub fn launch(name: &str, executable: &Path) -> Result<Arc<Plugin>, DriverError> {
        let fail = |m: String| failed(name, "start its plugin", m);
        let mut child = Command::new(executable)
            .env(ENV_TOKEN, TOKEN)
            .env(ENV_DRIVER_NAME, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", executable.display())))?;
        let (addr_tx, addr_rx) = mpsc::channel::<String>();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let output = child.stdout.take().map(|out| {
            let output = Arc::new(Output {
                pipe: File::from(OwnedFd::from(out)),
                state: Mutex::new(OutputState {
                    label: name.to_string(),
                    ..OutputState::default()
                }),
                changed: Condvar::new(),
            });
            let reader = output.clone();
            let _ = std::thread::Builder::new()
                .name("plugin-stdout".into())
                .spawn(move || reader.read(addr_tx));
            output
        });
        if let Some(err) = child.stderr.take() {
            let label = output.clone();
            let fallback = name.to_string();
            let keep = errors.clone();
            let _ = std::thread::Builder::new()
                .name("plugin-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines().map_while(Result::ok) {
                        let label = label.as_ref().map_or(fallback.clone(), |o| o.label());
                        tracing::debug!("({label}) DBG | {line}");
                        if let Ok(mut k) = keep.lock() {
                            if k.len() < 20 {
                                k.push(line);
                            }
                        }
                    }
                });
        }
        let end = |mut child: Child, why: String| -> DriverError {
            let _ = child.kill();
            let _ = child.wait();
            // give the stderr reader a moment to collect the last lines
            std::thread::sleep(Duration::from_millis(50));
            let said = errors.lock().map(|e| e.join("\n")).unwrap_or_default();
            if said.trim().is_empty() {
                fail(why)
            } else {
                fail(format!("{why}; it said: {}", said.trim()))
            }
        };
        let timeout = start_timeout();
        let line = match addr_rx.recv_timeout(timeout) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(end(
                    child,
                    format!(
                        "{} printed no address within {:.1} s",
                        executable.display(),
                        timeout.as_secs_f64()
                    ),
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(end(
                    child,
                    format!(
                        "{} exited without printing its address",
                        executable.display()
                    ),
                ))
            }
        };
        let addr: SocketAddr = match line.trim().parse() {
            Ok(a) => a,
            Err(_) => {
                return Err(end(
                    child,
                    format!(
                        "{} printed {:?} instead of its address",
                        executable.display(),
                        line.trim()
                    ),
                ))
            }
        };
        if !addr.ip().is_loopback() {
            return Err(end(
                child,
                format!(
                    "{} listens on {addr}, not on loopback",
                    executable.display()
                ),
            ));
        }
        let client = match Client::dial_http(addr, timeout) {
            Ok(c) => c,
            Err(e) => return Err(end(child, format!("cannot connect to {addr}: {e}"))),
        };
        let plugin = Arc::new(Plugin {
            name: name.to_string(),
            client,
            child: Mutex::new(child),
            stop_heartbeat: Mutex::new(None),
            output,
        });
        let version = plugin.call("GetVersion", &empty_type(), &empty(), QUICK);
        match version.as_ref().ok().and_then(Value::as_int) {
            Some(API_VERSION) => {}
            other => {
                let why = match (other, version) {
                    (Some(v), _) => format!("it speaks plugin API version {v}, not {API_VERSION}"),
                    (None, Err(e)) => format!("GetVersion failed: {e}"),
                    (None, Ok(v)) => format!("GetVersion answered {v:?}"),
                };
                plugin.kill();
                return Err(fail(why));
            }
        }
        plugin.start_heartbeat();
        tracing::debug!(driver = name, %addr, "plugin started");
        Ok(plugin)
    }

    fn start_heartbeat(self: &Arc<Self>) {
        let (tx, rx) = mpsc::channel::<()>();
        if let Ok(mut s) = self.stop_heartbeat.lock() {
            *s = Some(tx);
        }
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("plugin-heartbeat".into())
            .spawn(move || loop {
                match rx.recv_timeout(HEARTBEAT_INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(p) = weak.upgrade() else { return };
                if let Err(e) = p.call(
                    "Heartbeat",
                    &empty_type(),
                    &empty(),
                    Some(HEARTBEAT_INTERVAL),
                ) {
                    tracing::warn!("({}) the plugin does not answer heartbeats: {e}", p.name);
                    return;
                }
            });
    }

    /// Pass the plugin's log lines to `listener` (when given) until the
    /// returned guard is dropped.
    fn hear(&self, listener: Option<Listener>) -> Hearing<'_> {
        let (Some(output), Some(listener)) = (self.output.as_deref(), listener) else {
            return Hearing(None);
        };
        if let Ok(mut s) = output.state.lock() {
            s.listener = Some(listener);
        }
        Hearing(Some(output))
    }

    /// Label the plugin's log lines with `label` (the machine's name, as
    /// the original does).
    fn set_label(&self, label: &str) {
        if let Some(o) = &self.output {
            if let Ok(mut s) = o.state.lock() {
                s.label = label.to_string();
            }
        }
    }

    /// Call `RPCServerDriver.<method>`.
    pub fn call(
        &self,
        method: &str,
        ty: &Type,
        arg: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        if method != "Heartbeat" {
            tracing::debug!("({}) calling {method}", self.name);
        }
        self.client
            .call(&format!("{SERVICE}.{method}"), ty, arg, timeout)
    }

    /// Ask the plugin to exit, then make sure it has.
    fn kill(&self) {
        if let Ok(mut s) = self.stop_heartbeat.lock() {
            s.take();
        }
        let _ = self.client.call(
            &format!("{SERVICE}.Close"),
            &empty_type(),
            &empty(),
            Some(Duration::from_secs(2)),
        );
        self.client.shutdown();
        if let Ok(mut child) = self.child.lock() {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How the process ended, when it has (waiting briefly for it).
    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().ok()?;
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// The process id (for tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().ok().map(|c| c.id())
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `name` can name a plugin (the `NAME` of `docker-machine-driver-NAME`).
fn plugin_name_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\0']) && !name.starts_with('.')
}

/// Whether `path` is an executable file (following symlinks).
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Find `docker-machine-driver-NAME` on `PATH`.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    if !plugin_name_ok(name) {
        return None;
    }
    let exe = format!("{EXECUTABLE_PREFIX}{name}");
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(&exe))
        .find(|p| is_executable(p))
}

/// The names of the `docker-machine-driver-NAME` executables on `PATH`,
/// sorted, each once.
pub fn plugin_names() -> Vec<String> {
    std::env::var_os("PATH")
        .map(|p| plugin_names_in(&p))
        .unwrap_or_default()
}

/// [`plugin_names`] in the directories of `path` (a `PATH` value).
fn plugin_names_in(path: &std::ffi::OsStr) -> Vec<String> {
    let mut names = BTreeSet::new();
    for dir in std::env::split_paths(path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(name) = file
                .to_str()
                .and_then(|f| f.strip_prefix(EXECUTABLE_PREFIX))
            else {
                continue;
            };
            if plugin_name_ok(name) && is_executable(&e.path()) {
                names.insert(name.to_string());
            }
        }
    }
    names.into_iter().collect()
}

/// The drivers of plugin executables on `PATH`. Names listed in
/// `MACHINE_PLUGIN_DRIVERS` (or every name, with `*`) are served by their
/// plugin even when a driver of the same name is built in.
#[derive(Debug, Default)]
pub struct PluginSource {
    forced: BTreeSet<String>,
    all_forced: bool,
    found: Mutex<HashMap<String, Arc<PluginFactory>>>,
}

impl PluginSource {
    /// A source forcing the given names.
    pub fn new(forced: impl IntoIterator<Item = String>) -> Self {
        let mut s = PluginSource::default();
        for n in forced {
            let n = n.trim().to_string();
            if n == "*" {
                s.all_forced = true;
            } else if !n.is_empty() {
                s.forced.insert(n);
            }
        }
        s
    }
    /// A source forcing the names in `MACHINE_PLUGIN_DRIVERS`.
    pub fn from_env() -> Self {
        let v = std::env::var(FORCE_ENV).unwrap_or_default();
        Self::new(v.split(',').map(str::to_string))
    }
}

impl DriverSource for PluginSource {
    fn forces(&self, name: &str) -> bool {
        self.all_forced || self.forced.contains(name)
    }
    fn find(&self, name: &str, known: &str) -> Result<Arc<dyn DriverFactory>, DriverError> {
        let executable = find_executable(name).ok_or_else(|| DriverError::PluginNotFound {
            name: name.to_string(),
            executable: format!("{EXECUTABLE_PREFIX}{name}"),
            known: known.to_string(),
        })?;
        let mut found = self
            .found
            .lock()
            .map_err(|_| failed(name, "find its plugin", "lock poisoned"))?;
        let f = found
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(PluginFactory::new(name, executable)))
            .clone();
        Ok(f)
    }
    fn names(&self) -> Vec<String> {
        plugin_names()
    }
}

/// Builds drivers served by one plugin executable.
#[derive(Debug)]
pub struct PluginFactory {
    name: String,
    executable: PathBuf,
    flags: OnceLock<Result<Vec<DriverOption>, String>>,
}

impl PluginFactory {
    /// The driver `name` served by `executable`.
    pub fn new(name: &str, executable: PathBuf) -> Self {
        PluginFactory {
            name: name.to_string(),
            executable,
            flags: OnceLock::new(),
        }
    }

    /// The executable.
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// The plugin's create flags, asked once (a plugin is started for it).
    pub fn flags(&self) -> Result<Vec<DriverOption>, DriverError> {
        self.flags
            .get_or_init(|| {
                let plugin =
                    Plugin::launch(&self.name, &self.executable).map_err(|e| e.to_string())?;
                let list = plugin
                    .call("GetCreateFlags", &empty_type(), &empty(), QUICK)
                    .map_err(|e| format!("GetCreateFlags: {e}"))?;
                flags_to_options(&list)
            })
            .clone()
            .map_err(|m| failed(&self.name, "list its options", m))
    }

    /// Start the plugin for machine `ctx` with `raw` as its configuration.
    fn start(
        &self,
        ctx: &DriverContext,
        raw: &Map<String, Json>,
    ) -> Result<(Arc<Plugin>, Arc<Mutex<Cache>>), DriverError> {
        let plugin = Plugin::launch(&self.name, &self.executable)?;
        plugin.set_label(&ctx.machine_name);
        let bytes = serde_json::to_vec(raw).map_err(|source| DriverError::BadSavedState {
            driver: self.name.clone(),
            source,
        })?;
        plugin
            .call("SetConfigRaw", &Type::Bytes, &Value::Bytes(bytes), QUICK)
            .map_err(|e| failed(&self.name, "load its saved state", e))?;
        let cache = Arc::new(Mutex::new(Cache {
            config: raw.clone(),
            ..Cache::default()
        }));
        Ok((plugin, cache))
    }

    /// The machine's driver: the plugin under the rules of every foreign
    /// driver ([`ForeignDriver`]), its configuration saved as it reports it.
    fn driver(
        &self,
        base: BaseDriver,
        plugin: Arc<Plugin>,
        cache: Arc<Mutex<Cache>>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let object = PluginObject {
            name: self.name.clone(),
            plugin,
            cache,
        };
        let d = ForeignDriver::new(&self.name, Naming::Rpc, base, Map::new(), Box::new(object))?;
        Ok(Box::new(d.saving_as_returned()))
    }
}

impl DriverFactory for PluginFactory {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> Result<(), DriverError> {
        self.flags().map(|_| ())
    }
    fn options(&self) -> Vec<DriverOption> {
        match self.flags() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }
    fn new_driver(
        &self,
        ctx: &DriverContext,
        options: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let declared = self.flags()?;
        // as the original: the machine name and store path first (a bare BaseDriver)
        let base =
            serde_json::to_value(ctx.base()).map_err(|source| DriverError::BadSavedState {
                driver: self.name.clone(),
                source,
            })?;
        let Json::Object(base) = base else {
            return Err(failed(
                &self.name,
                "create",
                "the base driver is not an object",
            ));
        };
        let (plugin, cache) = self.start(ctx, &base)?;
        let _ = plugin.call("GetMachineName", &empty_type(), &empty(), QUICK);
        let (ty, value) = rpc_flags(&declared, options);
        plugin
            .call("SetConfigFromFlags", &ty, &value, QUICK)
            .map_err(|e| failed(&self.name, "take its options", e))?;
        refresh(&plugin, &cache, false);
        self.driver(ctx.base(), plugin, cache)
    }
    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Json>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, _) = foreign::split_saved(&self.name, saved)?;
        let (plugin, cache) = self.start(ctx, saved)?;
        refresh(&plugin, &cache, true);
        self.driver(base, plugin, cache)
    }
}

/// What the plugin last said about its configuration, read back after
/// every lifecycle call (saving and the SSH target are asked from
/// synchronous code, where no call should wait for the plugin).
#[derive(Debug, Default, Clone)]
struct Cache {
    /// `GetConfigRaw`.
    config: Map<String, Json>,
    /// The SSH target (`GetSSHHostname`, `GetSSHPort`, `GetSSHUsername`,
    /// `GetSSHKeyPath`) as [`ForeignDriver`] reads it, or null.
    ssh: Json,
    /// `DriverName`.
    driver_name: Option<String>,
}

fn refresh(plugin: &Plugin, cache: &Mutex<Cache>, ssh: bool) {
    let ask = |m: &str| plugin.call(m, &empty_type(), &empty(), QUICK).ok();
    let text = |m: &str| ask(m).and_then(|v| v.as_str().map(str::to_string));
    let config = match ask("GetConfigRaw") {
        Some(Value::Bytes(b)) => serde_json::from_slice::<Map<String, Json>>(&b).ok(),
        _ => None,
    };
    let driver_name = text("DriverName");
    // the defaults (port 22, user root) are the foreign driver's
    let target = match text("GetSSHHostname").filter(|h| ssh && !h.is_empty()) {
        Some(host) => serde_json::json!({
            "host": host,
            "port": ask("GetSSHPort").and_then(|v| v.as_int()),
            "user": text("GetSSHUsername"),
            "keyPath": text("GetSSHKeyPath"),
        }),
        None => Json::Null,
    };
    if let Ok(mut c) = cache.lock() {
        if let Some(conf) = config {
            c.config = conf;
        }
        if driver_name.is_some() {
            c.driver_name = driver_name;
        }
        if ssh {
            c.ssh = target;
        }
    }
}

/// A plugin process as a [`ForeignObject`]: its RPC methods under their
/// protocol names ([`Naming::Rpc`]), answers turned into what
/// [`ForeignDriver`] expects.
#[derive(Debug)]
struct PluginObject {
    name: String,
    plugin: Arc<Plugin>,
    cache: Arc<Mutex<Cache>>,
}

/// Calls that may take as long as they take.
const LIFECYCLE: [&str; 6] = ["Create", "Remove", "Start", "Stop", "Restart", "Kill"];

/// An RPC failure across the boundary; when the connection closed because
/// the plugin exited, it says so.
fn call_error(plugin: &Plugin, e: RpcError) -> CallError {
    if matches!(e, RpcError::Closed | RpcError::Io(_)) {
        if let Some(st) = plugin.exit_status() {
            return CallError::message(format!("its plugin exited ({st}) during the call"));
        }
    }
    CallError::Failed(Box::new(e))
}

/// Call `method` (a [`Naming::Rpc`] member name) and convert its answer.
fn answer(plugin: &Plugin, cache: &Mutex<Cache>, method: &str) -> Result<Option<Json>, CallError> {
    let call = |timeout| {
        plugin
            .call(method, &empty_type(), &empty(), timeout)
            .map_err(|e| call_error(plugin, e))
    };
    let cached = |f: fn(&Cache) -> Json| cache.lock().map(|c| f(&c)).unwrap_or(Json::Null);
    match method {
        m if LIFECYCLE.contains(&m) => {
            let r = call(None);
            refresh(plugin, cache, true);
            r.map(|_| Some(Json::Null))
        }
        "PreCreateCheck" => call(None).map(|_| Some(Json::Null)),
        "GetState" => {
            let v = call(QUICK)?;
            match v.as_int().and_then(state_from_int) {
                Some(s) => Ok(Some(Json::from(s.as_str()))),
                None => Err(CallError::message(format!(
                    "GetState answered {v:?}, which is no machine state"
                ))),
            }
        }
        "GetIP" | "GetURL" => {
            let v = call(QUICK)?;
            match v.as_str() {
                Some(s) => Ok(Some(Json::from(s))),
                None => Err(CallError::message(format!(
                    "{method} answered {v:?}, not a string"
                ))),
            }
        }
        "GetSSHHostname" => Ok(Some(cached(|c| c.ssh.clone()))),
        "GetConfigRaw" => Ok(Some(cached(|c| Json::Object(c.config.clone())))),
        _ => Ok(None),
    }
}

#[async_trait]
impl ForeignObject for PluginObject {
    fn has_method(&self, name: &str) -> bool {
        Member::ALL
            .iter()
            .filter(|m| !matches!(m, Member::EnginePort | Member::NeedsProvisioning))
            .any(|m| m.name(Naming::Rpc) == name)
    }

    fn property(&self, name: &str) -> Result<Option<Json>, CallError> {
        let c = self
            .cache
            .lock()
            .map_err(|_| CallError::message("lock poisoned"))?;
        Ok(match name {
            // Go's zero value: a driver that has the field but left it unset
            "EnginePort" => c
                .config
                .get("EnginePort")
                .filter(|v| !v.is_null() && v.as_i64() != Some(0))
                .cloned(),
            // as the original: the driver called "none" is never provisioned
            "NeedsProvisioning" => Some(Json::Bool(
                c.driver_name.as_deref().unwrap_or(&self.name) != "none",
            )),
            _ => None,
        })
    }

    /// On a blocking thread of the runtime (a call may take minutes).
    async fn call(&self, name: &str) -> Result<Option<Json>, CallError> {
        let plugin = self.plugin.clone();
        let cache = self.cache.clone();
        let name = name.to_string();
        // the plugin's log lines reach the operation that made the call
        let listener = Listener::current();
        tokio::task::spawn_blocking(move || {
            let _hearing = plugin.hear(listener);
            answer(&plugin, &cache, &name)
        })
        .await
        .unwrap_or_else(|e| Err(CallError::message(format!("call task failed: {e}"))))
    }

    fn call_blocking(&self, name: &str) -> Result<Option<Json>, CallError> {
        answer(&self.plugin, &self.cache, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine_core::progress::forward;

    #[test]
    fn plugin_names_are_the_executables_on_path() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let tmp = tempfile::tempdir().expect("tmp");
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).expect("a");
        std::fs::create_dir_all(&b).expect("b");
        let file = |p: PathBuf, mode: u32| {
            std::fs::write(&p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        file(a.join("docker-machine-driver-hetzner"), 0o755);
        file(a.join("docker-machine-driver-notexec"), 0o644);
        file(a.join("docker-machine-driver-.hidden"), 0o755);
        file(a.join("docker-machine-driver-"), 0o755);
        file(a.join("unrelated"), 0o755);
        std::fs::create_dir(a.join("docker-machine-driver-adir")).expect("dir");
        file(b.join("docker-machine-driver-hetzner"), 0o755);
        symlink(
            a.join("docker-machine-driver-hetzner"),
            b.join("docker-machine-driver-linked"),
        )
        .expect("link");
        symlink(
            tmp.path().join("missing"),
            b.join("docker-machine-driver-dangling"),
        )
        .expect("link");
        let path = std::env::join_paths([a, tmp.path().join("nonexistent"), b]).expect("path");
        assert_eq!(plugin_names_in(&path), ["hetzner", "linked"]);
    }

    /// The output of `script` run by `sh`, read as a plugin's, lines labelled `m1`.
    fn output_of(script: &str) -> (Child, Arc<Output>) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh");
        let out = child.stdout.take().expect("stdout");
        let output = Arc::new(Output {
            pipe: File::from(OwnedFd::from(out)),
            state: Mutex::new(OutputState {
                label: "m1".into(),
                ..OutputState::default()
            }),
            changed: Condvar::new(),
        });
        (child, output)
    }

    #[tokio::test]
    async fn log_lines_reach_the_listening_operation_before_the_call_ends() {
        // a plugin that prints its address and a log line, then keeps running
        let (mut child, output) =
            output_of("echo 127.0.0.1:9; echo one; printf 'two\\n'; sleep 30");
        let seen = Mutex::new(Vec::<String>::new());
        let cb = |s: &str| seen.lock().expect("lock").push(s.to_string());
        let addr = forward(&cb, async {
            if let Ok(mut s) = output.state.lock() {
                s.listener = Listener::current();
            }
            let (tx, rx) = mpsc::channel();
            let reader = output.clone();
            std::thread::spawn(move || reader.read(tx));
            let addr = rx.recv().expect("address");
            // what a call does when it ends: wait for the lines printed so far
            drop(Hearing(Some(&output)));
            addr
        })
        .await;
        assert_eq!(addr, "127.0.0.1:9");
        assert_eq!(*seen.lock().expect("lock"), ["(m1) one", "(m1) two"]);
        assert!(output.state.lock().expect("lock").listener.is_none());
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    #[tokio::test]
    async fn a_last_line_without_a_newline_is_passed_on_when_the_plugin_exits() {
        let (mut child, output) = output_of("echo 127.0.0.1:9; printf half");
        let seen = Mutex::new(Vec::<String>::new());
        let cb = |s: &str| seen.lock().expect("lock").push(s.to_string());
        forward(&cb, async {
            if let Ok(mut s) = output.state.lock() {
                s.listener = Listener::current();
            }
            let (tx, rx) = mpsc::channel();
            let reader = output.clone();
            let t = std::thread::spawn(move || reader.read(tx));
            assert_eq!(rx.recv().expect("address"), "127.0.0.1:9");
            t.join().expect("reader");
        })
        .await;
        child.wait().expect("wait");
        assert_eq!(*seen.lock().expect("lock"), ["(m1) half"]);
        let s = output.state.lock().expect("lock");
        assert!(s.ended && !s.busy);
    }
}
