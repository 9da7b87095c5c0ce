//! Node.js bindings of `machine-core`, published on npm as `docker-machine-rs`.
//!
//! One file per core module, with the same names as the Python bindings:
//! - [`store`]: `Store` (create, get, list, remove, names, registerDriver);
//! - [`host`]: `Host` and its operations;
//! - [`driver`]: drivers written in JavaScript;
//! - [`error`]: core errors as JavaScript `Error`s with a stable `code`.
//!
//! Each exported method converts its arguments, starts one core call on the
//! async runtime and returns a Promise, so the event loop never waits on I/O.

// The bindings pass the core's `HostError` along as it is.
#![allow(clippy::result_large_err)]

mod driver;
mod error;
mod host;
mod store;
