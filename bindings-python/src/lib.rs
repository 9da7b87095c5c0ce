//! Python bindings of `machine-core`: the extension module `docker_machine._native`,
//! re-exported by the `docker_machine` package.
//!
//! One file per core module, each function an argument conversion around one core
//! call:
//! - `store.rs`: `Store` (the core `host::Store`) and `ListEntry`.
//! - `host.rs`: `Host` (the core `host::Host`) and `SshOutput`.
//! - `driver.rs`: drivers written in Python, adapted to the core `Driver` and
//!   `DriverFactory` traits, with `DriverOption`, `DriverContext` and `SshTarget`.
//! - `error.rs`: the exception hierarchy and the mapping of core errors onto it.
//!
//! Blocking calls release the GIL and run on one shared tokio runtime.

use machine_core::host::HostError;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod driver;
mod error;
mod host;
mod store;

/// The runtime every blocking call runs on, started on first use, and again
/// in a child process after `fork()`: a forked child has none of the
/// parent's runtime threads, so the parent's runtime is left alone (never
/// dropped there) and a new one is started.
fn runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(rt.clone());
        }
    }
    if let Some(inherited) = slot.take() {
        std::mem::forget(inherited);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("docker-machine")
        .build()
        .map(Arc::new)
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start the runtime: {e}"))
        })?;
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// Run `fut` to completion with the GIL released and map its error to an
/// exception. Signals are checked every 200 ms, so Ctrl-C interrupts a long
/// operation (the operation is dropped where it stands, as when the CLI is
/// interrupted). Called from inside another operation (a progress callback,
/// a driver written in Python), the nested operation runs on a thread of its
/// own, as a runtime cannot be entered twice on one thread.
fn wait<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, HostError>> + Send,
    T: Send,
{
    let rt = runtime()?;
    let run = move || {
        rt.block_on(async {
            tokio::select! {
                r = fut => Ok(r),
                e = interrupted() => Err(e),
            }
        })
    };
    let nested = tokio::runtime::Handle::try_current().is_ok();
    let out = py.detach(|| {
        if nested {
            std::thread::scope(|s| {
                s.spawn(run).join().unwrap_or_else(|_| {
                    Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "the nested operation panicked",
                    ))
                })
            })
        } else {
            run()
        }
    });
    match out {
        Ok(r) => r.map_err(|e| error::to_py(py, e)),
        Err(signal) => Err(signal),
    }
}

/// Resolves when a signal handler raised (KeyboardInterrupt on the main thread).
async fn interrupted() -> PyErr {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            return e;
        }
    }
}

/// A Python callable told about each step of a long operation; exceptions it
/// raises are reported as unraisable (the operation goes on).
#[derive(Debug)]
struct Progress(Option<Py<PyAny>>);

impl Progress {
    fn call(&self, step: &str) {
        if let Some(cb) = &self.0 {
            Python::attach(|py| {
                if let Err(e) = cb.call1(py, (step,)) {
                    e.write_unraisable(py, Some(cb.bind(py)));
                }
            });
        }
    }
}

/// Parse JSON text into Python objects (dicts keep the text's key order).
fn json_loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

/// Docker Machine as a library: stores of machines, their drivers and operations.
#[pymodule]
mod _native {
    #[pymodule_export]
    use crate::driver::{
        engine_options, swarm_options, PyDriverContext, PyDriverOption, PySshTarget,
    };
    #[pymodule_export]
    use crate::error::error_classes;
    #[pymodule_export]
    use crate::host::{PyHost, PySshOutput, PySwarmMembers, PySwarmNode};
    #[pymodule_export]
    use crate::store::{PyListEntry, PyStore};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        crate::error::register(m)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
