//! Built-in drivers for `machine-core`.
//!
//! - [`none`]: an existing Docker daemon at a URL; nothing is created or provisioned.
//! - [`generic`]: any Linux machine reachable over SSH; Docker is installed and
//!   secured on it.
//! - [`amazonec2`]: an EC2 instance (or any EC2-compatible API), provisioned
//!   over SSH.
//! - [`qemu`]: a local VM under QEMU, booted from the project's own Debian image
//!   (built from Debian's packages on first use) or a downloaded one.
//!
//! - [`plugin`]: drivers served by `docker-machine-driver-NAME` executables
//!   (the original's plugin protocol), and our drivers served to the original.
//!
//! [`builtin_registry`] returns a registry holding all of them, with plugins
//! on `PATH` for every other name; embedding programs add their own drivers
//! to it.

pub mod amazonec2;
pub mod generic;
pub mod none;
pub mod plugin;
pub mod qemu;
#[cfg(test)]
mod test_util;

use machine_core::driver::DriverRegistry;
use std::sync::Arc;

/// A registry with every built-in driver (the default driver among them);
/// any other name is looked for as a plugin executable on `PATH`
/// (`docker-machine-driver-NAME`), and the names in `MACHINE_PLUGIN_DRIVERS`
/// are served by their plugin even when built in.
pub fn builtin_registry() -> DriverRegistry {
    DriverRegistry::new()
        .with_source(Arc::new(plugin::PluginSource::from_env()))
        .with(Arc::new(none::NoneFactory))
        .with(Arc::new(generic::GenericFactory))
        .with(Arc::new(qemu::QemuFactory))
        .with(Arc::new(amazonec2::Ec2Factory))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_driver_is_built_in() {
        let reg = super::builtin_registry();
        assert!(reg.get(machine_core::driver::DEFAULT_DRIVER).is_ok());
    }
}
