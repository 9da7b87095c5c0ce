//! Drivers written in Python, adapted to the core `DriverFactory` and `Driver`
//! traits, and the option values shared with `Store.create`.
//!
//! A Python driver is registered as a factory: a callable (usually the driver
//! class) called as `factory(context, options)`, where `context` is a
//! `DriverContext` and `options` the resolved create options keyed by flag name.
//! The factory's `options` attribute declares those options (`DriverOption`s).
//!
//! The object returned must have `create()`, `remove()`, `state()` (a state
//! name such as `"Running"`) and `ip()`; it may have `ssh_target()` (an
//! `SshTarget` or None), `url()`, `pre_create_check()`, `start()`, `stop()`,
//! `restart()`, `kill()`, `save()` (a JSON-serializable dict saved in
//! config.json), and the attributes `engine_port` (default 2376) and
//! `needs_provisioning` (default True). A missing method, or one raising
//! `NotImplementedError`, means "not supported".
//!
//! A machine created with a Python driver is loaded again by calling the factory
//! with what `save()` returned (default: the create options).
//!
//! The methods that may wait (create, state, ...) are called with the GIL held
//! on a blocking thread of the runtime (`spawn_blocking`), so a slow driver
//! method does not stall the runtime; the quick ones (`ssh_target`, `save`,
//! the attributes) on the thread that needs them.

use async_trait::async_trait;
use machine_core::config::{BaseDriver, DEFAULT_ENGINE_PORT};
use machine_core::driver::{
    engine_url, not_supported, Driver, DriverContext, DriverError, DriverFactory, DriverOption,
    DriverOptions, OptionKind, OptionValue, SshTarget,
};
use machine_core::State;
use pyo3::exceptions::{PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A Python value as an option value: bool, int, str, or a list/tuple of str.
pub(crate) fn option_value(flag: &str, v: &Bound<'_, PyAny>) -> PyResult<OptionValue> {
    if v.is_instance_of::<PyBool>() {
        Ok(OptionValue::Bool(v.extract()?))
    } else if v.is_instance_of::<PyInt>() {
        Ok(OptionValue::Int(v.extract()?))
    } else if v.is_instance_of::<PyString>() {
        Ok(OptionValue::String(v.extract()?))
    } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        v.extract::<Vec<String>>()
            .map(OptionValue::List)
            .map_err(|_| PyTypeError::new_err(format!("option {flag}: expected a list of str")))
    } else {
        Err(PyTypeError::new_err(format!(
            "option {flag}: expected bool, int, str or a list of str, got {}",
            v.get_type().name()?
        )))
    }
}

fn kind_name(k: OptionKind) -> &'static str {
    match k {
        OptionKind::String => "string",
        OptionKind::Int => "int",
        OptionKind::Bool => "bool",
        OptionKind::StringList => "list",
    }
}

/// The engine and TLS options `Store.create` takes in `engine=`, keyed by
/// their CLI flag names (the core's list, as `machine create --help` shows).
#[pyfunction]
pub(crate) fn engine_options() -> Vec<PyDriverOption> {
    machine_core::host::engine_options()
        .into_iter()
        .map(PyDriverOption)
        .collect()
}

/// The swarm options `Store.create` takes in `swarm=`, keyed by their CLI
/// flag names (`swarm`, `swarm-master`, `swarm-discovery`, ...).
#[pyfunction]
pub(crate) fn swarm_options() -> Vec<PyDriverOption> {
    machine_core::swarm::swarm_options()
        .into_iter()
        .map(PyDriverOption)
        .collect()
}

/// A create option a driver declares, keyed by its CLI flag name.
#[pyclass(frozen, name = "DriverOption", module = "docker_machine")]
#[derive(Debug, Clone)]
pub struct PyDriverOption(DriverOption);

#[pymethods]
impl PyDriverOption {
    #[new]
    #[pyo3(signature = (flag, kind = "string", *, default = None, env_var = None, help = "", required = false))]
    fn new(
        flag: &str,
        kind: &str,
        default: Option<&Bound<'_, PyAny>>,
        env_var: Option<&str>,
        help: &str,
        required: bool,
    ) -> PyResult<Self> {
        let kind = match kind {
            "string" | "str" => OptionKind::String,
            "int" => OptionKind::Int,
            "bool" => OptionKind::Bool,
            "list" | "stringlist" => OptionKind::StringList,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown option kind {other:?} (expected string, int, bool or list)"
                )))
            }
        };
        let flag = flag.trim_start_matches('-');
        let mut o = DriverOption::new(flag, kind, help);
        if let Some(d) = default {
            o = o.default_value(&option_value(flag, d)?.to_string());
        }
        if let Some(e) = env_var {
            o = o.env(e);
        }
        if required {
            o = o.required();
        }
        Ok(PyDriverOption(o))
    }

    /// Flag name without dashes, e.g. `generic-ip-address`.
    #[getter]
    fn flag(&self) -> &str {
        &self.0.flag
    }
    /// `string`, `int`, `bool` or `list`.
    #[getter]
    fn kind(&self) -> &'static str {
        kind_name(self.0.kind)
    }
    /// Default as the user would type it, or None.
    #[getter]
    fn default(&self) -> Option<&str> {
        self.0.default.as_deref()
    }
    /// Environment variable read when the option is not given, or None.
    #[getter]
    fn env_var(&self) -> Option<&str> {
        self.0.env_var.as_deref()
    }
    #[getter]
    fn help(&self) -> &str {
        &self.0.help
    }
    #[getter]
    fn required(&self) -> bool {
        self.0.required
    }
    fn __repr__(&self) -> String {
        format!(
            "DriverOption({:?}, {:?}, required={})",
            self.0.flag,
            kind_name(self.0.kind),
            if self.0.required { "True" } else { "False" }
        )
    }
}

/// Where a machine lives in the store, given to driver factories.
#[pyclass(frozen, get_all, name = "DriverContext", module = "docker_machine")]
#[derive(Debug, Clone)]
pub struct PyDriverContext {
    /// The machine's name.
    machine_name: String,
    /// The store's root directory.
    store_path: String,
    /// The machine's directory (`<store>/machines/<name>`), where a driver may keep files.
    machine_dir: String,
}

#[pymethods]
impl PyDriverContext {
    fn __repr__(&self) -> String {
        format!(
            "DriverContext(machine_name={:?}, machine_dir={:?})",
            self.machine_name, self.machine_dir
        )
    }
}

impl From<&DriverContext> for PyDriverContext {
    fn from(c: &DriverContext) -> Self {
        PyDriverContext {
            machine_name: c.machine_name.clone(),
            store_path: c.store_root.to_string_lossy().into_owned(),
            machine_dir: c.machine_dir.to_string_lossy().into_owned(),
        }
    }
}

/// How to reach a machine over SSH (returned by a Python driver's `ssh_target()`).
#[pyclass(frozen, get_all, name = "SshTarget", module = "docker_machine")]
#[derive(Debug, Clone)]
pub struct PySshTarget {
    host: String,
    port: u16,
    user: String,
    /// Private key file; None: use the SSH agent.
    key_path: Option<String>,
}

#[pymethods]
impl PySshTarget {
    #[new]
    #[pyo3(signature = (host, port = 22, user = "root", key_path = None))]
    fn new(host: String, port: u16, user: &str, key_path: Option<PathBuf>) -> Self {
        PySshTarget {
            host,
            port,
            user: user.to_string(),
            key_path: key_path.map(|p| p.to_string_lossy().into_owned()),
        }
    }
    fn __repr__(&self) -> String {
        format!(
            "SshTarget({:?}, port={}, user={:?}, key_path={:?})",
            self.host, self.port, self.user, self.key_path
        )
    }
}

/// The `factory` registered under `name`, with its declared options
/// (`options` if given, else the factory's `options` attribute).
pub(crate) fn factory(
    name: &str,
    factory: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyAny>>,
) -> PyResult<Arc<dyn DriverFactory>> {
    if !factory.is_callable() {
        return Err(PyTypeError::new_err(
            "a driver factory must be callable as factory(context, options), e.g. the driver class",
        ));
    }
    let declared = match options {
        Some(o) => Some(o.clone()),
        None => factory.getattr_opt("options")?,
    };
    let mut list = Vec::new();
    if let Some(declared) = declared.filter(|d| !d.is_none()) {
        for item in declared.try_iter()? {
            let item = item?;
            let opt = item.cast::<PyDriverOption>().map_err(|_| {
                PyTypeError::new_err("a driver's options must be DriverOption objects")
            })?;
            list.push(opt.get().0.clone());
        }
    }
    Ok(Arc::new(PyFactory {
        name: name.to_string(),
        options: list,
        factory: Arc::new(factory.clone().unbind()),
    }))
}

/// A driver factory implemented in Python.
struct PyFactory {
    name: String,
    options: Vec<DriverOption>,
    factory: Arc<Py<PyAny>>,
}

impl fmt::Debug for PyFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyFactory")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PyFactory {
    fn build(
        &self,
        ctx: &DriverContext,
        base: BaseDriver,
        own: Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        Python::attach(|py| {
            let given = json_to_py(py, &Value::Object(own.clone()))
                .map_err(|e| py_failed(&self.name, "read its options", e))?;
            let obj = self
                .factory
                .call1(py, (PyDriverContext::from(ctx), given))
                .map_err(|e| py_failed(&self.name, "set up the driver", e))?;
            Ok(Box::new(PyDriver {
                name: self.name.clone(),
                obj: Arc::new(obj),
                base,
                own,
            }) as Box<dyn Driver>)
        })
    }
}

impl DriverFactory for PyFactory {
    fn name(&self) -> &str {
        &self.name
    }

    fn options(&self) -> Vec<DriverOption> {
        self.options.clone()
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        options: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let own = options.to_json_map();
        self.build(ctx, ctx.base(), own)
    }

    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, own) = BaseDriver::split_driver_object(saved).map_err(|source| {
            DriverError::BadSavedState {
                driver: self.name.clone(),
                source,
            }
        })?;
        self.build(ctx, base, own)
    }
}

/// The option values given to the factory as a dict (also used to show a saved state).
fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    crate::json_loads(py, &v.to_string())
}

/// A Python exception as a driver error: `NotImplementedError` means "not supported".
fn py_error(py: Python<'_>, driver: &str, method: &str, what: &str, e: PyErr) -> DriverError {
    if e.is_instance_of::<PyNotImplementedError>(py) {
        not_supported(driver, method)
    } else {
        py_failed(driver, what, e)
    }
}

fn py_failed(driver: &str, what: &str, e: PyErr) -> DriverError {
    DriverError::Source {
        driver: driver.to_string(),
        operation: what.to_string(),
        source: Box::new(e),
    }
}

/// A driver object implemented in Python.
struct PyDriver {
    name: String,
    obj: Arc<Py<PyAny>>,
    base: BaseDriver,
    /// What is saved when the object has no `save()`: its create options.
    own: Map<String, Value>,
}

impl fmt::Debug for PyDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyDriver")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PyDriver {
    /// Call `method()` on a blocking thread with the GIL, and convert its result.
    async fn call<T, F>(
        &self,
        method: &'static str,
        what: &'static str,
        convert: F,
    ) -> Result<T, DriverError>
    where
        T: Send + 'static,
        F: FnOnce(&Bound<'_, PyAny>) -> PyResult<T> + Send + 'static,
    {
        let obj = Arc::clone(&self.obj);
        let name = self.name.clone();
        let joined = tokio::task::spawn_blocking(move || {
            Python::attach(|py| {
                let o = obj.bind(py);
                match o.getattr_opt(method) {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(not_supported(&name, method)),
                    Err(e) => return Err(py_error(py, &name, method, what, e)),
                }
                o.call_method0(method)
                    .and_then(|r| convert(&r))
                    .map_err(|e| py_error(py, &name, method, what, e))
            })
        })
        .await;
        joined.unwrap_or_else(|e| {
            Err(DriverError::Failed {
                driver: self.name.clone(),
                operation: what.to_string(),
                message: e.to_string(),
            })
        })
    }

    fn has(&self, method: &str) -> bool {
        Python::attach(|py| {
            self.obj
                .bind(py)
                .getattr_opt(method)
                .ok()
                .flatten()
                .is_some()
        })
    }

    fn attr<T>(&self, name: &str, default: T) -> T
    where
        T: for<'a, 'py> FromPyObject<'a, 'py>,
    {
        Python::attach(|py| match self.obj.bind(py).getattr_opt(name) {
            Ok(Some(v)) => v.extract::<T>().unwrap_or(default),
            _ => default,
        })
    }
}

fn nothing(_: &Bound<'_, PyAny>) -> PyResult<()> {
    Ok(())
}

fn string(r: &Bound<'_, PyAny>) -> PyResult<String> {
    r.extract()
}

#[async_trait]
impl Driver for PyDriver {
    fn driver_name(&self) -> &str {
        &self.name
    }
    async fn create(&mut self) -> Result<(), DriverError> {
        self.call("create", "create the machine", nothing).await
    }
    async fn remove(&mut self) -> Result<(), DriverError> {
        self.call("remove", "remove the machine", nothing).await
    }
    async fn state(&self) -> Result<State, DriverError> {
        let s: Option<String> = self
            .call("state", "get the machine's state", |r| r.extract())
            .await?;
        let s = s.unwrap_or_default();
        s.parse().map_err(
            |e: machine_core::state::ParseStateError| DriverError::Failed {
                driver: self.name.clone(),
                operation: "get the machine's state".into(),
                message: e.to_string(),
            },
        )
    }
    async fn ip(&self) -> Result<String, DriverError> {
        self.call("ip", "get the machine's IP address", string)
            .await
    }
    fn ssh_target(&self) -> Option<SshTarget> {
        Python::attach(|py| {
            let o = self.obj.bind(py);
            if !matches!(o.getattr_opt("ssh_target"), Ok(Some(_))) {
                return None;
            }
            let r = o.call_method0("ssh_target").and_then(|t| {
                if t.is_none() {
                    return Ok(None);
                }
                let t = t.cast::<PySshTarget>().map_err(|_| {
                    PyTypeError::new_err("ssh_target() must return an SshTarget or None")
                })?;
                let t = t.get();
                Ok(Some(SshTarget {
                    host: t.host.clone(),
                    port: t.port,
                    user: t.user.clone(),
                    key_path: t.key_path.as_ref().map(PathBuf::from),
                }))
            });
            r.unwrap_or_else(|e| {
                // Nothing to return an error through: report it and act as "no SSH access".
                e.write_unraisable(py, Some(o));
                None
            })
        })
    }
    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        let own = if self.has("save") {
            Python::attach(|py| {
                let o = self.obj.bind(py);
                let text: String = o
                    .call_method0("save")
                    .and_then(|d| py.import("json")?.call_method1("dumps", (d,))?.extract())
                    .map_err(|e| py_failed(&self.name, "save its state", e))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => Ok(m),
                    _ => Err(py_failed(
                        &self.name,
                        "save its state",
                        PyTypeError::new_err("save() must return a dict"),
                    )),
                }
            })?
        } else {
            self.own.clone()
        };
        self.base
            .merge_driver_object(own, &Map::new())
            .map_err(|source| DriverError::BadSavedState {
                driver: self.name.clone(),
                source,
            })
    }
    async fn url(&self) -> Result<String, DriverError> {
        if self.has("url") {
            return self.call("url", "get the Docker URL", string).await;
        }
        let ip = self.ip().await?;
        Ok(engine_url(&ip, self.engine_port()))
    }
    fn engine_port(&self) -> u16 {
        self.attr("engine_port", DEFAULT_ENGINE_PORT)
    }
    fn needs_provisioning(&self) -> bool {
        self.attr("needs_provisioning", true)
    }
    async fn pre_create_check(&self) -> Result<(), DriverError> {
        if !self.has("pre_create_check") {
            return Ok(());
        }
        let name = self.name.clone();
        self.call("pre_create_check", "run its pre-create check", nothing)
            .await
            .map_err(|e| match e {
                DriverError::Source { source, .. } => DriverError::PreCreateCheck {
                    driver: name,
                    reason: source.to_string(),
                },
                other => other,
            })
    }
    async fn start(&mut self) -> Result<(), DriverError> {
        self.call("start", "start the machine", nothing).await
    }
    async fn stop(&mut self) -> Result<(), DriverError> {
        self.call("stop", "stop the machine", nothing).await
    }
    async fn restart(&mut self) -> Result<(), DriverError> {
        self.call("restart", "restart the machine", nothing).await
    }
    async fn kill(&mut self) -> Result<(), DriverError> {
        self.call("kill", "kill the machine", nothing).await
    }
}
