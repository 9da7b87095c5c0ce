//! # machine-core
//!
//! Docker Machine as a library. A [`host::Host`] is a named machine: a driver that
//! owns the underlying VM, server or daemon, plus the engine, swarm and TLS options
//! that provisioning applies to it. The [`store::FileStore`] keeps hosts on disk in
//! the layout and `config.json` format of the original docker-machine, so existing
//! `~/.docker/machine` directories work unchanged.
//!
//! Modules, one concern each:
//! - [`state`]: machine states as docker-machine spells them.
//! - [`config`]: the `config.json` data model (version 3) and its migrations.
//! - [`store`]: the file store with atomic writes and locks, and [`Store`], the
//!   entry point that creates, lists, loads and removes machines.
//! - [`archive`]: the export archive of a machine (tar, optionally age-encrypted).
//! - [`cert`]: CA, client and server certificates, local verification, TLS configs.
//! - [`env`](mod@env): rendering of the `DOCKER_*` environment for every supported shell.
//! - [`engine`]: readiness and version checks against the Docker daemon over mutual TLS.
//! - [`docker_api`]: the Docker Engine API (the `bollard` client) over our mutual TLS.
//! - [`docker_context`]: machines as contexts of the docker CLI.
//! - [`swarm`]: Swarm-mode clusters across machines (the `--swarm*` create flags).
//! - [`driver`]: the small `Driver` trait, declared create options and the registry.
//! - [`provision`]: OS detection and the provisioning steps for each distribution.
//! - [`ssh`]: the SSH client (pinned host keys, one connection per operation) and
//!   the command runner trait the provisioning steps execute through.
//! - [`error_code`]: the stable error codes every front end reports.
//! - [`host`]: a machine and its operations, their options and errors.
//! - [`progress`]: step reports of long operations, also from inside drivers.

pub mod archive;
pub mod cert;
pub mod config;
pub mod docker_api;
pub mod docker_context;
pub mod driver;
pub mod engine;
pub mod env;
pub mod error_code;
pub mod foreign;
pub mod fsutil;
pub mod host;
pub mod progress;
pub mod provision;
pub mod ssh;
pub mod state;
pub mod store;
pub mod swarm;

/// The Docker Engine API client the swarm operations use ([`Host::docker`]).
pub use bollard;

pub use error_code::ErrorCode;
pub use host::{Host, Store};
pub use state::State;
