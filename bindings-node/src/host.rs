//! `Host`: one machine of a store and its operations (core `host::Host`).

use crate::error::{as_is, invalid, promise};
use crate::store::progress_fn;
use machine_core::env::Shell;
use machine_core::host::{EnvOptions, Host};
use machine_core::swarm::{SwarmMembers, SwarmNode};
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

/// Options of `swarmJoin()`.
#[napi(object, js_name = "SwarmJoinOptions", object_to_js = false)]
pub struct JsSwarmJoinOptions {
    /// Join as a manager (default: as a worker).
    pub as_manager: Option<bool>,
    /// Called with each step of the operation.
    #[napi(ts_type = "(step: string) => void")]
    pub on_progress: Option<crate::store::ProgressFn>,
}

/// Options of `swarmLeave()`.
#[napi(object, js_name = "SwarmLeaveOptions", object_to_js = false)]
pub struct JsSwarmLeaveOptions {
    /// Let the last manager leave while workers remain (the cluster ends).
    pub force: Option<bool>,
    /// Called with each step of the operation.
    #[napi(ts_type = "(step: string) => void")]
    pub on_progress: Option<crate::store::ProgressFn>,
}

impl std::fmt::Debug for JsSwarmJoinOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmJoinOptions")
            .field("as_manager", &self.as_manager)
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

impl std::fmt::Debug for JsSwarmLeaveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmLeaveOptions")
            .field("force", &self.force)
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

/// One node of a Swarm-mode cluster, as a manager lists it.
#[napi(object, js_name = "SwarmNode")]
#[derive(Debug)]
pub struct JsSwarmNode {
    pub id: String,
    /// The node's host name (the machine's name for provisioned machines).
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    pub addr: String,
    pub leader: bool,
    /// For managers: `reachable`, `unreachable` or `unknown`; `''` for workers.
    pub reachability: String,
    pub engine_version: String,
}

impl From<SwarmNode> for JsSwarmNode {
    fn from(n: SwarmNode) -> Self {
        JsSwarmNode {
            id: n.id,
            hostname: n.hostname,
            role: n.role,
            availability: n.availability,
            state: n.state,
            addr: n.addr,
            leader: n.leader,
            reachability: n.reachability,
            engine_version: n.engine_version,
        }
    }
}

/// The machines of a store in one Swarm-mode cluster.
#[napi(object, js_name = "SwarmMembers")]
#[derive(Debug)]
pub struct JsSwarmMembers {
    /// The cluster's name: `machine://FIRST_MANAGER`.
    pub cluster: String,
    /// The manager machines, sorted.
    pub managers: Vec<String>,
    /// The worker machines, sorted.
    pub workers: Vec<String>,
}

impl From<SwarmMembers> for JsSwarmMembers {
    fn from(m: SwarmMembers) -> Self {
        JsSwarmMembers {
            cluster: m.cluster,
            managers: m.managers,
            workers: m.workers,
        }
    }
}

/// Options of `exportArchive()`.
#[napi(object, js_name = "ExportOptions")]
#[derive(Default)]
pub struct JsExportOptions {
    /// Include the CA's private key (whoever has the archive can then make certificates the store's machines trust).
    pub with_ca_key: Option<bool>,
    /// Encrypt the archive (age, scrypt) with this passphrase.
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for JsExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("with_ca_key", &self.with_ca_key)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A machine's state with the failure of its last create or provision.
#[napi(object, js_name = "MachineStatus")]
#[derive(Debug)]
pub struct JsStatus {
    pub name: String,
    /// `Running`, `Stopped`, `Error`, ...
    pub state: String,
    /// Why the last create or provision failed; `''` when it did not.
    pub error: String,
}

/// What the daemon's `GET /version` said.
#[napi(object, js_name = "DockerVersion")]
#[derive(Debug)]
pub struct JsDockerVersion {
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
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

    /// The state with the failure of the last create or provision (like `status --format json`).
    #[napi(ts_return_type = "Promise<MachineStatus>")]
    pub fn status<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, JsStatus>> {
        let host = self.host.clone();
        promise(
            env,
            async move {
                let s = host.read().await.status().await?;
                Ok(JsStatus {
                    name: s.name,
                    state: s.state.to_string(),
                    error: s.error,
                })
            },
            as_is,
        )
    }

    /// The daemon's version, asked over mutual TLS within `timeout` seconds (default 20).
    #[napi(ts_return_type = "Promise<DockerVersion>")]
    pub fn docker_version<'env>(
        &self,
        env: &'env Env,
        timeout: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, JsDockerVersion>> {
        let host = self.host.clone();
        let timeout = timeout.unwrap_or(20.0);
        promise(
            env,
            async move {
                let t = std::time::Duration::try_from_secs_f64(timeout)
                    .map_err(|e| invalid("timeout", &timeout.to_string(), e.to_string()))?;
                let v = host.read().await.docker_version(t).await?;
                Ok(JsDockerVersion {
                    version: v.version,
                    api_version: v.api_version,
                    os: v.os,
                    arch: v.arch,
                })
            },
            as_is,
        )
    }

    /// The OpenSSH `Host` block of this machine (like `ssh-config NAME`).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn ssh_config<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, String>> {
        let host = self.host.clone();
        promise(env, async move { host.read().await.ssh_config() }, as_is)
    }

    /// Write (or refresh) the docker CLI context named after the machine (in `DOCKER_CONFIG` or `~/.docker`); resolves with its name.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn docker_context<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, String>> {
        let host = self.host.clone();
        promise(
            env,
            async move { host.read().await.docker_context().await },
            as_is,
        )
    }

    /// Remove the machine's docker CLI context if this store made it; `false` when there was none.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn remove_docker_context<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let host = self.host.clone();
        promise(
            env,
            async move { host.read().await.remove_docker_context() },
            as_is,
        )
    }

    /// The machine as one archive (configuration, certificates, SSH key, pinned host key), optionally encrypted; a `Buffer`.
    #[napi(ts_return_type = "Promise<Uint8Array>")]
    pub fn export_archive<'env>(
        &self,
        env: &'env Env,
        options: Option<JsExportOptions>,
    ) -> napi::Result<PromiseRaw<'env, napi::bindgen_prelude::Buffer>> {
        let host = self.host.clone();
        let o = options.unwrap_or_default();
        let opts = machine_core::host::ExportOptions {
            with_ca_key: o.with_ca_key.unwrap_or(false),
            passphrase: o.passphrase,
        };
        promise(
            env,
            async move { host.read().await.export_archive(&opts) },
            |_, bytes| Ok(napi::bindgen_prelude::Buffer::from(bytes)),
        )
    }

    /// Start the machine (when its driver can); resolves once its Docker daemon answers.
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

    /// Restart the machine (when its driver can); resolves once its Docker daemon answers.
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

    /// Initialize a new Swarm-mode cluster with this machine as its first manager.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn swarm_init<'env>(
        &self,
        env: &'env Env,
        options: Option<JsProgressOptions>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        let progress = progress_fn(options.and_then(|o| o.on_progress));
        promise(
            env,
            async move { host.write().await.swarm_init(&*progress).await },
            as_is,
        )
    }

    /// Join the cluster that machine `manager` (of the same store) manages.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn swarm_join<'env>(
        &self,
        env: &'env Env,
        manager: String,
        options: Option<JsSwarmJoinOptions>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        let (as_manager, on_progress) = options
            .map(|o| (o.as_manager.unwrap_or(false), o.on_progress))
            .unwrap_or_default();
        let progress = progress_fn(on_progress);
        promise(
            env,
            async move {
                host.write()
                    .await
                    .swarm_join(&manager, as_manager, &*progress)
                    .await
            },
            as_is,
        )
    }

    /// Leave the cluster (a manager is demoted first; the last one only with `force`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn swarm_leave<'env>(
        &self,
        env: &'env Env,
        options: Option<JsSwarmLeaveOptions>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let host = self.host.clone();
        let (force, on_progress) = options
            .map(|o| (o.force.unwrap_or(false), o.on_progress))
            .unwrap_or_default();
        let progress = progress_fn(on_progress);
        promise(
            env,
            async move { host.write().await.swarm_leave(force, &*progress).await },
            as_is,
        )
    }

    /// The nodes of this machine's cluster, as a manager of it lists them.
    #[napi(ts_return_type = "Promise<SwarmNode[]>")]
    pub fn swarm_nodes<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Vec<JsSwarmNode>>> {
        let host = self.host.clone();
        promise(
            env,
            async move {
                let nodes = host.read().await.swarm_nodes().await?;
                Ok(nodes.into_iter().map(JsSwarmNode::from).collect())
            },
            as_is,
        )
    }

    /// The manager machine of this machine's cluster that answers (this one if it is a manager).
    #[napi(ts_return_type = "Promise<Host>")]
    pub fn swarm_manager<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, JsHost>> {
        let host = self.host.clone();
        promise(
            env,
            async move { Ok(JsHost::new(host.read().await.swarm_manager().await?)) },
            as_is,
        )
    }

    /// The machines of this machine's cluster, by the store's configurations (no network).
    #[napi(ts_return_type = "Promise<SwarmMembers>")]
    pub fn swarm_members<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, JsSwarmMembers>> {
        let host = self.host.clone();
        promise(
            env,
            async move { Ok(JsSwarmMembers::from(host.read().await.swarm_members()?)) },
            as_is,
        )
    }
}
