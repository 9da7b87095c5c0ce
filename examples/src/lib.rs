//! Examples of embedding `machine-core`.
//!
//! [`inventory`] is a driver written outside `machine-drivers`: machines come
//! from an inventory file that maps machine names to SSH addresses. The
//! embedding program registers it next to the built-in drivers; see
//! `src/bin/inventory_driver.rs` for a program using it end to end.

pub mod inventory;
