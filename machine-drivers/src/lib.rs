//! Built-in drivers for `machine-core`.
//!
//! - [`none`]: an existing Docker daemon at a URL; nothing is created or provisioned.
//! - [`generic`]: any Linux machine reachable over SSH; Docker is installed and
//!   secured on it.
//! - [`qemu`]: a local VM under QEMU, booted from the project's own Debian image
//!   (built from Debian's packages on first use) or a downloaded one.
//!
//! [`builtin_registry`] returns a registry holding all of them; embedding
//! programs add their own drivers to it.

pub mod generic;
pub mod none;
pub mod qemu;

use machine_core::driver::DriverRegistry;
use std::sync::Arc;

/// A registry with every built-in driver.
pub fn builtin_registry() -> DriverRegistry {
    DriverRegistry::new()
        .with(Arc::new(none::NoneFactory))
        .with(Arc::new(generic::GenericFactory))
        .with(Arc::new(qemu::QemuFactory))
}

/// Serialize `own` fields after the base fields, as config.json's Driver object.
pub(crate) fn saved<T: serde::Serialize>(
    driver: &str,
    base: &machine_core::config::BaseDriver,
    own: &T,
) -> Result<serde_json::Map<String, serde_json::Value>, machine_core::driver::DriverError> {
    let bad = |source| machine_core::driver::DriverError::BadSavedState {
        driver: driver.to_string(),
        source,
    };
    let own = match serde_json::to_value(own).map_err(bad)? {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    base.merge_driver_object(own, &serde_json::Map::new())
        .map_err(bad)
}

/// Read a driver's own fields from its saved object.
pub(crate) fn load_own<T: serde::de::DeserializeOwned>(
    driver: &str,
    saved: &serde_json::Map<String, serde_json::Value>,
) -> Result<(machine_core::config::BaseDriver, T), machine_core::driver::DriverError> {
    let bad = |source| machine_core::driver::DriverError::BadSavedState {
        driver: driver.to_string(),
        source,
    };
    let base = machine_core::config::BaseDriver::from_driver_object(saved).map_err(bad)?;
    let own = serde_json::from_value(serde_json::Value::Object(saved.clone())).map_err(bad)?;
    Ok((base, own))
}
