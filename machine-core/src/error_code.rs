//! The stable error codes every front end reports: the CLI decides its exit
//! status and messages by them, Python picks an exception class by them and
//! Node sets `error.code` to their text.

use std::fmt;

/// What kind of failure an operation had. The text of each ([`ErrorCode::as_str`])
/// is part of the public contract of the bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No machine of that name is in the store.
    NotFound,
    /// A machine of that name is already in the store.
    AlreadyExists,
    /// The machine name is not allowed.
    InvalidName,
    /// Any other failure of the store.
    Store,
    /// The driver does not support the operation.
    NotSupported,
    /// No driver of that name is registered.
    UnknownDriver,
    /// A driver or engine option is unknown, missing or invalid.
    InvalidOption,
    /// The driver's pre-create check refused.
    PreCreateCheck,
    /// Any other failure of the driver.
    Driver,
    /// Certificates could not be made or loaded.
    Cert,
    /// The machine's certificates do not fit its address or CA.
    CertCheck,
    /// The machine presented another SSH host key than the pinned one.
    HostKeyMismatch,
    /// Any other SSH failure.
    Ssh,
    /// Provisioning failed.
    Provision,
    /// The Docker daemon did not answer as it should.
    Engine,
    /// The machine must be running.
    NotRunning,
    /// A wait ran out of time.
    Timeout,
    /// A Swarm-mode operation failed (joining, leaving, listing nodes...).
    Swarm,
    /// Local file I/O failed.
    Io,
}

impl ErrorCode {
    /// Every code, in a fixed order.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::InvalidName,
        ErrorCode::Store,
        ErrorCode::NotSupported,
        ErrorCode::UnknownDriver,
        ErrorCode::InvalidOption,
        ErrorCode::PreCreateCheck,
        ErrorCode::Driver,
        ErrorCode::Cert,
        ErrorCode::CertCheck,
        ErrorCode::HostKeyMismatch,
        ErrorCode::Ssh,
        ErrorCode::Provision,
        ErrorCode::Engine,
        ErrorCode::NotRunning,
        ErrorCode::Timeout,
        ErrorCode::Swarm,
        ErrorCode::Io,
    ];

    /// The code's text, as the bindings report it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NotFound",
            ErrorCode::AlreadyExists => "AlreadyExists",
            ErrorCode::InvalidName => "InvalidName",
            ErrorCode::Store => "Store",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::UnknownDriver => "UnknownDriver",
            ErrorCode::InvalidOption => "InvalidOption",
            ErrorCode::PreCreateCheck => "PreCreateCheck",
            ErrorCode::Driver => "Driver",
            ErrorCode::Cert => "Cert",
            ErrorCode::CertCheck => "CertCheck",
            ErrorCode::HostKeyMismatch => "HostKeyMismatch",
            ErrorCode::Ssh => "Ssh",
            ErrorCode::Provision => "Provision",
            ErrorCode::Engine => "Engine",
            ErrorCode::NotRunning => "NotRunning",
            ErrorCode::Timeout => "Timeout",
            ErrorCode::Swarm => "Swarm",
            ErrorCode::Io => "Io",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_once_with_distinct_texts() {
        let mut texts: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let n = texts.len();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), n);
        for c in ErrorCode::ALL {
            assert_eq!(format!("{c:?}"), c.as_str());
        }
    }
}
