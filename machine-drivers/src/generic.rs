//! The `generic` driver: an existing Linux machine reachable over SSH.
//!
//! Nothing is created; `create` copies the given SSH key into the machine's
//! directory (as `id_rsa`, like the original) and provisioning does the rest.
//! Start, stop and kill are refused: the machine's power is not ours to manage.
//! Restart reboots the machine over SSH and waits until SSH answers again.

use async_trait::async_trait;
use machine_core::config::{BaseDriver, DEFAULT_ENGINE_PORT};
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, OptionKind,
    SshTarget,
};
use machine_core::ssh::{known_hosts, CommandRunner, HostKeyCheck, SshClient, SshConfig};
use machine_core::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Driver name.
pub const NAME: &str = "generic";

/// Builds [`GenericDriver`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenericFactory;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Own {
    #[serde(rename = "EnginePort", default = "default_engine_port")]
    engine_port: u16,
    #[serde(rename = "SSHKey", default)]
    ssh_key: String,
}

fn default_engine_port() -> u16 {
    DEFAULT_ENGINE_PORT
}

/// A machine that exists already.
#[derive(Debug, Clone)]
pub struct GenericDriver {
    base: BaseDriver,
    own: Own,
    machine_dir: PathBuf,
}

impl DriverFactory for GenericFactory {
    fn name(&self) -> &str {
        NAME
    }

    fn options(&self) -> Vec<DriverOption> {
        vec![
            DriverOption::new(
                "generic-ip-address",
                OptionKind::String,
                "IP Address of machine",
            )
            .env("GENERIC_IP_ADDRESS")
            .required(),
            DriverOption::new("generic-ssh-user", OptionKind::String, "SSH user")
                .env("GENERIC_SSH_USER")
                .default_value("root"),
            DriverOption::new(
                "generic-ssh-key",
                OptionKind::String,
                "SSH private key path (if not provided, default SSH key will be used)",
            )
            .env("GENERIC_SSH_KEY"),
            DriverOption::new("generic-ssh-port", OptionKind::Int, "SSH port")
                .env("GENERIC_SSH_PORT")
                .default_value("22"),
            DriverOption::new("generic-engine-port", OptionKind::Int, "Docker engine port")
                .env("GENERIC_ENGINE_PORT")
                .default_value("2376"),
        ]
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        o: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let invalid = |flag: &str, value: &str, e: machine_core::ssh::SshError| {
            let reason = match e {
                machine_core::ssh::SshError::BadTarget { reason, .. } => reason,
                other => other.to_string(),
            };
            DriverError::InvalidOption {
                driver: NAME.into(),
                flag: flag.into(),
                value: value.into(),
                reason,
            }
        };
        let ip = o.string("generic-ip-address").trim().to_string();
        machine_core::ssh::check_host(&ip).map_err(|e| invalid("generic-ip-address", &ip, e))?;
        let user = o.string("generic-ssh-user");
        machine_core::ssh::check_user(&user).map_err(|e| invalid("generic-ssh-user", &user, e))?;
        let mut base = ctx.base();
        base.ip_address = ip;
        base.ssh_user = user;
        base.ssh_port = o.port("generic-ssh-port")?.unwrap_or(22);
        let ssh_key = o.string("generic-ssh-key");
        if !ssh_key.is_empty() {
            base.ssh_key_path = ctx
                .machine_dir
                .join("id_rsa")
                .to_string_lossy()
                .into_owned();
        }
        Ok(Box::new(GenericDriver {
            base,
            own: Own {
                engine_port: o
                    .port("generic-engine-port")?
                    .unwrap_or(DEFAULT_ENGINE_PORT),
                ssh_key,
            },
            machine_dir: ctx.machine_dir.clone(),
        }))
    }

    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, own) = machine_core::driver::load_driver_object(NAME, saved)?;
        Ok(Box::new(GenericDriver {
            base,
            own,
            machine_dir: ctx.machine_dir.clone(),
        }))
    }
}

fn failed(operation: &str, e: impl std::error::Error + Send + Sync + 'static) -> DriverError {
    DriverError::Source {
        driver: NAME.into(),
        operation: operation.into(),
        source: Box::new(e),
    }
}

fn copy_private(from: &Path, to: &Path, mode: u32) -> Result<(), DriverError> {
    let bytes = std::fs::read(from).map_err(|e| DriverError::InvalidOption {
        driver: NAME.into(),
        flag: "generic-ssh-key".into(),
        value: from.display().to_string(),
        reason: e.to_string(),
    })?;
    machine_core::fsutil::write_atomic(to, &bytes, mode).map_err(|e| failed("copy the SSH key", e))
}

impl GenericDriver {
    async fn connect(&self, cfg: &SshConfig) -> Result<SshClient, DriverError> {
        let target = self.ssh_target().ok_or_else(|| DriverError::Failed {
            driver: NAME.into(),
            operation: "connect".into(),
            message: "no SSH target".into(),
        })?;
        let pin = known_hosts::read_machine(&self.machine_dir)
            .map_err(|e| failed("read the pinned host key", e))?;
        let check = pin
            .map(|(_, key)| HostKeyCheck::Pinned(key))
            .unwrap_or(HostKeyCheck::TrustOnFirstUse);
        SshClient::connect(&target, &check, cfg)
            .await
            .map_err(|e| failed("connect over SSH", e))
    }
}

#[async_trait]
impl Driver for GenericDriver {
    fn driver_name(&self) -> &str {
        NAME
    }

    async fn create(&mut self) -> Result<(), DriverError> {
        if !self.own.ssh_key.is_empty() {
            let src = PathBuf::from(&self.own.ssh_key);
            let dst = self.machine_dir.join("id_rsa");
            copy_private(&src, &dst, 0o600)?;
            let mut pub_src = src.into_os_string();
            pub_src.push(".pub");
            let pub_src = PathBuf::from(pub_src);
            if pub_src.exists() {
                copy_private(&pub_src, &self.machine_dir.join("id_rsa.pub"), 0o644)?;
            }
        }
        Ok(())
    }

    async fn remove(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Running when the SSH port accepts a TCP connection within 5 s, else Stopped.
    async fn state(&self) -> Result<State, DriverError> {
        let t = self.base.ssh_target();
        Ok(machine_core::driver::tcp_probe_state(&t.host, t.port, Duration::from_secs(5)).await)
    }

    async fn ip(&self) -> Result<String, DriverError> {
        Ok(self.base.ip_address.clone())
    }

    fn ssh_target(&self) -> Option<SshTarget> {
        Some(self.base.ssh_target())
    }

    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        machine_core::driver::save_driver_object(NAME, &self.base, &self.own)
    }

    fn engine_port(&self) -> u16 {
        self.own.engine_port
    }

    async fn pre_create_check(&self) -> Result<(), DriverError> {
        if !self.own.ssh_key.is_empty() && !Path::new(&self.own.ssh_key).is_file() {
            return Err(DriverError::PreCreateCheck {
                driver: NAME.into(),
                reason: format!(
                    "SSH key {} (generic-ssh-key) does not exist",
                    self.own.ssh_key
                ),
            });
        }
        Ok(())
    }

    /// Reboot over SSH, wait for SSH to go away and come back (10 minutes at most).
    async fn restart(&mut self) -> Result<(), DriverError> {
        let client = self.connect(&SshConfig::default()).await?;
        let cmd = if self.base.ssh_user == "root" {
            "(sleep 1; reboot || shutdown -r now) >/dev/null 2>&1 &"
        } else {
            "(sleep 1; sudo -n reboot || sudo -n shutdown -r now) >/dev/null 2>&1 &"
        };
        client.run(cmd).await.map_err(|e| failed("reboot", e))?;
        client.close().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        // Wait until the port stops answering (bounded), then until SSH works again.
        let gone_by = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < gone_by && self.state().await? == State::Running {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let cfg = SshConfig {
            attempts: 1,
            connect_timeout: Duration::from_secs(10),
            ..SshConfig::default()
        };
        loop {
            if let Ok(c) = self.connect(&cfg).await {
                c.close().await;
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::Failed {
                    driver: NAME.into(),
                    operation: "restart".into(),
                    message: format!("{} did not come back within 600 s", self.base.ip_address),
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path) -> DriverContext {
        crate::test_util::ctx(dir, "m1")
    }

    fn opts(given: &[(&str, &str)]) -> Result<DriverOptions, DriverError> {
        crate::test_util::opts(&GenericFactory, given)
    }

    #[tokio::test]
    async fn saved_state_has_base_fields_then_own_and_loads_back() {
        let d = tempfile::tempdir().expect("tmp");
        let o = opts(&[
            ("generic-ip-address", "10.0.0.9"),
            ("generic-ssh-port", "2222"),
        ])
        .expect("opts");
        let drv = GenericFactory
            .new_driver(&ctx(d.path()), &o)
            .expect("driver");
        let saved = drv.saved_state().expect("saved");
        let keys: Vec<&str> = saved.keys().map(String::as_str).collect();
        assert_eq!(keys[..9], machine_core::config::BASE_DRIVER_FIELDS);
        assert_eq!(keys[9..], ["EnginePort", "SSHKey"]);
        assert_eq!(saved["SSHPort"], 2222);
        assert_eq!(saved["SSHUser"], "root");
        let back = GenericFactory
            .load_driver(&ctx(d.path()), &saved)
            .expect("load");
        assert_eq!(back.saved_state().expect("saved"), saved);
        assert_eq!(back.url().await.expect("url"), "tcp://10.0.0.9:2376");
        assert!(matches!(
            back.ssh_target(),
            Some(SshTarget { port: 2222, .. })
        ));
    }

    #[tokio::test]
    async fn lifecycle_refused_and_flags_checked() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(opts(&[])
            .expect_err("required")
            .to_string()
            .contains("generic-ip-address"));
        let e = opts(&[("generic-ip-address", "h"), ("generic-ssh-port", "x")]).expect_err("port");
        assert!(e.to_string().contains("generic-ssh-port"));
        let o = opts(&[
            ("generic-ip-address", "h"),
            ("generic-ssh-key", "/nonexistent/key"),
        ])
        .expect("opts");
        let mut drv = GenericFactory
            .new_driver(&ctx(d.path()), &o)
            .expect("driver");
        let e = drv.pre_create_check().await.expect_err("missing key");
        assert!(e.to_string().contains("/nonexistent/key"), "{e}");
        for e in [drv.start().await, drv.stop().await, drv.kill().await] {
            let e = e.expect_err("unsupported");
            assert!(matches!(e, DriverError::NotSupported { .. }), "{e}");
        }
    }

    #[tokio::test]
    async fn create_copies_key_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(d.path().join("machines/m1")).expect("mkdir");
        let key = d.path().join("mykey");
        std::fs::write(&key, "KEY").expect("key");
        std::fs::write(d.path().join("mykey.pub"), "PUB").expect("pub");
        let o = opts(&[
            ("generic-ip-address", "h"),
            ("generic-ssh-key", key.to_str().expect("utf8")),
        ])
        .expect("opts");
        let mut drv = GenericFactory
            .new_driver(&ctx(d.path()), &o)
            .expect("driver");
        drv.create().await.expect("create");
        let copied = d.path().join("machines/m1/id_rsa");
        assert_eq!(std::fs::read_to_string(&copied).expect("read"), "KEY");
        assert_eq!(
            std::fs::metadata(&copied)
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(drv.ssh_target().and_then(|t| t.key_path), Some(copied));
    }
}
