//! The `inventory` driver: a fleet's machines listed in a JSON file.
//!
//! ```json
//! { "web1": { "address": "192.0.2.10", "user": "root", "port": 22, "key": "/home/me/.ssh/fleet" } }
//! ```
//!
//! `create NAME` looks NAME up in the file given by `--inventory-file` and
//! provisions that machine like the generic driver would. The machine's power
//! is not ours, so start, stop and kill keep their "not supported" defaults.

use async_trait::async_trait;
use machine_core::config::BaseDriver;
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, OptionKind,
    SshTarget,
};
use machine_core::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Driver name.
pub const NAME: &str = "inventory";

/// One machine of the inventory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub address: String,
    #[serde(default = "root")]
    pub user: String,
    #[serde(default = "ssh_port")]
    pub port: u16,
    pub key: Option<PathBuf>,
}

fn root() -> String {
    "root".into()
}
fn ssh_port() -> u16 {
    22
}

/// Builds [`InventoryDriver`]s.
#[derive(Debug, Default)]
pub struct InventoryFactory;

/// A machine taken from the inventory.
#[derive(Debug)]
pub struct InventoryDriver {
    base: BaseDriver,
    inventory_file: String,
}

#[derive(Serialize, Deserialize)]
struct Own {
    #[serde(rename = "InventoryFile", default)]
    inventory_file: String,
}

fn invalid(flag: &str, value: &str, reason: String) -> DriverError {
    DriverError::InvalidOption {
        driver: NAME.into(),
        flag: flag.into(),
        value: value.into(),
        reason,
    }
}

impl DriverFactory for InventoryFactory {
    fn name(&self) -> &str {
        NAME
    }

    fn options(&self) -> Vec<DriverOption> {
        vec![DriverOption::new(
            "inventory-file",
            OptionKind::String,
            "JSON file mapping machine names to SSH addresses",
        )
        .env("MACHINE_INVENTORY_FILE")
        .required()]
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        options: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let file = options.string("inventory-file");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| invalid("inventory-file", &file, e.to_string()))?;
        let inv: BTreeMap<String, Entry> = serde_json::from_str(&text)
            .map_err(|e| invalid("inventory-file", &file, e.to_string()))?;
        let entry = inv.get(&ctx.machine_name).ok_or_else(|| {
            invalid(
                "inventory-file",
                &file,
                format!("no machine named {} in the inventory", ctx.machine_name),
            )
        })?;
        let mut base = ctx.base();
        base.ip_address = entry.address.clone();
        base.ssh_user = entry.user.clone();
        base.ssh_port = entry.port;
        base.ssh_key_path = entry
            .key
            .as_ref()
            .map(|k| k.display().to_string())
            .unwrap_or_default();
        Ok(Box::new(InventoryDriver {
            base,
            inventory_file: file,
        }))
    }

    fn load_driver(
        &self,
        _ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, own): (BaseDriver, Own) = machine_core::driver::load_driver_object(NAME, saved)?;
        Ok(Box::new(InventoryDriver {
            base,
            inventory_file: own.inventory_file,
        }))
    }
}

#[async_trait]
impl Driver for InventoryDriver {
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
        let own = Own {
            inventory_file: self.inventory_file.clone(),
        };
        machine_core::driver::save_driver_object(NAME, &self.base, &own)
    }
}
