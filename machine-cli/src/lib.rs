//! The `machine` command line: argument parsing and output on top of
//! `machine-core`. Every operation is a library call; this crate only turns
//! arguments into calls and results into the bytes docker-machine printed.

/// `println!` to stdout that ends the process quietly when the reader is gone.
macro_rules! outln {
    ($($t:tt)*) => { $crate::emit(&format!("{}\n", format_args!($($t)*))) };
}

/// `print!` to stdout that ends the process quietly when the reader is gone.
macro_rules! out {
    ($($t:tt)*) => { $crate::emit(&format!($($t)*)) };
}

pub mod app;
pub mod error;
pub mod gotemplate;
pub mod progress;
pub mod tabwriter;

mod commands;
mod ls;
mod portable;
mod remote;

use clap::error::ErrorKind;
use error::{CliError, CliResult};
use machine_core::host::HostError;
use machine_core::{Host, Store};
use std::io::Write;
use std::path::PathBuf;

/// The name of the implicit machine used when a command gets no name.
pub const DEFAULT_MACHINE: &str = "default";

/// What every command needs: how the program was invoked and the store.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The program name as invoked (basename of argv\[0\]): `machine` or `docker-machine`.
    pub prog: String,
    /// The full command line, for `env`'s usage hint.
    pub args: Vec<String>,
    pub store: Store,
    pub native_ssh: bool,
    /// The drivers whose flags `create` takes: every registered driver, or
    /// only the plugin `-d` names.
    pub create_drivers: machine_core::driver::DriverRegistry,
    /// `--tls-ca-cert`, `--tls-client-cert`, `--tls-client-key` when all
    /// three are given: a daemon to adopt with `create -d none`.
    pub adopt_tls: Option<machine_core::host::AdoptTls>,
}

impl Ctx {
    /// The machine to act on: `name`, or `default` when it exists.
    pub fn target(&self, name: Option<&String>) -> CliResult<String> {
        match name {
            Some(n) => Ok(n.clone()),
            None if self.store.files().exists(DEFAULT_MACHINE) => Ok(DEFAULT_MACHINE.to_string()),
            None => Err(CliError::msg(format!(
                "Error: No machine name(s) specified and no \"{DEFAULT_MACHINE}\" machine exists"
            ))),
        }
    }

    /// The machines to act on: `names`, or `default` when none are given.
    pub fn targets(
        &self,
        names: Option<clap::parser::ValuesRef<'_, String>>,
    ) -> CliResult<Vec<String>> {
        let v: Vec<String> = names.map(|n| n.cloned().collect()).unwrap_or_default();
        if v.is_empty() {
            Ok(vec![self.target(None)?])
        } else {
            Ok(v)
        }
    }

    /// Load machine `name`.
    pub fn load(&self, name: &str) -> CliResult<Host> {
        self.store
            .get(name)
            .map_err(|e| self.err(error::LOAD_CONTEXT, &e))
    }

    /// A machine error with `context`.
    pub fn err(&self, context: &str, e: &HostError) -> CliError {
        CliError::host(&self.prog, context, e)
    }
}

/// The program name from argv\[0\].
pub fn program_name(argv0: Option<&str>) -> String {
    argv0
        .map(|a| a.rsplit(['/', '\\']).next().unwrap_or(a).to_string())
        .map(|a| a.strip_suffix(".exe").map(str::to_string).unwrap_or(a))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "machine".to_string())
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "yes" | "on"
    )
}

fn init_tracing(debug: bool) {
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let ours = if debug {
        LevelFilter::DEBUG
    } else {
        LevelFilter::WARN
    };
    let others = if debug {
        LevelFilter::WARN
    } else {
        LevelFilter::OFF
    };
    let filter = Targets::new()
        .with_default(others)
        .with_target("machine_core", ours)
        .with_target("machine_drivers", ours)
        .with_target("machine_cli", ours);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(debug);
    if debug {
        tracing_subscriber::registry().with(fmt).with(filter).init();
    } else {
        tracing_subscriber::registry()
            .with(fmt.without_time())
            .with(filter)
            .init();
    }
}

/// Run the CLI with the process's arguments; returns the exit status.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    run(args)
}

/// The driver `create` is asked for in `args` (`-d NAME`, `--driver NAME`,
/// `--driver=NAME`, `-dNAME`), else `MACHINE_DRIVER`, else the default;
/// `None` when the command is not `create`.
fn create_driver_arg(args: &[String]) -> Option<String> {
    // the subcommand: the first word that is neither a global flag nor its value
    const VALUED: [&str; 8] = [
        "-s",
        "--storage-path",
        "--tls-ca-cert",
        "--tls-ca-key",
        "--tls-client-cert",
        "--tls-client-key",
        "--github-api-token",
        "--bugsnag-api-token",
    ];
    let mut words = args.iter().enumerate().skip(1);
    let pos = loop {
        let (i, a) = words.next()?;
        if VALUED.contains(&a.as_str()) {
            words.next();
        } else if !a.starts_with('-') {
            break i;
        }
    };
    if args[pos] != "create" {
        return None;
    }
    let mut it = args[pos + 1..].iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "-d" || a == "--driver" {
            return it.next().cloned();
        }
        if let Some(v) = a
            .strip_prefix("--driver=")
            .or_else(|| a.strip_prefix("-d="))
        {
            return Some(v.to_string());
        }
        if let Some(v) = a
            .strip_prefix("-d")
            .filter(|v| !v.is_empty() && !a.starts_with("--"))
        {
            return Some(v.to_string());
        }
    }
    Some(
        std::env::var("MACHINE_DRIVER")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| machine_core::driver::DEFAULT_DRIVER.to_string()),
    )
}

/// Serve a built-in driver over the plugin protocol when started as a
/// plugin: as `docker-machine-driver-NAME` (a link to this binary), or with
/// `MACHINE_PLUGIN_TOKEN=42` and `MACHINE_PLUGIN_DRIVER_NAME=NAME` and no
/// arguments, as the original serves its own drivers. `None`: not a plugin.
fn serve_plugin(args: &[String]) -> Option<i32> {
    use machine_drivers::plugin::{ENV_DRIVER_NAME, ENV_TOKEN, TOKEN};
    let prog = program_name(args.first().map(String::as_str));
    let token = std::env::var(ENV_TOKEN).ok();
    let name = match prog.strip_prefix(machine_drivers::plugin::client::EXECUTABLE_PREFIX) {
        Some(n) => n.to_string(),
        None if args.len() == 1 && token.as_deref() == Some(TOKEN) => {
            std::env::var(ENV_DRIVER_NAME)
                .ok()
                .filter(|n| !n.is_empty())?
        }
        None => return None,
    };
    if token.as_deref() != Some(TOKEN) {
        eprintln!(
            "This is a Docker Machine driver plugin ({name}), served by machine {}.\nIt is started by docker-machine (or machine) itself, not by hand.",
            app::VERSION
        );
        return Some(1);
    }
    init_tracing(true);
    let drivers = machine_drivers::builtin_registry();
    let factory = match drivers.get(&name) {
        Ok(f) if !drivers.is_external(&name) => f,
        _ => {
            eprintln!(
                "Error: no built-in driver named {name:?} (known: {})",
                drivers.registered_names().join(", ")
            );
            return Some(1);
        }
    };
    let mut out = std::io::stdout();
    match machine_drivers::plugin::server::serve(factory, &mut out) {
        Ok(code) => Some(code),
        Err(e) => {
            eprintln!("Error: {e}");
            Some(1)
        }
    }
}

/// Run the CLI with `args` (argv\[0\] first); returns the exit status.
pub fn run(args: Vec<String>) -> i32 {
    if let Some(code) = serve_plugin(&args) {
        return code;
    }
    let prog = program_name(args.first().map(String::as_str));
    let drivers = machine_drivers::builtin_registry();
    // `create` with a plugin driver takes that plugin's flags only (they may
    // have the names of a built-in driver's flags)
    let mut create_drivers = drivers.clone();
    if let Some(name) = create_driver_arg(&args).filter(|n| drivers.is_external(n)) {
        match drivers.get(&name).and_then(|f| f.check().map(|()| f)) {
            Ok(f) => create_drivers = machine_core::driver::DriverRegistry::new().with(f),
            Err(e) => {
                eprintln!("Error: {e}");
                return error::EXIT_ERROR;
            }
        }
    }
    let matches = match app::build(&prog, &create_drivers).try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 1,
                _ => error::EXIT_ERROR,
            };
        }
    };
    let debug = matches.get_flag("debug")
        || std::env::var("MACHINE_DEBUG")
            .map(|v| truthy(&v))
            .unwrap_or(false);
    init_tracing(debug);
    tracing::debug!(version = app::VERSION, build = app::BUILD, "machine");
    if matches.get_flag("version") {
        outln!("{prog} version {}, build {}", app::VERSION, app::BUILD);
        return 0;
    }
    let Some((name, sub)) = matches.subcommand() else {
        let _ = app::build(&prog, &drivers).print_help();
        return 0;
    };
    let tls = |flag: &str| {
        matches
            .get_one::<String>(flag)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let adopt_tls = match (
        tls("tls-ca-cert"),
        tls("tls-client-cert"),
        tls("tls-client-key"),
    ) {
        (Some(ca), Some(cert), Some(key)) if name == "create" => {
            Some(machine_core::host::AdoptTls {
                ca_cert: ca.into(),
                client_cert: cert.into(),
                client_key: key.into(),
            })
        }
        _ => None,
    };
    for flag in [
        "tls-ca-cert",
        "tls-ca-key",
        "tls-client-cert",
        "tls-client-key",
    ] {
        let adopting = adopt_tls.is_some() && flag != "tls-ca-key";
        if let Some(v) = tls(flag).filter(|_| !adopting) {
            tracing::warn!("--{flag} {v} is ignored: the certificates in the store's certs/ directory are used (give --tls-ca-cert, --tls-client-cert and --tls-client-key to create -d none to adopt a daemon)");
        }
    }
    let storage = matches
        .get_one::<String>("storage-path")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let store = match Store::open(storage, drivers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}; give the store with -s/--storage-path or MACHINE_STORAGE_PATH");
            return error::EXIT_ERROR;
        }
    };
    let ctx = Ctx {
        prog: prog.clone(),
        args: args.clone(),
        store,
        native_ssh: matches.get_flag("native-ssh"),
        create_drivers,
        adopt_tls,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return error::EXIT_ERROR;
        }
    };
    let result = rt.block_on(commands::dispatch(&ctx, name, sub));
    let _ = std::io::stdout().flush();
    // Do not wait for background tasks (e.g. a host still not answering `ls`).
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.message);
            e.code
        }
    }
}

/// Write command output; a closed pipe (`machine ls | head -1`) ends the
/// process with the status a shell reports for SIGPIPE, without a message.
pub(crate) fn emit(text: &str) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

/// Ask a yes/no question on stdout; anything but an answer starting with `y` is no.
pub(crate) fn confirm(question: &str) -> bool {
    emit(&format!("{question} (y/n): "));
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => {
            emit("\n");
            false
        }
        Ok(_) => line.trim().to_ascii_lowercase().starts_with('y'),
    }
}

#[cfg(test)]
mod plugin_arg_tests {
    use super::create_driver_arg;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_driver_of_create_is_found_in_every_spelling() {
        for (line, want) in [
            ("m create -d hetzner x", Some("hetzner")),
            ("m -s /tmp/s create --driver hetzner x", Some("hetzner")),
            ("m --debug create --driver=hetzner x", Some("hetzner")),
            ("m create -dhetzner x", Some("hetzner")),
            ("m ssh create -d hetzner", None),
            ("m -s create ls", None),
        ] {
            assert_eq!(create_driver_arg(&args(line)).as_deref(), want, "{line}");
        }
    }
}
