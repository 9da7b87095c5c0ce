//! How machine operations fail: [`HostError`] with its stable code, and the
//! display of error chains.

use crate::cert::CertError;
use crate::driver::DriverError;
use crate::engine::EngineError;
use crate::error_code::ErrorCode;
use crate::provision::ProvisionError;
use crate::ssh::SshError;
use crate::state::State;
use crate::store::StoreError;
use crate::swarm::SwarmError;
use std::path::PathBuf;

/// Errors of host operations. Each names the machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The store failed (the error names the machine or path).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The driver failed.
    #[error("machine {name}")]
    Driver {
        name: String,
        #[source]
        source: DriverError,
    },
    /// Certificates could not be made, loaded or checked.
    #[error("TLS certificates of machine {name}")]
    Cert {
        name: String,
        #[source]
        source: Box<CertError>,
    },
    /// The machine's server certificate does not fit its address any more.
    #[error("the server certificate of machine {name} is not valid for {address}")]
    CertCheck {
        name: String,
        address: String,
        #[source]
        source: Box<CertError>,
    },
    /// SSH failed.
    #[error("SSH to machine {name}")]
    Ssh {
        name: String,
        #[source]
        source: SshError,
    },
    /// Provisioning failed.
    #[error("provisioning machine {name}")]
    Provision {
        name: String,
        #[source]
        source: ProvisionError,
    },
    /// The Docker daemon did not answer over TLS.
    #[error("the Docker daemon of machine {name} is not answering{}", log_suffix(.log_tail))]
    Engine {
        name: String,
        log_tail: String,
        #[source]
        source: EngineError,
    },
    /// The driver gives no SSH access.
    #[error("machine {name} (driver {driver}) has no SSH access")]
    NoSsh { name: String, driver: String },
    /// The machine must be running for this.
    #[error("machine {name} is not running (state: {state})")]
    NotRunning { name: String, state: State },
    /// A waiting step ran out of time.
    #[error("machine {name}: {what} did not happen within {seconds} s")]
    Timeout {
        name: String,
        what: String,
        seconds: u64,
    },
    /// A bad engine or create option.
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidOption {
        flag: String,
        value: String,
        reason: String,
    },
    /// A Swarm-mode operation failed.
    #[error("swarm of machine {name}")]
    Swarm {
        name: String,
        #[source]
        source: SwarmError,
    },
    /// The docker CLI's context of the machine could not be written or removed.
    #[error("docker context of machine {name}")]
    DockerContext {
        name: String,
        #[source]
        source: crate::docker_context::ContextError,
    },
    /// An export archive could not be written, decrypted or read.
    #[error("archive of machine {name}")]
    Archive {
        name: String,
        #[source]
        source: crate::archive::ArchiveError,
    },
    /// Local file I/O.
    #[error("machine {name}: file {path}")]
    Io {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HostError {
    /// A stable, language-neutral code for this error (the bindings expose it as
    /// the exception class in Python and the `code` property in Node).
    pub fn code(&self) -> ErrorCode {
        use crate::driver::DriverError as D;
        match self {
            HostError::Store(StoreError::NotFound { .. }) => ErrorCode::NotFound,
            HostError::Store(StoreError::AlreadyExists { .. }) => ErrorCode::AlreadyExists,
            HostError::Store(StoreError::InvalidName { .. }) => ErrorCode::InvalidName,
            HostError::Store(_) => ErrorCode::Store,
            HostError::Driver {
                source: D::NotSupported { .. },
                ..
            } => ErrorCode::NotSupported,
            HostError::Driver {
                source: D::UnknownDriver { .. } | D::PluginNotFound { .. },
                ..
            } => ErrorCode::UnknownDriver,
            HostError::Driver {
                source: D::MissingOption { .. } | D::UnknownOption { .. } | D::InvalidOption { .. },
                ..
            } => ErrorCode::InvalidOption,
            HostError::Driver {
                source: D::PreCreateCheck { .. },
                ..
            } => ErrorCode::PreCreateCheck,
            HostError::Driver { .. } => ErrorCode::Driver,
            HostError::Cert { .. } => ErrorCode::Cert,
            HostError::CertCheck { .. } => ErrorCode::CertCheck,
            HostError::Ssh {
                source: SshError::HostKeyMismatch { .. },
                ..
            } => ErrorCode::HostKeyMismatch,
            HostError::Ssh { .. } | HostError::NoSsh { .. } => ErrorCode::Ssh,
            HostError::Provision { .. } => ErrorCode::Provision,
            HostError::Engine { .. } => ErrorCode::Engine,
            HostError::NotRunning { .. } => ErrorCode::NotRunning,
            HostError::Timeout { .. } => ErrorCode::Timeout,
            HostError::InvalidOption { .. } => ErrorCode::InvalidOption,
            HostError::Swarm { .. } => ErrorCode::Swarm,
            HostError::DockerContext {
                source: crate::docker_context::ContextError::NotOurs { .. },
                ..
            } => ErrorCode::AlreadyExists,
            HostError::DockerContext {
                source: crate::docker_context::ContextError::InvalidName { .. },
                ..
            } => ErrorCode::InvalidName,
            HostError::DockerContext { .. } | HostError::Io { .. } => ErrorCode::Io,
            HostError::Archive {
                source: crate::archive::ArchiveError::Write(_),
                ..
            } => ErrorCode::Io,
            HostError::Archive { .. } => ErrorCode::InvalidOption,
        }
    }

    /// The machine the error is about, when there is one.
    pub fn machine(&self) -> Option<&str> {
        let name = match self {
            HostError::Store(
                StoreError::NotFound { name }
                | StoreError::AlreadyExists { name }
                | StoreError::InvalidName { name }
                | StoreError::Corrupt { name, .. }
                | StoreError::FromTheFuture { name, .. },
            ) => name,
            HostError::Driver { name, .. }
            | HostError::Cert { name, .. }
            | HostError::CertCheck { name, .. }
            | HostError::Ssh { name, .. }
            | HostError::Provision { name, .. }
            | HostError::Engine { name, .. }
            | HostError::NoSsh { name, .. }
            | HostError::NotRunning { name, .. }
            | HostError::Timeout { name, .. }
            | HostError::Swarm { name, .. }
            | HostError::DockerContext { name, .. }
            | HostError::Archive { name, .. }
            | HostError::Io { name, .. } => name,
            _ => return None,
        };
        Some(name.as_str()).filter(|n| !n.is_empty())
    }
}

fn log_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; daemon log:\n{}", tail.trim_end())
    }
}

impl From<crate::config::EngineValueError> for HostError {
    fn from(e: crate::config::EngineValueError) -> Self {
        HostError::InvalidOption {
            flag: e.flag,
            value: e.value,
            reason: e.reason,
        }
    }
}

/// An error with its sources, joined by `: `.
///
/// Errors often quote what a machine said (a step's stderr, a daemon's log
/// tail): control characters other than line breaks and tabs are shown as
/// `?`, so a remote escape sequence never reaches a terminal raw.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    printable(&s)
}

/// `text` with control characters other than `\n` and `\t` replaced by `?`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}
