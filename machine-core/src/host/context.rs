//! A machine as a context of the docker CLI (see [`crate::docker_context`]).

// Errors carry the machine name (see `host/mod.rs`).
#![allow(clippy::result_large_err)]

use super::{Host, HostError};
use crate::docker_context::{self, ContextError, ContextTls};

impl Host {
    fn context_err(&self, source: ContextError) -> HostError {
        HostError::DockerContext {
            name: self.name().to_string(),
            source,
        }
    }

    /// Write (or refresh) the docker CLI context named after the machine, in
    /// `DOCKER_CONFIG` or `~/.docker`, with the machine's URL and client
    /// certificates (after the local certificate check): `docker --context
    /// NAME ...` then reaches the machine's daemon. A context of that name
    /// not made for this store is left alone (code `AlreadyExists`).
    /// Returns the context's name.
    pub async fn docker_context(&self) -> Result<String, HostError> {
        let url = self.url().await?;
        self.check_certs_for(&url)?;
        let config = docker_context::config_dir().map_err(|e| self.context_err(e))?;
        let d = self.cert_path();
        let read = |f: &str| {
            let p = d.join(f);
            std::fs::read(&p).map_err(|e| self.io(&p, e))
        };
        let (ca, cert, key) = (read("ca.pem")?, read("cert.pem")?, read("key.pem")?);
        let tls = ContextTls {
            url: &url,
            ca_pem: &ca,
            cert_pem: &cert,
            key_pem: &key,
        };
        docker_context::write(&config, self.name(), self.store.files.root(), &tls)
            .map_err(|e| self.context_err(e))?;
        Ok(self.name().to_string())
    }

    /// Remove the machine's docker CLI context if this store made it;
    /// `false` when there was none.
    pub fn remove_docker_context(&self) -> Result<bool, HostError> {
        let config = docker_context::config_dir().map_err(|e| self.context_err(e))?;
        docker_context::remove(&config, self.name(), self.store.files.root())
            .map_err(|e| self.context_err(e))
    }

    /// Rewrite the machine's context when this store made one (after its
    /// certificates changed); a failure is logged, not returned.
    pub(crate) async fn refresh_docker_context(&self) {
        let Ok(config) = docker_context::config_dir() else {
            return;
        };
        if !matches!(
            docker_context::owned(&config, self.name(), self.store.files.root()),
            Ok(true)
        ) {
            return;
        }
        if let Err(e) = self.docker_context().await {
            tracing::warn!(
                "cannot refresh the docker context of machine {}: {}",
                self.name(),
                super::error_chain(&e)
            );
        }
    }
}
