//! Fixtures shared by the drivers' unit tests.

use machine_core::driver::{DriverContext, DriverError, DriverFactory, DriverOptions, OptionValue};
use std::path::Path;

/// The context of machine `name` in a store at `dir`.
pub(crate) fn ctx(dir: &Path, name: &str) -> DriverContext {
    DriverContext {
        machine_name: name.into(),
        store_root: dir.to_path_buf(),
        machine_dir: dir.join("machines").join(name),
    }
}

/// `factory`'s options resolved from `given` flag values (no environment).
pub(crate) fn opts(
    factory: &dyn DriverFactory,
    given: &[(&str, &str)],
) -> Result<DriverOptions, DriverError> {
    DriverOptions::resolve(
        factory.name(),
        &factory.options(),
        given
            .iter()
            .map(|(k, v)| (k.to_string(), OptionValue::String(v.to_string()))),
        &|_| None,
    )
}
