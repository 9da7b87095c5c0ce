//! `Store`: the machines of one store directory (core `host::Store`).

use crate::driver::{JsDriverClass, JsDriverOptionSpec, JsThread};
use crate::error::{as_is, invalid, promise, to_js, Outcome};
use crate::host::JsHost;
use machine_core::driver::OptionValue;
use machine_core::host::{CreateOptions, ListEntry, Store};
use napi::bindgen_prelude::{Either4, Function, PromiseRaw};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A JavaScript progress callback, callable from any thread.
pub(crate) type ProgressFn = ThreadsafeFunction<String, (), String, Status, false, true>;

/// The core's progress callback for an optional JavaScript one. Steps are
/// queued to the JavaScript thread in order; an exception thrown by the
/// callback is ignored (it cannot fail the operation it reports on).
pub(crate) fn progress_fn(f: Option<ProgressFn>) -> Arc<dyn Fn(&str) + Send + Sync> {
    match f {
        None => Arc::new(|_: &str| {}),
        Some(f) => Arc::new(move |step: &str| {
            f.call_with_return_value(
                step.to_string(),
                ThreadsafeFunctionCallMode::NonBlocking,
                |_, _| Ok(()),
            );
        }),
    }
}

/// A driver option or engine flag value, as the CLI flag would take it.
pub(crate) type JsOptionValue = Either4<String, bool, i64, Vec<String>>;

fn option_value(v: JsOptionValue) -> OptionValue {
    match v {
        Either4::A(s) => OptionValue::String(s),
        Either4::B(b) => OptionValue::Bool(b),
        Either4::C(i) => OptionValue::Int(i),
        Either4::D(l) => OptionValue::List(l),
    }
}

/// What `create()` makes.
#[napi(object, js_name = "CreateOptions", object_to_js = false)]
pub struct JsCreateOptions {
    /// Driver name: `qemu` (the default, a local VM), `generic`, `none`, or one added with `registerDriver()`.
    pub driver: Option<String>,
    /// Driver options keyed by CLI flag name, e.g. `{ 'generic-ip-address': '192.0.2.10' }`.
    #[napi(ts_type = "Record<string, string | boolean | number | string[]>")]
    pub options: Option<HashMap<String, JsOptionValue>>,
    /// Engine and TLS flags keyed by CLI flag name: `engine-opt`, `engine-label`,
    /// `engine-env`, `engine-insecure-registry`, `engine-registry-mirror`
    /// (lists), `engine-install-url`, `engine-storage-driver`, `tls-san`,
    /// `tls-key-algorithm`; with driver `none`, `tls-ca-cert`,
    /// `tls-client-cert` and `tls-client-key` (all three) adopt a daemon
    /// with its own TLS setup.
    #[napi(ts_type = "Record<string, string | string[]>")]
    pub engine: Option<HashMap<String, JsOptionValue>>,
    /// Swarm-mode flags keyed by CLI flag name: `{ 'swarm-master': true }`
    /// starts a cluster; `{ swarm: true, 'swarm-discovery': 'machine://m1' }`
    /// joins the cluster of `m1`, a manager machine of this store (with
    /// `'swarm-master': true`, as a manager); `swarm-addr`, `swarm-opt` and
    /// `swarm-join-opt` (lists of `KEY=VALUE`) tune it (see `swarmOptions()`).
    #[napi(ts_type = "Record<string, string | boolean | string[]>")]
    pub swarm: Option<HashMap<String, JsOptionValue>>,
    /// Called with each step of the creation.
    #[napi(ts_type = "(step: string) => void")]
    pub on_progress: Option<ProgressFn>,
}

impl std::fmt::Debug for JsCreateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateOptions")
            .field("driver", &self.driver)
            .field(
                "options",
                &self.options.as_ref().map(|o| o.keys().collect::<Vec<_>>()),
            )
            .field(
                "engine",
                &self.engine.as_ref().map(|o| o.keys().collect::<Vec<_>>()),
            )
            .field(
                "swarm",
                &self.swarm.as_ref().map(|o| o.keys().collect::<Vec<_>>()),
            )
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

/// Options of `list()`.
#[napi(object, js_name = "ListOptions")]
#[derive(Debug, Default)]
pub struct JsListOptions {
    /// Seconds to wait for each machine (default 10), as `ls --timeout`.
    pub timeout: Option<f64>,
}

/// Options of `remove()`.
#[napi(object, js_name = "RemoveOptions")]
#[derive(Debug, Default)]
pub struct JsRemoveOptions {
    /// Remove the machine from the store even when its driver fails to remove it.
    pub force: Option<bool>,
}

/// Options of `importArchive()`.
#[napi(object, js_name = "ImportOptions")]
#[derive(Default)]
pub struct JsImportOptions {
    /// The machine's name in this store (default: its name in the archive).
    pub name: Option<String>,
    /// The passphrase of an encrypted archive.
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for JsImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("name", &self.name)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "…"))
            .finish()
    }
}

/// One row of `list()`: the fields of `docker-machine ls`.
#[napi(object, js_name = "ListEntry")]
#[derive(Debug)]
pub struct JsListEntry {
    pub name: String,
    pub driver_name: String,
    pub state: String,
    pub url: String,
    pub swarm: String,
    pub docker_version: String,
    pub error: String,
    /// How long querying this machine took, in milliseconds.
    pub response_time_ms: f64,
}

impl From<ListEntry> for JsListEntry {
    fn from(e: ListEntry) -> Self {
        JsListEntry {
            name: e.name,
            driver_name: e.driver_name,
            state: e.state.to_string(),
            url: e.url,
            swarm: e.swarm,
            docker_version: e.docker_version,
            error: e.error,
            response_time_ms: e.response_time_ms as f64,
        }
    }
}

type OptionMap = Option<HashMap<String, JsOptionValue>>;

fn create_options(
    driver: &str,
    options: OptionMap,
    engine: OptionMap,
    swarm: OptionMap,
) -> Outcome<CreateOptions> {
    let mut opts = CreateOptions::new(driver);
    for (flag, value) in options.unwrap_or_default() {
        opts.driver_option(&flag, option_value(value));
    }
    for (flag, value) in engine.unwrap_or_default() {
        opts.engine_flag(&flag, option_value(value))?;
    }
    for (flag, value) in swarm.unwrap_or_default() {
        opts.swarm_flag(&flag, option_value(value))?;
    }
    Ok(opts)
}

/// The machines kept in one store directory, with the drivers that serve them.
///
/// `new Store()` uses `MACHINE_STORAGE_PATH`, else `~/.docker/machine`, like docker-machine.
#[napi(js_name = "Store")]
#[derive(Debug)]
pub struct JsStore {
    inner: Store,
    js: Option<JsThread>,
}

#[napi]
impl JsStore {
    /// Open the store at `path` (created on first use).
    #[napi(constructor)]
    pub fn new(env: Env, path: Option<String>) -> napi::Result<Self> {
        let inner = Store::open(path.map(PathBuf::from), machine_drivers::builtin_registry())
            .map_err(|e| crate::error::to_js(&env, &e.into()))?;
        Ok(JsStore { inner, js: None })
    }

    /// The store's directory.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.files().root().to_string_lossy().into_owned()
    }

    /// Create a machine: certificates, the driver's create, then provisioning
    /// of Docker with TLS. A machine whose creation fails after its name was
    /// claimed stays in the store with state `Error`, for `remove()`.
    #[napi(ts_return_type = "Promise<Host>")]
    pub fn create<'env>(
        &self,
        env: &'env Env,
        name: String,
        options: Option<JsCreateOptions>,
    ) -> napi::Result<PromiseRaw<'env, JsHost>> {
        let store = self.inner.clone();
        let (driver, options, engine, swarm, on_progress) = match options {
            Some(o) => (o.driver, o.options, o.engine, o.swarm, o.on_progress),
            None => (None, None, None, None, None),
        };
        let progress = progress_fn(on_progress);
        let opts = create_options(
            driver
                .as_deref()
                .unwrap_or(machine_core::driver::DEFAULT_DRIVER),
            options,
            engine,
            swarm,
        );
        promise(
            env,
            async move {
                let host = store.create(&name, opts?, &*progress).await?;
                Ok(JsHost::new(host))
            },
            as_is,
        )
    }

    /// The machine named `name`; rejects with code `NotFound` when there is none.
    #[napi(ts_return_type = "Promise<Host>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        name: String,
    ) -> napi::Result<PromiseRaw<'env, JsHost>> {
        let store = self.inner.clone();
        promise(
            env,
            async move { Ok(JsHost::new(store.get(&name)?)) },
            as_is,
        )
    }

    /// Every machine with its state, URL and Docker version, queried in parallel.
    #[napi(ts_return_type = "Promise<ListEntry[]>")]
    pub fn list<'env>(
        &self,
        env: &'env Env,
        options: Option<JsListOptions>,
    ) -> napi::Result<PromiseRaw<'env, Vec<JsListEntry>>> {
        let store = self.inner.clone();
        let timeout = options.and_then(|o| o.timeout).unwrap_or(10.0);
        promise(
            env,
            async move {
                let timeout = Duration::try_from_secs_f64(timeout)
                    .map_err(|e| invalid("timeout", &timeout.to_string(), e.to_string()))?;
                Ok(store
                    .list(timeout)
                    .await?
                    .into_iter()
                    .map(JsListEntry::from)
                    .collect())
            },
            as_is,
        )
    }

    /// Remove a machine: its driver removes what it made, then the store entry goes.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn remove<'env>(
        &self,
        env: &'env Env,
        name: String,
        options: Option<JsRemoveOptions>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let store = self.inner.clone();
        let force = options.and_then(|o| o.force).unwrap_or(false);
        promise(env, async move { store.remove(&name, force).await }, as_is)
    }

    /// OpenSSH `Host` blocks for the machines `names` (default: every machine with SSH access), like `ssh-config`.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn ssh_config<'env>(
        &self,
        env: &'env Env,
        names: Option<Vec<String>>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let store = self.inner.clone();
        let names = names.unwrap_or_default();
        promise(env, async move { store.ssh_config(&names) }, as_is)
    }

    /// Add a machine from an archive of `exportArchive()`; checked completely before anything is written.
    #[napi(
        ts_args_type = "data: Uint8Array, options?: ImportOptions | undefined | null",
        ts_return_type = "Promise<Host>"
    )]
    pub fn import_archive<'env>(
        &self,
        env: &'env Env,
        data: napi::bindgen_prelude::Buffer,
        options: Option<JsImportOptions>,
    ) -> napi::Result<PromiseRaw<'env, JsHost>> {
        let store = self.inner.clone();
        let bytes: Vec<u8> = data.to_vec();
        let o = options.unwrap_or_default();
        let opts = machine_core::host::ImportOptions {
            name: o.name,
            passphrase: o.passphrase,
        };
        promise(
            env,
            async move { Ok(JsHost::new(store.import_archive(&bytes, &opts)?)) },
            as_is,
        )
    }

    /// The machines' names, sorted.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn names<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let store = self.inner.clone();
        promise(env, async move { store.names() }, as_is)
    }

    /// Names of the drivers, sorted: the registered ones and the driver plugins (`docker-machine-driver-NAME`) on `PATH`.
    #[napi]
    pub fn drivers(&self) -> Vec<String> {
        self.inner.drivers().names()
    }

    /// Register a driver written in JavaScript under `name` (replacing any of
    /// that name), for `create(machine, { driver: name })` and every later call
    /// of this store. `factory`, usually the driver class, is called as
    /// `new factory(context, options)` for a new machine with its create
    /// options, and for a machine loaded from the store with what the driver's
    /// `save()` returned (default: the create options). The options it accepts
    /// are `options`, else the factory's `options` property.
    #[napi(
        ts_args_type = "name: string, factory: MachineDriverFactory, options?: DriverOptionSpec[]"
    )]
    pub fn register_driver(
        &mut self,
        env: Env,
        name: String,
        factory: Function<'_, (), ()>,
        options: Option<Vec<JsDriverOptionSpec>>,
    ) -> napi::Result<()> {
        let js = match &self.js {
            Some(js) => js.clone(),
            None => JsThread::new(&env)?,
        };
        let class =
            JsDriverClass::new(&name, factory, options, js.clone()).map_err(|e| to_js(&env, &e))?;
        self.js = Some(js);
        self.inner.drivers_mut().register(Arc::new(class));
        Ok(())
    }
}
