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

/// Run the CLI with `args` (argv\[0\] first); returns the exit status.
pub fn run(args: Vec<String>) -> i32 {
    let prog = program_name(args.first().map(String::as_str));
    let drivers = machine_drivers::builtin_registry();
    let matches = match app::build(&prog, &drivers).try_get_matches_from(&args) {
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
