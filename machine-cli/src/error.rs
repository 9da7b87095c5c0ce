//! Error messages and exit statuses, with the hints the original printed and
//! the ones this CLI adds (certificate and host key problems).

use machine_core::host::{error_chain, HostError};
use machine_core::ErrorCode;

/// Exit status for every failure but a failed pre-create check.
pub const EXIT_ERROR: i32 = 1;
/// Exit status when a driver's pre-create check refuses (as the original).
pub const EXIT_PRE_CREATE: i32 = 3;

/// The context of loading a machine; a missing machine is then reported alone.
pub const LOAD_CONTEXT: &str = "Error loading machine";

/// A failure of a command: what to print on stderr and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    /// A plain error with exit status 1.
    pub fn msg(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: EXIT_ERROR,
        }
    }

    /// A machine error with `context` (e.g. `Error creating machine`) and
    /// hints on what to do next; `prog` is the name the CLI was invoked as.
    pub fn host(prog: &str, context: &str, e: &HostError) -> Self {
        let code = if e.code() == ErrorCode::PreCreateCheck {
            EXIT_PRE_CREATE
        } else {
            EXIT_ERROR
        };
        let name = e.machine().unwrap_or("NAME");
        let message = match e.code() {
            ErrorCode::NotFound => {
                let sentence = format!(
                    "Docker machine \"{name}\" does not exist. Use \"{prog} ls\" to list machines. Use \"{prog} create\" to add a new one."
                );
                if context == LOAD_CONTEXT {
                    sentence
                } else {
                    format!("{context}: {sentence}")
                }
            }
            // the original's words, which scripts match
            ErrorCode::AlreadyExists => format!("Docker machine \"{name}\" already exists"),
            ErrorCode::NotRunning => format!("{context}: Host is not running"),
            ErrorCode::CertCheck => format!(
                "{context}: {}\n\
                 You can regenerate the certificates with '{prog} regenerate-certs {name}'.\n\
                 Be advised that this restarts the Docker daemon of the machine, which stops its running containers.",
                error_chain(e)
            ),
            ErrorCode::HostKeyMismatch => format!(
                "{context}: {}\n\
                 The machine presented a different SSH host key than the one pinned when it was created.\n\
                 If it was reinstalled or its address now belongs to another host on purpose, re-pin the key with\n\
                 '{prog} ssh --repin {name} true' (or '{prog} provision --repin {name}').",
                error_chain(e)
            ),
            _ => format!("{context}: {}", error_chain(e)),
        };
        CliError { message, code }
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::msg(s)
    }
}

impl From<&str> for CliError {
    fn from(s: &str) -> Self {
        CliError::msg(s)
    }
}

/// The result type of commands.
pub type CliResult<T = ()> = Result<T, CliError>;
