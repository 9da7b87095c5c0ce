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
//! `NotImplementedError`, means "not supported". These rules are the core's
//! (`machine_core::foreign`), the same for JavaScript drivers and driver
//! plugins: an object without one of the four methods, or with an
//! `engine_port` that is not a port, is refused when the driver is made.
//!
//! A machine created with a Python driver is loaded again by calling the factory
//! with what `save()` returned (default: the create options).
//!
//! The methods that may wait (create, state, ...) are called with the GIL held
//! on a blocking thread of the runtime (`spawn_blocking`), so a slow driver
//! method does not stall the runtime; the quick ones (`ssh_target`, `save`,
//! the attributes) on the thread that needs them.

use async_trait::async_trait;
use machine_core::config::BaseDriver;
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, OptionKind,
    OptionValue,
};
use machine_core::foreign::{self, CallError, ForeignDriver, ForeignObject, Naming};
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
        let obj = Python::attach(|py| {
            let given = json_to_py(py, &Value::Object(own.clone()))
                .map_err(|e| py_failed(&self.name, "read its options", e))?;
            self.factory
                .call1(py, (PyDriverContext::from(ctx), given))
                .map_err(|e| py_failed(&self.name, "set up the driver", e))
        })?;
        let object = PyObject { obj: Arc::new(obj) };
        let driver = ForeignDriver::new(&self.name, Naming::Snake, base, own, Box::new(object))?;
        Ok(Box::new(driver))
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
        let (base, own) = foreign::split_saved(&self.name, saved)?;
        self.build(ctx, base, own)
    }
}

/// The option values given to the factory as a dict (also used to show a saved state).
fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    crate::json_loads(py, &v.to_string())
}

fn py_failed(driver: &str, what: &str, e: PyErr) -> DriverError {
    DriverError::Source {
        driver: driver.to_string(),
        operation: what.to_string(),
        source: Box::new(e),
    }
}

/// A driver object implemented in Python, called by the core's
/// [`ForeignDriver`] (which holds the rules for every foreign driver).
struct PyObject {
    obj: Arc<Py<PyAny>>,
}

impl fmt::Debug for PyObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyObject").finish_non_exhaustive()
    }
}

/// A Python exception across the boundary: `NotImplementedError` means
/// "not supported".
fn call_error(py: Python<'_>, e: PyErr) -> CallError {
    if e.is_instance_of::<PyNotImplementedError>(py) {
        CallError::NotSupported
    } else {
        CallError::Failed(Box::new(e))
    }
}

/// A value returned by Python as JSON: an `SshTarget` as its fields, anything
/// else through `json.dumps`.
fn py_to_json(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(t) = v.cast::<PySshTarget>() {
        let t = t.get();
        return Ok(serde_json::json!({
            "host": t.host, "port": t.port, "user": t.user, "keyPath": t.key_path,
        }));
    }
    let text: String = py.import("json")?.call_method1("dumps", (v,))?.extract()?;
    serde_json::from_str(&text).map_err(|e| PyTypeError::new_err(e.to_string()))
}

fn call_now(obj: &Py<PyAny>, method: &str) -> Result<Option<Value>, CallError> {
    Python::attach(|py| {
        let o = obj.bind(py);
        match o.getattr_opt(method) {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(e) => return Err(call_error(py, e)),
        }
        o.call_method0(method)
            .and_then(|r| py_to_json(py, &r))
            .map(Some)
            .map_err(|e| call_error(py, e))
    })
}

#[async_trait]
impl ForeignObject for PyObject {
    fn has_method(&self, name: &str) -> bool {
        Python::attach(
            |py| matches!(self.obj.bind(py).getattr_opt(name), Ok(Some(m)) if m.is_callable()),
        )
    }

    fn property(&self, name: &str) -> Result<Option<Value>, CallError> {
        Python::attach(|py| match self.obj.bind(py).getattr_opt(name) {
            Ok(None) => Ok(None),
            Ok(Some(v)) => py_to_json(py, &v).map(Some).map_err(|e| call_error(py, e)),
            Err(e) => Err(call_error(py, e)),
        })
    }

    /// On a blocking thread of the runtime with the GIL, so a slow driver
    /// method does not stall the runtime.
    async fn call(&self, name: &str) -> Result<Option<Value>, CallError> {
        let obj = Arc::clone(&self.obj);
        let name = name.to_string();
        tokio::task::spawn_blocking(move || call_now(&obj, &name))
            .await
            .unwrap_or_else(|e| Err(CallError::message(e.to_string())))
    }

    fn call_blocking(&self, name: &str) -> Result<Option<Value>, CallError> {
        call_now(&self.obj, name)
    }

    /// As Python reports errors nobody can catch: `sys.unraisablehook`.
    fn unreported(&self, _name: &str, problem: &str) {
        Python::attach(|py| {
            PyTypeError::new_err(problem.to_string()).write_unraisable(py, Some(self.obj.bind(py)))
        })
    }
}
