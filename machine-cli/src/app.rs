//! The command line: every command and flag of docker-machine 0.16.2, plus the
//! create flags each registered driver declares.

use clap::{Arg, ArgAction, Command};
use machine_core::driver::{DriverOption, DriverRegistry, OptionKind};

/// The driver `create` uses when neither `--driver` nor `MACHINE_DRIVER` names one.
pub use machine_core::driver::DEFAULT_DRIVER;

/// The version printed by `version` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binary was built from.
pub const BUILD: &str = env!("MACHINE_BUILD_ID");

const GLOBAL: &str = "Global options";

/// `ls` and `active` default timeout, seconds.
pub const LS_DEFAULT_TIMEOUT: &str = "10";

fn flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .help(help)
        .action(ArgAction::SetTrue)
}

fn names(help: &'static str) -> Arg {
    Arg::new("names")
        .value_name("NAME")
        .num_args(0..)
        .help(help)
}

fn one_name() -> Arg {
    Arg::new("name")
        .value_name("NAME")
        .help("Machine name (default: the machine named \"default\")")
}

/// Build the whole command line for `prog` (the name it was invoked as) with
/// the create flags of every driver in `drivers`. Every boolean flag takes
/// `--flag`, `--flag=true` and `--flag=false` (see [`boolish`]).
pub fn build(prog: &str, drivers: &DriverRegistry) -> Command {
    boolish(build_flags(prog, drivers))
}

/// Let every on/off flag of `cmd` and its subcommands also take an explicit
/// value after `=` (`--native-ssh=true`, `--amazonec2-private-address-only=false`,
/// as wrappers of the original such as GitLab Runner pass them): the bare
/// flag still means true, a following word is never taken as its value, and
/// `1/0`, `yes/no`, `on/off` are accepted as well.
pub fn boolish(cmd: Command) -> Command {
    cmd.mut_args(|a| {
        if matches!(a.get_action(), ArgAction::SetTrue) {
            a.action(ArgAction::Set)
                .value_name("true|false")
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .default_value("false")
                .hide_default_value(true)
                .hide_possible_values(true)
                .value_parser(clap::builder::BoolishValueParser::new())
        } else {
            a
        }
    })
    .mut_subcommands(boolish)
}

fn build_flags(prog: &str, drivers: &DriverRegistry) -> Command {
    Command::new(prog.to_string())
        .about("Create and manage machines running Docker.")
        .disable_version_flag(true)
        .subcommand_required(false)
        .arg_required_else_help(false)
        .max_term_width(100)
        .arg(
            Arg::new("debug")
                .short('D')
                .long("debug")
                .help("Enable debug mode (logs every remote command)")
                .action(ArgAction::SetTrue)
                .help_heading(GLOBAL)
                .global(true),
        )
        .arg(
            Arg::new("storage-path")
                .short('s')
                .long("storage-path")
                .value_name("PATH")
                .env("MACHINE_STORAGE_PATH")
                .help("Configures storage path [default: ~/.docker/machine]")
                .hide_env_values(true)
                .help_heading(GLOBAL)
                .global(true),
        )
        .arg(tls_arg("tls-ca-cert", "MACHINE_TLS_CA_CERT", "CA to verify remotes against"))
        .arg(tls_arg("tls-ca-key", "MACHINE_TLS_CA_KEY", "Private key to generate certificates"))
        .arg(tls_arg("tls-client-cert", "MACHINE_TLS_CLIENT_CERT", "Client cert to use for TLS"))
        .arg(tls_arg("tls-client-key", "MACHINE_TLS_CLIENT_KEY", "Private key used in client TLS auth"))
        .arg(
            Arg::new("github-api-token")
                .long("github-api-token")
                .env("MACHINE_GITHUB_API_TOKEN")
                .hide(true)
                .hide_env_values(true)
                .global(true),
        )
        .arg(
            Arg::new("bugsnag-api-token")
                .long("bugsnag-api-token")
                .env("MACHINE_BUGSNAG_API_TOKEN")
                .hide(true)
                .hide_env_values(true)
                .global(true),
        )
        .arg(
            Arg::new("native-ssh")
                .long("native-ssh")
                .env("MACHINE_NATIVE_SSH")
                .help("Use the built-in SSH client instead of the system's ssh")
                .hide_env_values(true)
                .action(ArgAction::SetTrue)
                .help_heading(GLOBAL)
                .global(true),
        )
        .arg(
            Arg::new("version")
                .short('v')
                .long("version")
                .help("Print the version")
                .action(ArgAction::SetTrue),
        )
        .subcommand(
            Command::new("active")
                .about("Print which machine is active")
                .arg(timeout_arg()),
        )
        .subcommand(
            Command::new("config")
                .about("Print the connection config for machine")
                .arg(one_name())
                .arg(flag("swarm", "Print the config of the machine's Swarm-mode manager (this machine if it is one)")),
        )
        .subcommand(
            Command::new("context")
                .about("Write (or with --rm remove) docker CLI contexts named after machines")
                .arg(names("Machine names (default: \"default\")"))
                .arg(flag("rm", "Remove the machines' contexts instead")),
        )
        .subcommand(create_command(prog, drivers))
        .subcommand(
            Command::new("env")
                .about("Display the commands to set up the environment for the Docker client")
                .arg(one_name())
                .arg(
                    Arg::new("shell")
                        .long("shell")
                        .value_name("SHELL")
                        .help("Force environment to be configured for a specified shell: [fish, cmd, powershell, tcsh, emacs, nu, json], default is auto-detect"),
                )
                .arg(flag("unset", "Unset variables instead of setting them").short('u'))
                .arg(json_format())
                .arg(flag("no-proxy", "Add machine IP to NO_PROXY environment variable"))
                .arg(flag(
                    "check",
                    "Also connect to the Docker daemon and check that it answers (the certificates are always checked locally)",
                ))
                .arg(flag(
                    "swarm",
                    "Point the client at the machine's Swarm-mode cluster: the environment of a manager of it that answers (this machine if it is one)",
                )),
        )
        .subcommand(
            Command::new("export")
                .about("Write a machine to one archive, to use it from another store")
                .after_help(
                    "The archive holds the machine's configuration, its certificates with the CA certificate, \
                     its SSH key and its pinned host key, never the CA's private key unless --with-ca-key.\n\
                     It is encrypted (age, scrypt) with --encrypt or when MACHINE_EXPORT_PASSPHRASE is set; \
                     the passphrase comes from MACHINE_EXPORT_PASSPHRASE, else from a prompt on the terminal.",
                )
                .arg(Arg::new("name").value_name("NAME").required(true).help("Machine name"))
                .arg(
                    Arg::new("output")
                        .short('o')
                        .long("output")
                        .value_name("FILE")
                        .help("Where to write the archive, `-` for stdout [default: NAME.tar, or NAME.tar.age when encrypted]"),
                )
                .arg(flag("encrypt", "Encrypt the archive with a passphrase"))
                .arg(flag(
                    "with-ca-key",
                    "Also include the CA's private key (whoever has the archive can then make certificates every machine of this store trusts)",
                )),
        )
        .subcommand(
            Command::new("import")
                .about("Add a machine from an archive written by export")
                .after_help("An encrypted archive's passphrase comes from MACHINE_EXPORT_PASSPHRASE, else from a prompt on the terminal.")
                .arg(Arg::new("file").value_name("FILE").required(true).help("The archive, `-` for stdin"))
                .arg(
                    Arg::new("name")
                        .long("name")
                        .value_name("NAME")
                        .help("Name of the machine in this store [default: its name in the archive]"),
                ),
        )
        .subcommand(
            Command::new("inspect")
                .about("Inspect information about a machine")
                .arg(one_name())
                .arg(
                    Arg::new("format")
                        .short('f')
                        .long("format")
                        .value_name("TEMPLATE")
                        .help("Format the output using the given go template, or `json` (config.json as it is)."),
                ),
        )
        .subcommand(
            Command::new("ip")
                .about("Get the IP address of a machine")
                .arg(names("Machine names (default: \"default\")")),
        )
        .subcommand(lifecycle("kill", "Kill a machine"))
        .subcommand(
            Command::new("ls")
                .about("List machines")
                .arg(flag("quiet", "Enable quiet mode").short('q'))
                .arg(
                    Arg::new("filter")
                        .long("filter")
                        .value_name("KEY=VALUE")
                        .action(ArgAction::Append)
                        .help("Filter output based on conditions provided (driver, state, name (regex), label, swarm)"),
                )
                .arg(timeout_arg())
                .arg(
                    Arg::new("format")
                        .short('f')
                        .long("format")
                        .value_name("FORMAT")
                        .help("Pretty-print machines using a Go template, or `json`"),
                ),
        )
        .subcommand(
            Command::new("mount")
                .about("Mount or unmount a directory from a machine with SSHFS.")
                .arg(
                    Arg::new("source")
                        .value_name("[NAME:]PATH")
                        .required(true)
                        .help("Machine and remote directory"),
                )
                .arg(Arg::new("target").value_name("DIR").help("Local mount point (default: the remote path)"))
                .arg(flag("unmount", "Unmount instead of mount").short('u')),
        )
        .subcommand(
            Command::new("provision")
                .about("Re-provision existing machines")
                .arg(names("Machine names (default: \"default\")"))
                .arg(flag("repin", "Forget the pinned SSH host key first and pin the one the machine presents now")),
        )
        .subcommand(
            Command::new("regenerate-certs")
                .about("Regenerate TLS Certificates for a machine")
                .arg(names("Machine names (default: \"default\")"))
                .arg(flag("force", "Force rebuild and do not prompt").short('f'))
                .arg(flag(
                    "client-certs",
                    "Also regenerate the CA and client certificate (every machine of the store then needs new certificates)",
                )),
        )
        .subcommand(lifecycle("restart", "Restart a machine"))
        .subcommand(
            Command::new("rm")
                .about("Remove a machine")
                .arg(names("Machine names").required(true))
                .arg(flag(
                    "force",
                    "Remove local configuration even if machine cannot be removed, also implies an automatic yes (`-y`)",
                )
                .short('f'))
                .arg(
                    Arg::new("y")
                        .short('y')
                        .help("Assumes automatic yes to proceed with remove, without prompting further user confirmation")
                        .action(ArgAction::SetTrue),
                ),
        )
        .subcommand(
            Command::new("ssh")
                .about("Log into or run a command on a machine with SSH.")
                .arg(flag("repin", "Forget the pinned SSH host key first and pin the one the machine presents now"))
                .arg(Arg::new("name").value_name("NAME").help("Machine name (default: \"default\")"))
                .arg(
                    Arg::new("command")
                        .value_name("COMMAND")
                        .num_args(1..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true)
                        .help("Command to run (an interactive shell when omitted)"),
                ),
        )
        .subcommand(
            Command::new("scp")
                .about("Copy files between machines")
                .arg(Arg::new("source").value_name("[[USER@]NAME:]PATH").required(true))
                .arg(Arg::new("destination").value_name("[[USER@]NAME:]PATH").required(true))
                .arg(flag("recursive", "Copy files recursively (required to copy directories)").short('r'))
                .arg(flag("delta", "Reduce amount of data sent over network by sending only the differences (uses rsync)").short('d'))
                .arg(flag("quiet", "Disables the progress meter as well as warning and diagnostic messages from ssh").short('q')),
        )
        .subcommand(
            Command::new("ssh-config")
                .about("Print OpenSSH Host blocks for machines (ssh -F FILE NAME)")
                .arg(names("Machine names (default: every machine with SSH access)")),
        )
        .subcommand(lifecycle("start", "Start a machine"))
        .subcommand(
            Command::new("status")
                .about("Get the status of a machine")
                .arg(one_name())
                .arg(json_format()),
        )
        .subcommand(lifecycle("stop", "Stop a machine"))
        .subcommand(lifecycle("upgrade", "Upgrade a machine to the latest version of Docker"))
        .subcommand(Command::new("url").about("Get the URL of a machine").arg(one_name()))
        .subcommand(
            Command::new("version")
                .about("Show the Docker Machine version or a machine docker version")
                .arg(Arg::new("name").value_name("NAME").help("Machine whose Docker version to show"))
                .arg(json_format()),
        )
        .subcommand(
            Command::new("completion")
                .about("Print a shell completion script (bash, zsh, fish, elvish, powershell)")
                .arg(
                    Arg::new("shell")
                        .value_name("SHELL")
                        .required(true)
                        .value_parser(["bash", "zsh", "fish", "elvish", "powershell"]),
                ),
        )
}

fn tls_arg(name: &'static str, env: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("FILE")
        .env(env)
        .help(format!(
            "{help} (with create -d none, the three of --tls-ca-cert, --tls-client-cert and --tls-client-key adopt a daemon with its own TLS setup; otherwise the store's certs/ are used)"
        ))
        .hide_env_values(true)
        .help_heading(GLOBAL)
        .global(true)
}

/// `-f/--format json`: the command's result as one JSON object.
fn json_format() -> Arg {
    Arg::new("format")
        .short('f')
        .long("format")
        .value_name("FORMAT")
        .value_parser(["json"])
        .help("Print the result as JSON (see the README for the fields)")
}

fn timeout_arg() -> Arg {
    Arg::new("timeout")
        .short('t')
        .long("timeout")
        .value_name("SECONDS")
        .value_parser(clap::value_parser!(u64))
        .default_value(LS_DEFAULT_TIMEOUT)
        .help("Timeout in seconds")
}

fn lifecycle(name: &'static str, about: &'static str) -> Command {
    Command::new(name)
        .about(about)
        .arg(names("Machine names (default: \"default\")"))
}

/// A clap argument for a declared option (an engine option of the core, or
/// a driver's): its kind decides the action, with its environment variable
/// and default.
fn option_arg(opt: &DriverOption) -> Arg {
    let mut a = Arg::new(opt.flag.clone())
        .long(opt.flag.clone())
        .help(opt.help.clone())
        .hide_env_values(true);
    a = match opt.kind {
        OptionKind::Bool => a.action(ArgAction::SetTrue),
        OptionKind::StringList => a.action(ArgAction::Append).value_name("VALUE"),
        OptionKind::Int => a.value_name("N"),
        OptionKind::String => a.value_name("VALUE"),
    };
    if let Some(e) = &opt.env_var {
        a = a.env(e.clone());
    }
    if let Some(d) = &opt.default {
        if opt.kind != OptionKind::Bool {
            a = a.default_value(d.clone());
        }
    }
    a
}

fn create_command(prog: &str, drivers: &DriverRegistry) -> Command {
    let mut cmd = Command::new("create")
        .about("Create a machine")
        .after_help(format!(
            "Each driver's own flags are listed under its name; '{prog} create --driver NAME --help' shows them too.\n\n\
             Swarm mode (built into Docker Engine) replaces the classic Swarm container:\n  \
             {prog} create -d generic ... --swarm-master m1\n      \
             a new cluster, m1 its manager\n  \
             {prog} create -d generic ... --swarm --swarm-discovery machine://m1 w1\n      \
             w1 joins it as a worker\n  \
             {prog} create -d generic ... --swarm-master --swarm-discovery machine://m1 m2\n      \
             m2 joins it as a manager\n\
             MANAGER in machine://MANAGER is a manager machine of the same store."
        ))
        .arg(
            Arg::new("driver")
                .short('d')
                .long("driver")
                .value_name("DRIVER")
                .env("MACHINE_DRIVER")
                .hide_env_values(true)
                .default_value(DEFAULT_DRIVER)
                .help(format!("Driver to create machine with ({})", drivers.names().join(", "))),
        )
        .arg(Arg::new("name").value_name("NAME").help("Name of the new machine"))
        .arg(flag(
            "docker-context",
            "Also write a docker CLI context named after the machine (DOCKER_CONFIG or ~/.docker): docker --context NAME ...",
        ));
    for e in machine_core::host::engine_options() {
        cmd = cmd.arg(option_arg(&e));
    }
    for o in machine_core::swarm::swarm_options() {
        cmd = cmd.arg(option_arg(&o).help_heading("Swarm mode"));
    }
    let taken: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let mut seen = taken;
    // the flags of registered drivers only: a plugin's come from its process,
    // asked only when it is the chosen driver (then it is the one registered)
    for driver in drivers.registered_names() {
        let Ok(factory) = drivers.get(&driver) else {
            continue;
        };
        for opt in factory.options() {
            if seen.contains(&opt.flag) {
                continue;
            }
            seen.push(opt.flag.clone());
            let mut a = option_arg(&opt).help_heading(format!("Driver {driver}"));
            if opt.required {
                a = a.help(format!("{} (required with driver {driver})", opt.help));
            }
            cmd = cmd.arg(a);
        }
    }
    cmd
}
