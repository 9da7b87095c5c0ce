//! `Host` (the core `host::Host`) and `SshOutput`.

use crate::{error, json_loads, wait, Progress};
use machine_core::env::Shell;
use machine_core::host::{EnvOptions, Host, HostError};
use machine_core::ssh::Output;
use machine_core::store::StoreError;
use machine_core::swarm::{SwarmMembers, SwarmNode};
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

    /// The state with the failure of the last create or provision, as a
    /// dict: `{"name", "state", "error"}` (like `status --format json`).
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = wait(py, async { self.host.read().await.status().await })?;
        let d = PyDict::new(py);
        d.set_item("name", st.name)?;
        d.set_item("state", st.state.as_str())?;
        d.set_item("error", st.error)?;
        Ok(d)
    }
    /// The daemon's version over mutual TLS, as a dict:
    /// `{"version", "api_version", "os", "arch"}` (like `version NAME --format json`).
    #[pyo3(signature = (timeout = 20.0))]
    fn docker_version<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyDict>> {
        let timeout = crate::store::seconds(timeout)?;
        let v = wait(py, async {
            self.host.read().await.docker_version(timeout).await
        })?;
        let d = PyDict::new(py);
        d.set_item("version", v.version)?;
        d.set_item("api_version", v.api_version)?;
        d.set_item("os", v.os)?;
        d.set_item("arch", v.arch)?;
        Ok(d)
    }
    /// The OpenSSH `Host` block of this machine (like `ssh-config NAME`).
    fn ssh_config(&self, py: Python<'_>) -> PyResult<String> {
        wait(py, async { self.host.read().await.ssh_config() })
    }
    /// Write (or refresh) the docker CLI context named after the machine,
    /// in `DOCKER_CONFIG` or `~/.docker`; returns its name.
    fn docker_context(&self, py: Python<'_>) -> PyResult<String> {
        wait(py, async { self.host.read().await.docker_context().await })
    }
    /// Remove the machine's docker CLI context if this store made it;
    /// False when there was none.
    fn remove_docker_context(&self, py: Python<'_>) -> PyResult<bool> {
        wait(py, async { self.host.read().await.remove_docker_context() })
    }
    /// The machine as one archive (bytes), encrypted with `passphrase` when
    /// given; the CA's private key only with `with_ca_key`.
    #[pyo3(signature = (with_ca_key = false, passphrase = None))]
    fn export_archive<'py>(
        &self,
        py: Python<'py>,
        with_ca_key: bool,
        passphrase: Option<String>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let opts = machine_core::host::ExportOptions {
            with_ca_key,
            passphrase,
        };
        let bytes = wait(py, async { self.host.read().await.export_archive(&opts) })?;
        Ok(PyBytes::new(py, &bytes))
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

    /// Initialize a new Swarm-mode cluster with this machine as its manager.
    #[pyo3(signature = (progress = None))]
    fn swarm_init(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<()> {
        let progress = Progress(progress);
        wait(py, async {
            self.host
                .write()
                .await
                .swarm_init(&|s: &str| progress.call(s))
                .await
        })
    }
    /// Join the cluster that machine `manager` (of the same store) manages.
    #[pyo3(signature = (manager, as_manager = false, progress = None))]
    fn swarm_join(
        &self,
        py: Python<'_>,
        manager: &str,
        as_manager: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let progress = Progress(progress);
        wait(py, async {
            self.host
                .write()
                .await
                .swarm_join(manager, as_manager, &|s: &str| progress.call(s))
                .await
        })
    }
    /// Leave the cluster (the last manager only with `force`).
    #[pyo3(signature = (force = false, progress = None))]
    fn swarm_leave(
        &self,
        py: Python<'_>,
        force: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let progress = Progress(progress);
        wait(py, async {
            self.host
                .write()
                .await
                .swarm_leave(force, &|s: &str| progress.call(s))
                .await
        })
    }
    /// The nodes of this machine's cluster, as a manager lists them.
    fn swarm_nodes(&self, py: Python<'_>) -> PyResult<Vec<PySwarmNode>> {
        let nodes = wait(py, async { self.host.read().await.swarm_nodes().await })?;
        Ok(nodes.into_iter().map(PySwarmNode).collect())
    }
    /// The manager machine of this machine's cluster that answers.
    fn swarm_manager(&self, py: Python<'_>) -> PyResult<PyHost> {
        wait(py, async { self.host.read().await.swarm_manager().await }).map(PyHost::new)
    }
    /// The machines of this machine's cluster, by the store's configurations.
    fn swarm_members(&self, py: Python<'_>) -> PyResult<PySwarmMembers> {
        wait(py, async { self.host.read().await.swarm_members() }).map(PySwarmMembers)
    }

    fn __repr__(&self) -> String {
        format!(
            "Host(name={:?}, driver_name={:?})",
            self.name, self.driver_name
        )
    }
}

/// One node of a Swarm-mode cluster, as a manager lists it.
#[pyclass(frozen, name = "SwarmNode", module = "docker_machine")]
#[derive(Debug)]
pub struct PySwarmNode(SwarmNode);

#[pymethods]
impl PySwarmNode {
    #[getter]
    fn id(&self) -> &str {
        &self.0.id
    }
    /// The node's host name (the machine's name for provisioned machines).
    #[getter]
    fn hostname(&self) -> &str {
        &self.0.hostname
    }
    /// `manager` or `worker`.
    #[getter]
    fn role(&self) -> &str {
        &self.0.role
    }
    /// `active`, `pause` or `drain`.
    #[getter]
    fn availability(&self) -> &str {
        &self.0.availability
    }
    /// `ready`, `down`, `disconnected` or `unknown`.
    #[getter]
    fn state(&self) -> &str {
        &self.0.state
    }
    #[getter]
    fn addr(&self) -> &str {
        &self.0.addr
    }
    #[getter]
    fn leader(&self) -> bool {
        self.0.leader
    }
    /// For managers: `reachable`, `unreachable` or `unknown`; "" for workers.
    #[getter]
    fn reachability(&self) -> &str {
        &self.0.reachability
    }
    #[getter]
    fn engine_version(&self) -> &str {
        &self.0.engine_version
    }
    fn __repr__(&self) -> String {
        format!(
            "SwarmNode(hostname={:?}, role={:?}, state={:?}, leader={})",
            self.0.hostname,
            self.0.role,
            self.0.state,
            if self.0.leader { "True" } else { "False" }
        )
    }
}

/// The machines of a store in one Swarm-mode cluster.
#[pyclass(frozen, name = "SwarmMembers", module = "docker_machine")]
#[derive(Debug)]
pub struct PySwarmMembers(SwarmMembers);

#[pymethods]
impl PySwarmMembers {
    /// The cluster's name: `machine://FIRST_MANAGER`.
    #[getter]
    fn cluster(&self) -> &str {
        &self.0.cluster
    }
    /// The manager machines, sorted.
    #[getter]
    fn managers(&self) -> Vec<String> {
        self.0.managers.clone()
    }
    /// The worker machines, sorted.
    #[getter]
    fn workers(&self) -> Vec<String> {
        self.0.workers.clone()
    }
    fn __repr__(&self) -> String {
        format!(
            "SwarmMembers(cluster={:?}, managers={:?}, workers={:?})",
            self.0.cluster, self.0.managers, self.0.workers
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
