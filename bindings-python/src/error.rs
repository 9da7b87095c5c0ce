//! The exception hierarchy and the mapping of core errors onto it.
//!
//! Every error of a machine operation is a `MachineError` whose class is chosen
//! by the core's stable error code (`HostError::code`). Each carries `code`
//! and `machine` (the machine's name, or None), its message is the whole chain
//! of causes, and `__cause__` is set to the Python exception underneath when
//! there is one: the exception a Python driver raised, or an `OSError` for a
//! failed file or socket operation.

use machine_core::host::{error_chain, HostError};
use machine_core::ErrorCode;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// One exception class: its code, name, parent in the hierarchy, the builtin
/// exception it also derives from, and its docstring.
struct Class {
    code: Option<ErrorCode>,
    name: &'static str,
    parent: Option<&'static str>,
    builtin: Option<&'static str>,
    doc: &'static str,
}

/// Parents come before their children.
const CLASSES: &[Class] = &[
    Class { code: None, name: "MachineError", parent: None, builtin: Some("Exception"), doc: "Base class of every error raised by docker_machine. `code` is the stable error code, `machine` the machine's name (or None)." },
    Class { code: Some(ErrorCode::Store), name: "StoreError", parent: Some("MachineError"), builtin: None, doc: "The store failed: a configuration that cannot be read or written." },
    Class { code: Some(ErrorCode::NotFound), name: "NotFoundError", parent: Some("StoreError"), builtin: Some("LookupError"), doc: "No machine of that name is in the store." },
    Class { code: Some(ErrorCode::AlreadyExists), name: "AlreadyExistsError", parent: Some("StoreError"), builtin: None, doc: "A machine of that name is already in the store." },
    Class { code: Some(ErrorCode::InvalidName), name: "InvalidNameError", parent: Some("StoreError"), builtin: Some("ValueError"), doc: "The machine name is not allowed." },
    Class { code: Some(ErrorCode::Driver), name: "DriverError", parent: Some("MachineError"), builtin: None, doc: "The machine's driver failed." },
    Class { code: Some(ErrorCode::NotSupported), name: "NotSupportedError", parent: Some("DriverError"), builtin: Some("NotImplementedError"), doc: "The driver does not support this operation." },
    Class { code: Some(ErrorCode::UnknownDriver), name: "UnknownDriverError", parent: Some("DriverError"), builtin: Some("LookupError"), doc: "No driver of that name is registered with the store." },
    Class { code: Some(ErrorCode::PreCreateCheck), name: "PreCreateCheckError", parent: Some("DriverError"), builtin: None, doc: "The driver's pre-create check refused to create the machine." },
    Class { code: Some(ErrorCode::InvalidOption), name: "InvalidOptionError", parent: Some("MachineError"), builtin: Some("ValueError"), doc: "A driver or engine option is unknown, missing or has a bad value; the message names the flag." },
    Class { code: Some(ErrorCode::Cert), name: "CertError", parent: Some("MachineError"), builtin: None, doc: "TLS certificates could not be made, loaded or checked." },
    Class { code: Some(ErrorCode::CertCheck), name: "CertCheckError", parent: Some("CertError"), builtin: None, doc: "The machine's server certificate is not valid for its address any more (see Host.regenerate_certs)." },
    Class { code: Some(ErrorCode::Ssh), name: "SshError", parent: Some("MachineError"), builtin: None, doc: "SSH to the machine failed, or its driver gives no SSH access." },
    Class { code: Some(ErrorCode::HostKeyMismatch), name: "HostKeyMismatchError", parent: Some("SshError"), builtin: None, doc: "The machine presented an SSH host key other than the one pinned at create time." },
    Class { code: Some(ErrorCode::Provision), name: "ProvisionError", parent: Some("MachineError"), builtin: None, doc: "Provisioning Docker on the machine failed." },
    Class { code: Some(ErrorCode::Engine), name: "EngineError", parent: Some("MachineError"), builtin: None, doc: "The Docker daemon did not answer over TLS; the message quotes its log when it could be read." },
    Class { code: Some(ErrorCode::NotRunning), name: "NotRunningError", parent: Some("MachineError"), builtin: None, doc: "The machine must be running for this operation." },
    Class { code: Some(ErrorCode::Timeout), name: "MachineTimeoutError", parent: Some("MachineError"), builtin: Some("TimeoutError"), doc: "A waiting step ran out of time." },
    Class { code: Some(ErrorCode::Swarm), name: "SwarmError", parent: Some("MachineError"), builtin: None, doc: "A Swarm-mode operation failed: the manager to join through is missing or no manager, the machine is in no swarm or in another one, or the Docker API call failed." },
    Class { code: Some(ErrorCode::Io), name: "IoError", parent: Some("MachineError"), builtin: Some("OSError"), doc: "A local file operation failed." },
];

/// The created classes, in the order of [`CLASSES`].
static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Vec<Py<PyType>>> {
    TYPES.get_or_try_init(py, || {
        let builtins = py.import("builtins")?;
        let type_ = py.get_type::<PyType>();
        let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
        for c in CLASSES {
            let mut bases: Vec<Bound<'_, PyAny>> = Vec::new();
            if let Some(parent) = c.parent {
                let i = CLASSES
                    .iter()
                    .position(|p| p.name == parent)
                    .expect("parent listed first");
                bases.push(made[i].bind(py).clone().into_any());
            }
            if let Some(b) = c.builtin {
                bases.push(builtins.getattr(b)?);
            }
            let ns = PyDict::new(py);
            ns.set_item("__module__", "docker_machine")?;
            ns.set_item("__doc__", c.doc)?;
            ns.set_item("code", c.code.map_or("", ErrorCode::as_str))?;
            ns.set_item("machine", py.None())?;
            let cls = type_.call1((c.name, PyTuple::new(py, bases)?, ns))?;
            made.push(cls.cast_into::<PyType>()?.unbind());
        }
        Ok(made)
    })
}

/// Add the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (c, t) in CLASSES.iter().zip(types(py)?) {
        m.add(c.name, t.bind(py))?;
    }
    Ok(())
}

/// Every error code of the core, and the name of the exception class it is
/// raised as (a code without a class of its own would be raised as
/// `MachineError`; the test suite checks that none is).
#[pyfunction]
pub(crate) fn error_classes() -> Vec<(&'static str, &'static str)> {
    ErrorCode::ALL
        .iter()
        .map(|code| {
            let class = CLASSES
                .iter()
                .find(|c| c.code == Some(*code))
                .map_or("MachineError", |c| c.name);
            (code.as_str(), class)
        })
        .collect()
}

/// The exception for a core error.
pub(crate) fn to_py(py: Python<'_>, e: HostError) -> PyErr {
    let code = e.code();
    let i = CLASSES
        .iter()
        .position(|c| c.code == Some(code))
        .unwrap_or(0);
    let ty = match types(py) {
        Ok(t) => t[i].bind(py).clone(),
        Err(err) => return err,
    };
    let err = PyErr::from_type(ty, error_chain(&e));
    let value = err.value(py);
    let attrs = value
        .setattr("code", code.as_str())
        .and_then(|()| value.setattr("machine", e.machine()));
    if let Err(attr_err) = attrs {
        return attr_err;
    }
    if let Some(cause) = cause(py, &e) {
        err.set_cause(py, Some(cause));
    }
    err
}

/// The first Python exception in the chain of causes, or an `OSError` for the
/// first I/O error.
fn cause(py: Python<'_>, e: &(dyn std::error::Error + 'static)) -> Option<PyErr> {
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(py_err) = c.downcast_ref::<PyErr>() {
            return Some(py_err.clone_ref(py));
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(match io.raw_os_error() {
                Some(errno) => PyOSError::new_err((errno, io.to_string())),
                None => PyOSError::new_err(io.to_string()),
            });
        }
        cur = c.source();
    }
    None
}

/// An `InvalidOptionError` for `flag` (conversions that fail before the core is called).
pub(crate) fn invalid_option(py: Python<'_>, flag: &str, value: &str, reason: &str) -> PyErr {
    to_py(
        py,
        HostError::InvalidOption {
            flag: flag.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        },
    )
}
