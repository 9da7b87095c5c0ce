//! `Store` (the core `host::Store`) and `ListEntry` (one row of `ls`).

use crate::driver::option_value;
use crate::host::PyHost;
use crate::{error, wait, Progress};
use machine_core::driver::DEFAULT_DRIVER;
use machine_core::host::{CreateOptions, ListEntry, Store};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping, PyMappingMethods};
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// The machines of one store directory, with the drivers that serve them.
#[pyclass(frozen, name = "Store", module = "docker_machine")]
#[derive(Debug)]
pub struct PyStore {
    /// Each call works on a copy taken at its start, so a call that waits
    /// never blocks `register_driver`.
    inner: RwLock<Store>,
}

impl PyStore {
    fn store(&self) -> Store {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Seconds as a Duration; negative, NaN or infinite values are refused.
pub(crate) fn seconds(timeout: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(timeout).map_err(|_| {
        PyValueError::new_err(format!("invalid timeout {timeout}: expected seconds >= 0"))
    })
}

/// The (flag, value) pairs of an options mapping, in its order.
fn items<'py>(m: Option<&Bound<'py, PyMapping>>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
    match m {
        None => Ok(Vec::new()),
        Some(m) => m.items()?.iter().map(|kv| kv.extract()).collect(),
    }
}

#[pymethods]
impl PyStore {
    /// The store at `path`, or at `MACHINE_STORAGE_PATH`, or at `~/.docker/machine`,
    /// with the built-in drivers (`none`, `generic`, `qemu`, `amazonec2`).
    #[new]
    #[pyo3(signature = (path = None))]
    fn new(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Self> {
        let store = Store::open(path, machine_drivers::builtin_registry())
            .map_err(|e| error::to_py(py, e.into()))?;
        Ok(PyStore {
            inner: RwLock::new(store),
        })
    }

    /// The store's root directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.store().files().root().to_path_buf()
    }

    /// The machines' names, sorted case-insensitively.
    fn names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.store().names().map_err(|e| error::to_py(py, e))
    }

    /// Names of the drivers, sorted: the registered ones and the driver plugins (`docker-machine-driver-NAME`) on `PATH`.
    fn drivers(&self) -> Vec<String> {
        self.store().drivers().names()
    }

    /// Load the machine `name`.
    fn get(&self, py: Python<'_>, name: &str) -> PyResult<PyHost> {
        let store = self.store();
        #[allow(clippy::result_large_err)] // the core's error type, returned as is
        let host = py
            .detach(|| store.get(name))
            .map_err(|e| error::to_py(py, e))?;
        Ok(PyHost::new(host))
    }

    /// Create a machine and provision Docker on it.
    #[pyo3(signature = (name, driver = DEFAULT_DRIVER, options = None, engine = None, progress = None, swarm = None))]
    #[allow(clippy::too_many_arguments)] // the keyword arguments of create()
    fn create(
        &self,
        py: Python<'_>,
        name: &str,
        driver: &str,
        options: Option<&Bound<'_, PyMapping>>,
        engine: Option<&Bound<'_, PyMapping>>,
        progress: Option<Py<PyAny>>,
        swarm: Option<&Bound<'_, PyMapping>>,
    ) -> PyResult<PyHost> {
        let mut opts = CreateOptions::new(driver);
        for (flag, v) in items(options)? {
            opts.driver_option(&flag, option_value(&flag, &v)?);
        }
        for (flag, v) in items(engine)? {
            opts.engine_flag(&flag, option_value(&flag, &v)?)
                .map_err(|e| error::to_py(py, e))?;
        }
        for (flag, v) in items(swarm)? {
            opts.swarm_flag(&flag, option_value(&flag, &v)?)
                .map_err(|e| error::to_py(py, e))?;
        }
        let store = self.store();
        let progress = Progress(progress);
        let host = wait(
            py,
            store.create(name, opts, &|step: &str| progress.call(step)),
        )?;
        Ok(PyHost::new(host))
    }

    /// Query every machine at once, each bounded by `timeout` seconds.
    #[pyo3(signature = (timeout = 10.0))]
    fn list(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<PyListEntry>> {
        let timeout = seconds(timeout)?;
        let store = self.store();
        let rows = wait(py, store.list(timeout))?;
        Ok(rows.into_iter().map(PyListEntry).collect())
    }

    /// Remove the machine: the driver removes what it made, then the store entry
    /// goes. With `force`, the store entry goes even when the driver fails.
    #[pyo3(signature = (name, force = false))]
    fn remove(&self, py: Python<'_>, name: &str, force: bool) -> PyResult<()> {
        let store = self.store();
        wait(py, store.remove(name, force))
    }

    /// OpenSSH `Host` blocks for the machines `names` (default: every
    /// machine with SSH access), like `ssh-config`.
    #[pyo3(signature = (names = None))]
    #[allow(clippy::result_large_err)] // the core's error type, returned as is
    fn ssh_config(&self, py: Python<'_>, names: Option<Vec<String>>) -> PyResult<String> {
        let store = self.store();
        let names = names.unwrap_or_default();
        py.detach(|| store.ssh_config(&names))
            .map_err(|e| error::to_py(py, e))
    }

    /// Add a machine from an archive of `Host.export_archive` (bytes), under
    /// `name` (default: its name in the archive).
    #[pyo3(signature = (data, name = None, passphrase = None))]
    #[allow(clippy::result_large_err)] // the core's error type, returned as is
    fn import_archive(
        &self,
        py: Python<'_>,
        data: Vec<u8>,
        name: Option<String>,
        passphrase: Option<String>,
    ) -> PyResult<PyHost> {
        let store = self.store();
        let opts = machine_core::host::ImportOptions { name, passphrase };
        let host = py
            .detach(|| store.import_archive(&data, &opts))
            .map_err(|e| error::to_py(py, e))?;
        Ok(PyHost::new(host))
    }

    /// Register a driver written in Python under `name` (replacing any driver of
    /// that name in this store).
    #[pyo3(signature = (name, factory, options = None))]
    fn register_driver(
        &self,
        name: &str,
        factory: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let f = crate::driver::factory(name, factory, options)?;
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drivers_mut()
            .register(f);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("Store({:?})", self.store().files().root())
    }
}

/// One row of a listing: the same fields as `ls`.
#[pyclass(frozen, name = "ListEntry", module = "docker_machine")]
#[derive(Debug)]
pub struct PyListEntry(ListEntry);

#[pymethods]
impl PyListEntry {
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }
    #[getter]
    fn driver_name(&self) -> &str {
        &self.0.driver_name
    }
    /// The state name (`Running`, `Stopped`, `Error`, `Timeout`, ...; "" when unknown).
    #[getter]
    fn state(&self) -> &'static str {
        self.0.state.as_str()
    }
    #[getter]
    fn url(&self) -> &str {
        &self.0.url
    }
    #[getter]
    fn swarm(&self) -> &str {
        &self.0.swarm
    }
    #[getter]
    fn docker_version(&self) -> &str {
        &self.0.docker_version
    }
    #[getter]
    fn error(&self) -> &str {
        &self.0.error
    }
    /// How long querying this machine took, in milliseconds.
    #[getter]
    fn response_time_ms(&self) -> u64 {
        self.0.response_time_ms
    }
    /// The fields as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", &self.0.name)?;
        d.set_item("driver_name", &self.0.driver_name)?;
        d.set_item("state", self.0.state.as_str())?;
        d.set_item("url", &self.0.url)?;
        d.set_item("swarm", &self.0.swarm)?;
        d.set_item("docker_version", &self.0.docker_version)?;
        d.set_item("error", &self.0.error)?;
        d.set_item("response_time_ms", self.0.response_time_ms)?;
        Ok(d)
    }
    fn __repr__(&self) -> String {
        format!(
            "ListEntry(name={:?}, driver_name={:?}, state={:?}, url={:?}, docker_version={:?}, error={:?})",
            self.0.name,
            self.0.driver_name,
            self.0.state.as_str(),
            self.0.url,
            self.0.docker_version,
            self.0.error
        )
    }
}
