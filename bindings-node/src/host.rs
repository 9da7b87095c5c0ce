//! `Host`: one machine of a store and its operations (core `host::Host`).

use crate::error::{as_is, invalid, promise};
use crate::store::progress_fn;
use machine_core::env::Shell;
use machine_core::host::{EnvOptions, Host};
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::RwLock;

/// How `env()` renders the environment.
#[napi(object, js_name = "EnvOptions")]
#[derive(Debug, Default)]
pub struct JsEnvOptions {
    /// `bash` (default), `sh`, `zsh`, `fish`, `powershell`, `cmd`, `tcsh`, `emacs`, `json` or `nu`.
    pub shell: Option<String>,
    /// Render the lines that undo the settings instead.
    pub unset: Option<bool>,
    /// Add the machine's address to `NO_PROXY`/`no_proxy` (current values read from `process.env`).
    pub no_proxy: Option<bool>,
}

/// Options of the operations that report progress.
#[napi(object, js_name = "ProgressOptions", object_to_js = false)]
pub struct JsProgressOptions {
    /// Called with each step of the operation.
    #[napi(ts_type = "(step: string) => void")]
    pub on_progress: Option<crate::store::ProgressFn>,
}

/// Options of `regenerateCerts()`.
#[napi(object, js_name = "RegenerateCertsOptions", object_to_js = false)]
pub struct JsRegenerateCertsOptions {
    /// Make the CA and client certificate anew too (every machine of the store must then be regenerated).
    pub client_certs: Option<bool>,
    /// Called with each step of the operation.
    #[napi(ts_type = "(step: string) => void")]
    pub on_progress: Option<crate::store::ProgressFn>,
}

impl std::fmt::Debug for JsProgressOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressOptions")
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

impl std::fmt::Debug for JsRegenerateCertsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegenerateCertsOptions")
            .field("client_certs", &self.client_certs)
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

/// What a command run over SSH printed and its exit status.
#[napi(object, js_name = "SshOutput")]
#[derive(Debug)]
pub struct JsSshOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_status: u32,
}

/// A machine: its driver plus the engine and TLS settings it was provisioned with.
///
/// Get one from `store.create()`, `store.get()`; every I/O method returns a Promise.
#[napi(js_name = "Host")]
#[derive(Debug)]
pub struct JsHost {
    name: String,
    driver_name: String,
    host: Arc<RwLock<Host>>,
}

impl JsHost {
    pub(crate) fn new(host: Host) -> Self {
        JsHost {
            name: host.name().to_string(),
            driver_name: host.driver_name().to_string(),
            host: Arc::new(RwLock::new(host)),
        }
    }
}

#[napi]
impl JsHost {
    /// The machine's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The name of the machine's driver.
    #[napi(getter)]
    pub fn driver_name(&self) -> String {
        self.driver_name.clone()
    }

    /// The state as `ls` shows it: `Running`, `Stopped`, `Error`, ...
    #[napi(ts_return_type = "Promise<string>")]
    pub fn state<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, String>> {
        let host = self.host.clone();
        promise(
            env,
            async move { Ok(host.read().await.state().await?.to_string()) },
            as_is,
        )
    }

    /// The machine's IP address or host name.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn ip<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, String>> {
        let host = self.host.clone();
        promise(env, async move { host.read().await.ip().await }, as_is)
    }

    /// The Docker daemon's URL (`tcp://IP:2376`).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn url<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, String>> {
        let host = self.host.clone();
        promise(env, async move { host.read().await.url().await }, as_is)
    }

    /// The `docker` client environment as shell text, like `docker-machine env`.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn env<'env>(
        &self,
        env: &'env Env,
        options: Option<JsEnvOptions>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let host = self.host.clone();
        let o = options.unwrap_or_default();
        let var = |k: &str| std::env::var(k).ok();
        let (lower, upper) = (var("no_proxy"), var("NO_PROXY"));
        promise(
            env,
            async move {
                let shell = match o.shell.as_deref() {
                    None => None,
                    Some(s) => Some(
                        s.parse::<Shell>()
                            .map_err(|e| invalid("shell", s, e.to_string()))?,
                    ),
                };
                let opts = EnvOptions {
                    shell,
                    unset: o.unset.unwrap_or(false),
                    no_proxy: o.no_proxy.unwrap_or(false),
                    no_proxy_lower: lower,
                    no_proxy_upper: upper,
                    hint_command: None,
                };
                host.read().await.env(&opts).await
            },
            as_is,
        )
    }

    /// The `DOCKER_*` variables to set, ready for `child_process` `env`.
    #[napi(ts_return_type = "Promise<Record<string, string>>")]
    pub fn env_vars<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, serde_json::Value>> {
        let host = self.host.clone();
        promise(
            env,
            async move {
                let vars = host.read().await.env_vars().await?.vars;
                Ok(serde_json::Value::Object(
                    vars.into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect(),
                ))
            },
            as_is,
        )
    }

    /// The `docker` client arguments for this machine, one per item and
    /// unquoted: `execFile('docker', [...await m.config(), 'ps'])`.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn config<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let host = self.host.clone();
        promise(env, async move { host.read().await.config().await }, as_is)
    }

    /// The machine's saved configuration (its `config.json`), like `docker-machine inspect`.
    #[napi(ts_return_type = "Promise<Record<string, any>>")]
    pub fn inspect<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, serde_json::Value>> {
        let host = self.host.clone();
        promise(
            env,
            async move {
                let h = host.read().await;
                let json = h
                    .inspect()
                    .to_json()
                    .map_err(|e| invalid("config", h.name(), e.to_string()))?;
                serde_json::from_slice(&json)
                    .map_err(|e| invalid("config", h.name(), e.to_string()))
            },
            as_is,
        )
    }

    /// Start the machine (when its driver can).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn start<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        promise(env, async move { host.write().await.start().await }, as_is)
    }

    /// Stop the machine gracefully (when its driver can).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        promise(env, async move { host.write().await.stop().await }, as_is)
    }

    /// Restart the machine (when its driver can).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn restart<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        promise(
            env,
            async move { host.write().await.restart().await },
            as_is,
        )
    }

    /// Stop the machine at once (when its driver can).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn kill<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        promise(env, async move { host.write().await.kill().await }, as_is)
    }

    /// Provision again: reinstall Docker if missing, rewrite its configuration and certificates, restart it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn provision<'env>(
        &self,
        env: &'env Env,
        options: Option<JsProgressOptions>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        let progress = progress_fn(options.and_then(|o| o.on_progress));
        promise(
            env,
            async move { host.write().await.provision(&*progress).await },
            as_is,
        )
    }

    /// Make a new server certificate (and with `clientCerts`, a new CA and client certificate) and restart Docker.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn regenerate_certs<'env>(
        &self,
        env: &'env Env,
        options: Option<JsRegenerateCertsOptions>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        let (client_certs, on_progress) = options
            .map(|o| (o.client_certs.unwrap_or(false), o.on_progress))
            .unwrap_or_default();
        let progress = progress_fn(on_progress);
        promise(
            env,
            async move {
                host.write()
                    .await
                    .regenerate_certs(client_certs, &*progress)
                    .await
            },
            as_is,
        )
    }

    /// Upgrade Docker on the machine and restart it with the machine's configuration.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn upgrade<'env>(
        &self,
        env: &'env Env,
        options: Option<JsProgressOptions>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        let progress = progress_fn(options.and_then(|o| o.on_progress));
        promise(
            env,
            async move { host.write().await.upgrade(&*progress).await },
            as_is,
        )
    }

    /// Run a command on the machine over SSH. A non-zero exit status resolves; it does not reject.
    #[napi(ts_return_type = "Promise<SshOutput>")]
    pub fn ssh<'env>(
        &self,
        env: &'env Env,
        command: String,
    ) -> napi::Result<PromiseRaw<'env, JsSshOutput>> {
        let host = self.host.clone();
        promise(
            env,
            async move {
                let out = host.read().await.ssh(&command).await?;
                Ok(JsSshOutput {
                    stdout: out.stdout_text(),
                    stderr: out.stderr_text(),
                    exit_status: out.exit_status,
                })
            },
            as_is,
        )
    }

    /// Copy a local file to the machine (keeping its mode).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn copy_to<'env>(
        &self,
        env: &'env Env,
        local: String,
        remote: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        promise(
            env,
            async move {
                host.read()
                    .await
                    .copy_to(&PathBuf::from(local), &remote)
                    .await
            },
            as_is,
        )
    }

    /// Copy a file from the machine to a local path.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn copy_from<'env>(
        &self,
        env: &'env Env,
        remote: String,
        local: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        promise(
            env,
            async move {
                host.read()
                    .await
                    .copy_from(&remote, &PathBuf::from(local))
                    .await
            },
            as_is,
        )
    }
}
