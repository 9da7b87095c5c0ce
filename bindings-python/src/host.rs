//! `Host` (the core `host::Host`) and `SshOutput`.

use crate::{error, json_loads, wait, Progress};
use machine_core::env::Shell;
use machine_core::host::{EnvOptions, Host, HostError};
use machine_core::ssh::Output;
use machine_core::store::StoreError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::RwLock;

/// A named machine: its driver plus engine, swarm and TLS options.
#[pyclass(frozen, name = "Host", module = "docker_machine")]
#[derive(Debug)]
pub struct PyHost {
    name: String,
    driver_name: String,
    /// Operations that change the machine (start, provision, ...) take it
    /// exclusively; the others share it.
    host: Arc<RwLock<Host>>,
}

impl PyHost {
    pub(crate) fn new(host: Host) -> Self {
        PyHost {
            name: host.name().to_string(),
            driver_name: host.driver_name().to_string(),
            host: Arc::new(RwLock::new(host)),
        }
    }
}

#[pymethods]
impl PyHost {
    /// The machine's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }
    /// The driver's name.
    #[getter]
    fn driver_name(&self) -> &str {
        &self.driver_name
    }

    /// The state: the driver's, or `Error` when the last create or provision failed.
    fn state(&self, py: Python<'_>) -> PyResult<&'static str> {
        wait(py, async {
            self.host.read().await.state().await.map(|s| s.as_str())
        })
    }
    /// The machine's IP address or host name.
    fn ip(&self, py: Python<'_>) -> PyResult<String> {
        wait(py, async { self.host.read().await.ip().await })
    }
    /// The Docker daemon's URL.
    fn url(&self, py: Python<'_>) -> PyResult<String> {
        wait(py, async { self.host.read().await.url().await })
    }

    /// The environment for `docker` as shell text, like `env`.
    #[pyo3(signature = (shell = "bash", unset = false, no_proxy = false))]
    fn env(&self, py: Python<'_>, shell: &str, unset: bool, no_proxy: bool) -> PyResult<String> {
        let shell: Shell = shell.parse().map_err(|e: machine_core::env::EnvError| {
            error::invalid_option(py, "shell", shell, &e.to_string())
        })?;
        let opts = EnvOptions {
            shell: Some(shell),
            unset,
            no_proxy,
            no_proxy_lower: std::env::var("no_proxy").ok(),
            no_proxy_upper: std::env::var("NO_PROXY").ok(),
            hint_command: None,
        };
        wait(py, async { self.host.read().await.env(&opts).await })
    }
    /// The `DOCKER_*` variables for this machine, as a dict.
    fn env_vars<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let env = wait(py, async { self.host.read().await.env_vars().await })?;
        let d = PyDict::new(py);
        for (k, v) in env.vars {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    /// The `docker` client arguments for this machine, one per item and
    /// unquoted: `subprocess.run(["docker", *m.config(), "ps"])`.
    fn config(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        wait(py, async { self.host.read().await.config().await })
    }
    /// The saved configuration (config.json) as a dict, like `inspect`.
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = wait(py, async {
            let h = self.host.read().await;
            h.inspect().to_json().map_err(|source| {
                HostError::Store(StoreError::Encode {
                    name: h.name().to_string(),
                    source,
                })
            })
        })?;
        json_loads(py, &String::from_utf8_lossy(&json))
    }

    /// Start the machine (driver-dependent).
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        wait(py, async { self.host.write().await.start().await })
    }
    /// Stop the machine (driver-dependent).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        wait(py, async { self.host.write().await.stop().await })
    }
    /// Restart the machine (driver-dependent).
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        wait(py, async { self.host.write().await.restart().await })
    }
    /// Kill the machine (driver-dependent).
    fn kill(&self, py: Python<'_>) -> PyResult<()> {
        wait(py, async { self.host.write().await.kill().await })
    }

    /// Provision again: install Docker if missing, rewrite its configuration
    /// with a fresh server certificate and restart it.
    #[pyo3(signature = (progress = None))]
    fn provision(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<()> {
        let progress = Progress(progress);
        wait(py, async {
            self.host
                .write()
                .await
                .provision(&|s: &str| progress.call(s))
                .await
        })
    }
    /// Make a new server certificate and restart the daemon with it; with
    /// `client_certs`, make the CA and client certificate anew first.
    #[pyo3(signature = (client_certs = false, progress = None))]
    fn regenerate_certs(
        &self,
        py: Python<'_>,
        client_certs: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let progress = Progress(progress);
        wait(py, async {
            self.host
                .write()
                .await
                .regenerate_certs(client_certs, &|s: &str| progress.call(s))
                .await
        })
    }
    /// Upgrade Docker to the latest version of its install method.
    #[pyo3(signature = (progress = None))]
    fn upgrade(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<()> {
        let progress = Progress(progress);
        wait(py, async {
            self.host
                .write()
                .await
                .upgrade(&|s: &str| progress.call(s))
                .await
        })
    }

    /// Run a command over SSH.
    fn ssh(&self, py: Python<'_>, command: &str) -> PyResult<PySshOutput> {
        wait(py, async { self.host.read().await.ssh(command).await }).map(PySshOutput)
    }
    /// Copy a local file to the machine (mode taken from the local file).
    fn copy_to(&self, py: Python<'_>, local: PathBuf, remote: &str) -> PyResult<()> {
        wait(py, async {
            self.host.read().await.copy_to(&local, remote).await
        })
    }
    /// Copy a file from the machine to `local`.
    fn copy_from(&self, py: Python<'_>, remote: &str, local: PathBuf) -> PyResult<()> {
        wait(py, async {
            self.host.read().await.copy_from(remote, &local).await
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Host(name={:?}, driver_name={:?})",
            self.name, self.driver_name
        )
    }
}

/// What a command run over SSH printed, and its exit status.
#[pyclass(frozen, name = "SshOutput", module = "docker_machine")]
#[derive(Debug)]
pub struct PySshOutput(Output);

#[pymethods]
impl PySshOutput {
    /// Standard output as text (invalid UTF-8 replaced).
    #[getter]
    fn stdout(&self) -> String {
        self.0.stdout_text()
    }
    /// Standard error as text (invalid UTF-8 replaced).
    #[getter]
    fn stderr(&self) -> String {
        self.0.stderr_text()
    }
    /// Standard output as bytes.
    #[getter]
    fn stdout_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.stdout)
    }
    /// Standard error as bytes.
    #[getter]
    fn stderr_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.stderr)
    }
    #[getter]
    fn exit_status(&self) -> u32 {
        self.0.exit_status
    }
    fn __repr__(&self) -> String {
        format!(
            "SshOutput(exit_status={}, stdout={:?}, stderr={:?})",
            self.0.exit_status,
            self.0.stdout_text(),
            self.0.stderr_text()
        )
    }
}
