//! The `none` driver: a Docker daemon that already exists at a URL.

use async_trait::async_trait;
use machine_core::config::BaseDriver;
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, OptionKind,
    SshTarget,
};
use machine_core::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Driver name.
pub const NAME: &str = "none";

/// Builds [`NoneDriver`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoneFactory;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Own {
    #[serde(rename = "URL", default)]
    url: String,
}

/// An existing daemon; create and remove only record and forget it.
#[derive(Debug, Clone)]
pub struct NoneDriver {
    base: BaseDriver,
    own: Own,
}

/// Check a daemon URL (`tcp://host:port`) and return its host.
pub fn url_host(url: &str) -> Result<String, DriverError> {
    let bad = |reason: &str| DriverError::InvalidOption {
        driver: NAME.into(),
        flag: "url".into(),
        value: url.into(),
        reason: reason.into(),
    };
    let rest = url
        .strip_prefix("tcp://")
        .ok_or_else(|| bad("expected tcp://HOST:PORT"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h
            .split_once("]:")
            .ok_or_else(|| bad("expected tcp://[IPV6]:PORT"))?;
        (h, p)
    } else {
        hostport
            .rsplit_once(':')
            .ok_or_else(|| bad("the port is missing"))?
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("the port is not a number between 1 and 65535"))?;
    Ok(host.to_string())
}

impl DriverFactory for NoneFactory {
    fn name(&self) -> &str {
        NAME
    }

    fn options(&self) -> Vec<DriverOption> {
        vec![DriverOption::new(
            "url",
            OptionKind::String,
            "URL of host when no driver is selected",
        )
        .required()]
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        options: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let url = options.string("url");
        let host = url_host(&url)?;
        let mut base = ctx.base();
        base.ip_address = host;
        Ok(Box::new(NoneDriver {
            base,
            own: Own { url },
        }))
    }

    fn load_driver(
        &self,
        _ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, own) = machine_core::driver::load_driver_object(NAME, saved)?;
        Ok(Box::new(NoneDriver { base, own }))
    }
}

#[async_trait]
impl Driver for NoneDriver {
    fn driver_name(&self) -> &str {
        NAME
    }
    async fn create(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    async fn remove(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    async fn state(&self) -> Result<State, DriverError> {
        Ok(State::Running)
    }
    async fn ip(&self) -> Result<String, DriverError> {
        if self.base.ip_address.is_empty() {
            url_host(&self.own.url)
        } else {
            Ok(self.base.ip_address.clone())
        }
    }
    fn ssh_target(&self) -> Option<SshTarget> {
        None
    }
    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        machine_core::driver::save_driver_object(NAME, &self.base, &self.own)
    }
    async fn url(&self) -> Result<String, DriverError> {
        Ok(self.own.url.clone())
    }
    fn needs_provisioning(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation_names_the_flag() {
        assert_eq!(url_host("tcp://10.0.0.5:2376").expect("ok"), "10.0.0.5");
        assert_eq!(url_host("tcp://[::1]:2376").expect("ok"), "::1");
        for bad in [
            "http://x:1",
            "tcp://x",
            "tcp://:2376",
            "tcp://x:0",
            "tcp://x:abc",
        ] {
            let e = url_host(bad).expect_err(bad);
            assert!(e.to_string().contains("url"), "{e}");
        }
    }
}
