//! The commands other than `ls` and the SSH-based ones.

use crate::error::{CliError, CliResult};
use crate::progress::Steps;
use crate::{app, gotemplate, Ctx};
use clap::parser::ValueSource;
use clap::ArgMatches;
use machine_core::driver::{OptionKind, OptionValue};
use machine_core::env::{self, MachineEnv, Shell};
use machine_core::host::{CreateOptions, EnvOptions, HostError};
use machine_core::ErrorCode;
use machine_core::State;
use std::time::Duration;

/// How long `env --check`, `version NAME` and `config` wait for the daemon.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) async fn dispatch(ctx: &Ctx, name: &str, m: &ArgMatches) -> CliResult<i32> {
    match name {
        "active" => active(ctx, m).await,
        "config" => config(ctx, m).await,
        "context" => context(ctx, m).await,
        "create" => create(ctx, m).await,
        "env" => env_cmd(ctx, m).await,
        "export" => crate::portable::export(ctx, m),
        "import" => crate::portable::import(ctx, m),
        "inspect" => inspect(ctx, m),
        "ip" => ip(ctx, m).await,
        "ls" => crate::ls::ls(ctx, m).await,
        "mount" => crate::remote::mount(ctx, m).await,
        "provision" => provision(ctx, m).await,
        "regenerate-certs" => regenerate_certs(ctx, m).await,
        "rm" => rm(ctx, m).await,
        "scp" => crate::remote::scp(ctx, m).await,
        "ssh" => crate::remote::ssh(ctx, m).await,
        "ssh-config" => ssh_config(ctx, m),
        "start" | "stop" | "restart" | "kill" => lifecycle(ctx, name, m).await,
        "status" => status(ctx, m).await,
        "upgrade" => upgrade(ctx, m).await,
        "url" => url(ctx, m).await,
        "version" => version(ctx, m).await,
        "completion" => completion(ctx, m),
        other => Err(CliError::msg(format!(
            "{0}: '{other}' is not a {0} command. See '{0} --help'.",
            ctx.prog
        ))),
    }
}

/// Join the errors of a multi-machine command, as the original did.
fn consolidate(errors: Vec<CliError>) -> CliResult<i32> {
    if errors.is_empty() {
        return Ok(0);
    }
    let code = errors
        .iter()
        .map(|e| e.code)
        .max()
        .unwrap_or(crate::error::EXIT_ERROR);
    Err(CliError {
        message: errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("\n"),
        code,
    })
}

async fn active(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let timeout = Duration::from_secs(*m.get_one::<u64>("timeout").unwrap_or(&10));
    let docker_host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if !docker_host.is_empty() {
        let rows = ctx
            .store
            .list(timeout)
            .await
            .map_err(|e| ctx.err("Error getting active host", &e))?;
        if let Some(r) = rows
            .iter()
            .find(|r| r.state == State::Running && r.url == docker_host)
        {
            outln!("{}", r.name);
            return Ok(0);
        }
    }
    Err(CliError::msg("No active host found"))
}

async fn config(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let host = target_or_manager(ctx, &ctx.target(m.get_one("name"))?, m.get_flag("swarm")).await?;
    let flags = host
        .config()
        .await
        .map_err(|e| ctx.err("Error checking TLS connection", &e))?;
    // the original prints the certificate paths in double quotes
    let mut out = String::new();
    for flag in flags {
        match flag.split_once('=') {
            Some((name, value)) if name.starts_with("--tls") => {
                out.push_str(&format!("{name}=\"{value}\"\n"))
            }
            _ => out.push_str(&format!("{flag}\n")),
        }
    }
    out!("{out}");
    Ok(0)
}

fn option_value(m: &ArgMatches, id: &str, kind: OptionKind) -> Option<OptionValue> {
    Some(match kind {
        OptionKind::Bool => OptionValue::Bool(m.get_flag(id)),
        OptionKind::StringList => OptionValue::List(m.get_many::<String>(id)?.cloned().collect()),
        OptionKind::String | OptionKind::Int => {
            OptionValue::String(m.get_one::<String>(id)?.clone())
        }
    })
}

async fn create(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let Some(name) = m.get_one::<String>("name") else {
        return Err(CliError::msg("Error: No machine name specified"));
    };
    let driver = m
        .get_one::<String>("driver")
        .cloned()
        .unwrap_or_else(|| app::DEFAULT_DRIVER.into());
    let mut opts = CreateOptions::new(&driver);
    let engine = machine_core::host::engine_options();
    for e in &engine {
        if !matches!(
            m.value_source(&e.flag),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        if let Some(v) = option_value(m, &e.flag, e.kind) {
            opts.engine_flag(&e.flag, v)
                .map_err(|err| ctx.err("Error creating machine", &err))?;
        }
    }
    let swarm = machine_core::swarm::swarm_options();
    for o in &swarm {
        if !matches!(
            m.value_source(&o.flag),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        if let Some(v) = option_value(m, &o.flag, o.kind) {
            opts.swarm_flag(&o.flag, v)
                .map_err(|err| ctx.err("Error creating machine", &err))?;
        }
    }
    // Driver flags given on the command line; the library reads their
    // environment variables and defaults itself, for the chosen driver only.
    let drivers = &ctx.create_drivers;
    let mut seen = Vec::new();
    for dname in drivers.registered_names() {
        let Ok(factory) = drivers.get(&dname) else {
            continue;
        };
        for opt in factory.options() {
            if seen.contains(&opt.flag)
                || engine.iter().any(|e| e.flag == opt.flag)
                || swarm.iter().any(|e| e.flag == opt.flag)
            {
                continue;
            }
            seen.push(opt.flag.clone());
            if m.value_source(&opt.flag) != Some(ValueSource::CommandLine) {
                continue;
            }
            if let Some(v) = option_value(m, &opt.flag, opt.kind) {
                opts.driver_option(&opt.flag, v);
            }
        }
    }
    if let Some(tls) = &ctx.adopt_tls {
        if driver == "none" {
            opts.adopt_tls = Some(tls.clone());
        } else {
            tracing::warn!("--tls-ca-cert, --tls-client-cert and --tls-client-key are ignored with driver {driver}: its daemon gets certificates from the store's CA (they adopt a daemon with -d none)");
        }
    }
    let steps = Steps::new(name, false);
    let result = ctx.store.create(name, opts, &|s: &str| steps.step(s)).await;
    steps.finish(result.is_ok());
    match result {
        Ok(host) => {
            if m.get_flag("docker-context") {
                let c = host
                    .docker_context()
                    .await
                    .map_err(|e| ctx.err("Error writing the docker context", &e))?;
                outln!("Docker context {c} written: docker --context {c} ...");
            }
            outln!(
                "To see how to connect your Docker Client to the Docker Engine running on this virtual machine, run: {} env {name}",
                ctx.args.first().map(String::as_str).unwrap_or(&ctx.prog)
            );
            Ok(0)
        }
        Err(e) => {
            let mut err = ctx.err("Error creating machine", &e);
            let claimed = !matches!(e.code(), ErrorCode::AlreadyExists | ErrorCode::InvalidName)
                && ctx.store.files().exists(name);
            if claimed {
                err.message.push_str(&format!(
                    "\nThe machine is kept in state Error. Retry with '{0} provision {name}' or remove it with '{0} rm -y {name}'.",
                    ctx.prog
                ));
            }
            Err(err)
        }
    }
}

async fn context(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let remove = m.get_flag("rm");
    let mut errors = Vec::new();
    for name in ctx.targets(m.get_many("names"))? {
        let r = async {
            let host = ctx.load(&name)?;
            if remove {
                let gone = host
                    .remove_docker_context()
                    .map_err(|e| ctx.err("Error removing the docker context", &e))?;
                if gone {
                    outln!("Docker context {name} removed");
                } else {
                    outln!("Machine {name} has no docker context");
                }
            } else {
                let c = host
                    .docker_context()
                    .await
                    .map_err(|e| ctx.err("Error writing the docker context", &e))?;
                outln!("Docker context {c} written: docker --context {c} ...");
            }
            Ok::<(), CliError>(())
        }
        .await;
        if let Err(e) = r {
            errors.push(e);
        }
    }
    consolidate(errors)
}

/// The machine `name`, or with `--swarm` the manager of its cluster.
async fn target_or_manager(ctx: &Ctx, name: &str, swarm: bool) -> CliResult<machine_core::Host> {
    let host = ctx.load(name)?;
    if !swarm {
        return Ok(host);
    }
    host.swarm_manager()
        .await
        .map_err(|e| ctx.err("Error finding the swarm's manager", &e))
}

/// Whether `--format json` was given.
fn json_wanted(m: &ArgMatches) -> bool {
    m.get_one::<String>("format").map(String::as_str) == Some("json")
}

/// `value` as Go-indented JSON, one line feed after it.
fn print_json<T: serde::Serialize>(value: &T) -> CliResult<i32> {
    let bytes = machine_core::config::to_go_json(value)
        .map_err(|e| CliError::msg(format!("Error: cannot encode the result: {e}")))?;
    outln!("{}", String::from_utf8_lossy(&bytes));
    Ok(0)
}

async fn env_cmd(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let json = json_wanted(m);
    let given_shell = if json {
        Some("json")
    } else {
        m.get_one::<String>("shell").map(String::as_str)
    };
    let shell = Shell::detect(given_shell, std::env::var("SHELL").ok().as_deref())
        .map_err(|e| CliError::msg(format!("Error: {e}")))?;
    let hint = (!json).then(|| env::hint_command_line(&ctx.args));
    let no_proxy = m.get_flag("no-proxy");
    let lower = std::env::var(env::NO_PROXY_LOWER).ok();
    let upper = std::env::var(env::NO_PROXY_UPPER).ok();
    if m.get_flag("unset") {
        if m.get_one::<String>("name").is_some() {
            return Err(CliError::msg(
                "Error: Expected no machine name when the -u flag is present",
            ));
        }
        let lower_set = lower.as_deref().is_some_and(|v| !v.is_empty());
        let u = MachineEnv::unset(no_proxy, lower_set);
        let text = env::render_unset(&u.clear, shell, hint.as_deref())
            .map_err(|e| CliError::msg(format!("Error: {e}")))?;
        out!("{text}");
        return Ok(0);
    }
    let host = target_or_manager(ctx, &ctx.target(m.get_one("name"))?, m.get_flag("swarm")).await?;
    let opts = EnvOptions {
        shell: Some(shell),
        unset: false,
        no_proxy,
        no_proxy_lower: lower,
        no_proxy_upper: upper,
        hint_command: hint,
    };
    let text = host
        .env(&opts)
        .await
        .map_err(|e| ctx.err("Error checking TLS connection", &e))?;
    if m.get_flag("check") {
        host.docker_version(DAEMON_TIMEOUT)
            .await
            .map_err(|e| daemon_error(ctx, host.name(), &e))?;
    }
    out!("{text}");
    Ok(0)
}

/// A failed dial of the daemon, with the hint the original gave for it.
fn daemon_error(ctx: &Ctx, name: &str, e: &HostError) -> CliError {
    let mut err = ctx.err("Error checking TLS connection", e);
    if e.code() == ErrorCode::Engine {
        err.message.push_str(&format!(
            "\nIf the daemon runs but rejects the certificates, regenerate them with '{} regenerate-certs {name}'.",
            ctx.prog
        ));
    }
    err
}

fn inspect(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let host = ctx.load(&ctx.target(m.get_one("name"))?)?;
    let json = host
        .inspect()
        .to_json()
        .map_err(|e| CliError::msg(format!("Error: cannot encode the configuration: {e}")))?;
    match m
        .get_one::<String>("format")
        .filter(|f| !f.is_empty() && *f != "json")
    {
        Some(format) => {
            let t = gotemplate::GoTemplate::parse(format).map_err(CliError::msg)?;
            let value: serde_json::Value =
                serde_json::from_slice(&json).map_err(|e| CliError::msg(format!("Error: {e}")))?;
            let out = t
                .render(&gotemplate::from_json(&value))
                .map_err(CliError::msg)?;
            outln!("{out}");
        }
        None => outln!("{}", String::from_utf8_lossy(&json)),
    }
    Ok(0)
}

async fn ip(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let mut errors = Vec::new();
    for name in ctx.targets(m.get_many("names"))? {
        let r = match ctx.load(&name) {
            Ok(h) => h
                .ip()
                .await
                .map_err(|e| ctx.err("Error getting IP address", &e)),
            Err(e) => Err(e),
        };
        match r {
            Ok(ip) => outln!("{ip}"),
            Err(e) => errors.push(e),
        }
    }
    consolidate(errors)
}

async fn status(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let host = ctx.load(&ctx.target(m.get_one("name"))?)?;
    if json_wanted(m) {
        let st = host
            .status()
            .await
            .map_err(|e| ctx.err(&format!("error getting state for host {}", host.name()), &e))?;
        return print_json(&serde_json::json!({
            "Name": st.name,
            "State": st.state.as_str(),
            "Error": st.error,
        }));
    }
    let st = host
        .state()
        .await
        .map_err(|e| ctx.err(&format!("error getting state for host {}", host.name()), &e))?;
    outln!("{st}");
    Ok(0)
}

async fn url(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let host = ctx.load(&ctx.target(m.get_one("name"))?)?;
    let url = host
        .url()
        .await
        .map_err(|e| ctx.err("Error getting URL", &e))?;
    outln!("{url}");
    Ok(0)
}

async fn version(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    match m.get_one::<String>("name") {
        None if json_wanted(m) => print_json(&serde_json::json!({
            "Version": app::VERSION,
            "Build": app::BUILD,
        })),
        None => {
            outln!(
                "{} version {}, build {}",
                ctx.prog,
                app::VERSION,
                app::BUILD
            );
            Ok(0)
        }
        Some(name) => {
            let host = ctx.load(name)?;
            let v = host
                .docker_version(DAEMON_TIMEOUT)
                .await
                .map_err(|e| daemon_error(ctx, name, &e))?;
            if json_wanted(m) {
                return print_json(&serde_json::json!({
                    "Name": name,
                    "Version": v.version,
                    "ApiVersion": v.api_version,
                    "Os": v.os,
                    "Arch": v.arch,
                }));
            }
            outln!("{}", v.version);
            Ok(0)
        }
    }
}

fn ssh_config(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let names: Vec<String> = m
        .get_many::<String>("names")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let text = ctx
        .store
        .ssh_config(&names)
        .map_err(|e| ctx.err("Error writing the SSH configuration", &e))?;
    out!("{text}");
    Ok(0)
}

fn completion(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    use clap_complete::Shell as S;
    let shell = match m.get_one::<String>("shell").map(String::as_str) {
        Some("bash") => S::Bash,
        Some("zsh") => S::Zsh,
        Some("fish") => S::Fish,
        Some("elvish") => S::Elvish,
        Some("powershell") => S::PowerShell,
        other => return Err(CliError::msg(format!("Error: unsupported shell {other:?}"))),
    };
    let mut cmd = app::build(&ctx.prog, ctx.store.drivers());
    clap_complete::generate(shell, &mut cmd, ctx.prog.clone(), &mut std::io::stdout());
    Ok(0)
}

/// Run `op` on each named machine in turn, its progress shown as steps
/// (tagged with the name when there are several); failures are collected.
async fn each_with_steps(
    ctx: &Ctx,
    names: Vec<String>,
    failure: &str,
    mut op: impl AsyncFnMut(
        &mut machine_core::Host,
        &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), HostError>,
) -> CliResult<i32> {
    let tagged = names.len() > 1;
    let mut errors = Vec::new();
    for name in names {
        let r = async {
            let mut host = ctx.load(&name)?;
            let steps = Steps::new(&name, tagged);
            let r = op(&mut host, &|s: &str| steps.step(s)).await;
            steps.finish(r.is_ok());
            r.map_err(|e| ctx.err(&format!("{failure} {name}"), &e))
        }
        .await;
        if let Err(e) = r {
            errors.push(e);
        }
    }
    consolidate(errors)
}

async fn provision(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let repin = m.get_flag("repin");
    let names = ctx.targets(m.get_many("names"))?;
    each_with_steps(
        ctx,
        names,
        "Error provisioning machine",
        async |host, progress| {
            if repin {
                host.forget_host_key()?;
            }
            host.provision(progress).await
        },
    )
    .await
}

async fn upgrade(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let names = ctx.targets(m.get_many("names"))?;
    each_with_steps(
        ctx,
        names,
        "Error upgrading machine",
        async |host, progress| host.upgrade(progress).await,
    )
    .await
}

async fn regenerate_certs(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let names = ctx.targets(m.get_many("names"))?;
    if !m.get_flag("force")
        && !crate::confirm("Regenerate TLS machine certs?  Warning: this is irreversible.")
    {
        return Ok(0);
    }
    outln!("Regenerating TLS certificates");
    let mut client_certs = m.get_flag("client-certs");
    let failure = "Error regenerating the certificates of machine";
    each_with_steps(ctx, names, failure, async |host, progress| {
        // The CA and client certificate are made once, for the first machine.
        let first = std::mem::replace(&mut client_certs, false);
        host.regenerate_certs(first, progress).await
    })
    .await
}

async fn rm(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let names: Vec<String> = m
        .get_many::<String>("names")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    if names.is_empty() {
        return Err(CliError::msg(
            "Error: Expected to get one or more machine names as arguments",
        ));
    }
    let force = m.get_flag("force");
    outln!("About to remove {}", names.join(", "));
    outln!("WARNING: This action will delete both local reference and remote instance.");
    for note in swarm_notes(ctx, &names) {
        outln!("WARNING: {note}");
    }
    if !(force || m.get_flag("y") || crate::confirm("Are you sure?")) {
        return Ok(0);
    }
    let mut errors = Vec::new();
    for name in names {
        if machine_core::store::FileStore::validate_name(&name).is_ok() {
            crate::remote::close_shared_connections(&ctx.store.files().machine_dir(&name));
        }
        match ctx.store.remove(&name, force).await {
            Ok(()) => outln!("Successfully removed {name}"),
            Err(e) => {
                let mut err = ctx.err(&format!("Error removing host \"{name}\""), &e);
                if e.code() == ErrorCode::Swarm && !force {
                    err.message.push_str(&format!(
                        "\nTo remove it without taking it out of its swarm: '{} rm -f {name}'.",
                        ctx.prog
                    ));
                }
                if force {
                    eprintln!("{}", err.message);
                } else {
                    errors.push(err);
                }
            }
        }
    }
    consolidate(errors)
}

/// What removing `names` does to Swarm-mode clusters, one line per cluster
/// that loses its last manager (by the store's configurations).
fn swarm_notes(ctx: &Ctx, names: &[String]) -> Vec<String> {
    let mut notes = Vec::new();
    for name in names {
        let Ok(host) = ctx.store.get(name) else {
            continue;
        };
        if !host.inspect().host_options.swarm_options.master {
            continue;
        }
        let Ok(members) = host.swarm_members() else {
            continue;
        };
        if members.managers.iter().any(|m| !names.contains(m)) {
            continue;
        }
        let workers: Vec<&String> = members
            .workers
            .iter()
            .filter(|w| !names.contains(w))
            .collect();
        let managers = members.managers.join(", ");
        let last = if members.managers.len() == 1 {
            format!("{managers} is the last manager of its swarm")
        } else {
            format!("{managers} are the last managers of their swarm")
        };
        if workers.is_empty() {
            notes.push(format!("{last}: the swarm ends."));
        } else {
            let list: Vec<&str> = workers.iter().map(|w| w.as_str()).collect();
            notes.push(format!(
                "{last}: the swarm ends, and its workers {} leave it (they keep running as standalone Docker hosts, their swarm services stop).",
                list.join(", ")
            ));
        }
    }
    notes.dedup();
    notes
}

async fn lifecycle(ctx: &Ctx, op: &str, m: &ArgMatches) -> CliResult<i32> {
    let (doing, done) = match op {
        "start" => ("Starting", "started"),
        "stop" => ("Stopping", "stopped"),
        "restart" => ("Restarting", "restarted"),
        _ => ("Killing", "killed"),
    };
    let mut errors = Vec::new();
    let mut moved = false;
    for name in ctx.targets(m.get_many("names"))? {
        let r = async {
            let mut host = ctx.load(&name)?;
            outln!("{doing} \"{name}\"...");
            // As the original: starting a running machine, or stopping or
            // killing a stopped one, is an error (the library lets it pass).
            let wanted = match op {
                "start" => Some(machine_core::State::Running),
                "stop" | "kill" => Some(machine_core::State::Stopped),
                _ => None,
            };
            if let Some(wanted) = wanted {
                if host.state().await.ok() == Some(wanted) {
                    return Err(CliError::msg(format!(
                        "Machine \"{name}\" is already {}.",
                        wanted.to_string().to_lowercase()
                    )));
                }
            }
            if op != "start" {
                crate::remote::close_shared_connections(&host.dir());
            }
            let r = match op {
                "start" => host.start().await,
                "stop" => host.stop().await,
                "restart" => host.restart().await,
                _ => host.kill().await,
            };
            r.map_err(|e| ctx.err(&format!("Error {} machine {name}", doing.to_lowercase()), &e))?;
            outln!("Machine \"{name}\" was {done}.");
            if matches!(op, "start" | "restart") && host.driver().needs_provisioning() {
                moved = true;
                // Certificates follow the address: a machine that came back
                // with an address its server certificate does not cover gets a new one.
                if let Err(HostError::CertCheck { address, .. }) = host.check_certs().await {
                    outln!("The server certificate does not cover {address} any more; regenerating it.");
                    let steps = Steps::new(&name, false);
                    let r = host.regenerate_certs(false, &|s: &str| steps.step(s)).await;
                    steps.finish(r.is_ok());
                    r.map_err(|e| ctx.err(&format!("Error regenerating the certificates of machine {name}"), &e))?;
                }
            }
            Ok::<(), CliError>(())
        }
        .await;
        if let Err(e) = r {
            errors.push(e);
        }
    }
    if moved {
        outln!(
            "{} machines may have new IP addresses. You may need to re-run the `{} env` command.",
            if op == "start" {
                "Started"
            } else {
                "Restarted"
            },
            ctx.prog
        );
    }
    consolidate(errors)
}
