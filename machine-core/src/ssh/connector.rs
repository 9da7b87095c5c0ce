//! The port through which a [`crate::host::Host`] reaches a machine's shell.
//!
//! A [`Connector`] turns a target and a host-key policy into a [`Session`]:
//! something that runs commands, writes and fetches files and reports the
//! host key it was shown. [`RusshConnector`] (the default) opens a real SSH
//! connection; tests give the store a scripted connector so create, its
//! retries and its failure recording can be exercised without a host.

use super::{CommandRunner, HostKeyCheck, SshClient, SshConfig, SshError};
use crate::driver::SshTarget;
use async_trait::async_trait;
use std::path::Path;

/// One open connection to a machine.
#[async_trait]
pub trait Session: CommandRunner {
    /// The host key the server presented (OpenSSH public key text); empty
    /// when the transport has none to show.
    fn host_key(&self) -> &str;
    /// Copy the remote file `path` to `local`; returns its permission bits.
    async fn download(&self, path: &str, local: &Path) -> Result<u32, SshError>;
    /// End the connection.
    async fn close(self: Box<Self>);
}

/// Opens sessions to machines.
#[async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// Connect to `target`, checking its host key against `check`.
    async fn connect(
        &self,
        target: &SshTarget,
        check: &HostKeyCheck,
        config: &SshConfig,
    ) -> Result<Box<dyn Session>, SshError>;
}

/// The SSH client of this crate (russh), the default connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct RusshConnector;

#[async_trait]
impl Connector for RusshConnector {
    async fn connect(
        &self,
        target: &SshTarget,
        check: &HostKeyCheck,
        config: &SshConfig,
    ) -> Result<Box<dyn Session>, SshError> {
        Ok(Box::new(SshClient::connect(target, check, config).await?))
    }
}

#[async_trait]
impl Session for SshClient {
    fn host_key(&self) -> &str {
        SshClient::host_key(self)
    }
    async fn download(&self, path: &str, local: &Path) -> Result<u32, SshError> {
        SshClient::download(self, path, local).await
    }
    async fn close(self: Box<Self>) {
        SshClient::close(*self).await
    }
}
