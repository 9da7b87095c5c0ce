//! `ssh`, `scp` and `mount`: the system's OpenSSH tools (ssh, scp, rsync,
//! sshfs) run with the machine's key and its pinned host key, so every
//! connection is checked like the library's own. `--native-ssh` runs commands
//! over the built-in client instead.

use crate::error::{CliError, CliResult};
use crate::Ctx;
use clap::ArgMatches;
use machine_core::driver::SshTarget;
use machine_core::ssh::known_hosts;
use machine_core::{Host, State};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Find `prog` on `$PATH`.
fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// A value for an `-o Key=Value` option: double-quoted when it has blanks.
fn opt_value(v: &str) -> String {
    if v.contains([' ', '\t']) {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

/// Check a user and host before they reach a command line (as ssh would read
/// a user starting with `-` as an option).
fn check_target(user: &str, host: &str) -> Result<(), machine_core::ssh::SshError> {
    machine_core::ssh::check_user(user)?;
    machine_core::ssh::check_host(host)
}

/// A machine reachable over SSH, with its connection details.
struct Remote {
    host: Host,
    target: SshTarget,
}

impl Remote {
    /// Load `name`, check it has SSH access, and make sure its host key is
    /// pinned (the library pins it on its first connection).
    async fn open(ctx: &Ctx, name: &str) -> CliResult<Remote> {
        let host = ctx.load(name)?;
        let target = host.driver().ssh_target().ok_or_else(|| {
            CliError::msg(format!(
                "Error: machine {name} (driver {}) has no SSH access",
                host.driver_name()
            ))
        })?;
        check_target(&target.user, &target.host)
            .map_err(|e| CliError::msg(format!("Error: machine {name}: {e}")))?;
        Ok(Remote { host, target })
    }

    async fn ensure_pinned(&self, ctx: &Ctx) -> CliResult<()> {
        let dir = self.host.dir();
        let pinned = known_hosts::read(&dir, &self.target.host, self.target.port)
            .ok()
            .flatten()
            .is_some();
        if !pinned {
            tracing::debug!(
                machine = self.host.name(),
                "no pinned host key yet: connecting once to pin it"
            );
            let c = self
                .host
                .connect()
                .await
                .map_err(|e| ctx.err("Error connecting over SSH", &e))?;
            c.close().await;
        }
        Ok(())
    }

    /// `-o` options shared by ssh, scp, rsync's ssh and sshfs.
    fn options(&self) -> Vec<String> {
        self.options_sharing(None)
    }

    /// [`Self::options`], with the connection shared through the control
    /// socket `control` when one is given (see [`Self::control_path`]).
    fn options_sharing(&self, control: Option<&Path>) -> Vec<String> {
        let kh = known_hosts::path(&self.host.dir());
        let mut o = vec![
            format!("UserKnownHostsFile={}", opt_value(&kh.to_string_lossy())),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            "PasswordAuthentication=no".to_string(),
            "KbdInteractiveAuthentication=no".to_string(),
            // whatever ~/.ssh/config says: the machine gets no agent or display
            "ForwardAgent=no".to_string(),
            "ForwardX11=no".to_string(),
            "LogLevel=ERROR".to_string(),
            "ConnectTimeout=15".to_string(),
        ];
        match control {
            Some(path) => o.extend([
                "ControlMaster=auto".to_string(),
                format!("ControlPath={}", path.to_string_lossy()),
                format!("ControlPersist={CONTROL_PERSIST_SECS}"),
                // a machine that vanished ends the shared connection
                "ServerAliveInterval=10".to_string(),
                "ServerAliveCountMax=3".to_string(),
            ]),
            None => o.extend([
                "ControlMaster=no".to_string(),
                "ControlPath=none".to_string(),
            ]),
        }
        if self.target.key_path.is_some() {
            o.push("IdentitiesOnly=yes".to_string());
        }
        o
    }

    /// The control socket through which OpenSSH shares one connection to
    /// this machine between `ssh NAME COMMAND` runs: in the machine's own
    /// directory (private, 0700), named after everything the connection was
    /// made with (user, address, port, key and the pinned host key), so a
    /// re-pinned key or a new address never reuses a connection made under
    /// the old one. `None` (no sharing) when the directory is not private or
    /// the path would not fit a socket address or an ssh option.
    fn control_path(&self) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::PermissionsExt;
        let dir = self.host.dir();
        let meta = std::fs::metadata(&dir).ok()?;
        if !meta.is_dir() || meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
        let pin = std::fs::read(known_hosts::path(&dir)).ok()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &self.target.user,
            &self.target.host,
            self.target.port,
            &self.target.key_path,
            pin,
        )
            .hash(&mut h);
        let path = dir.join(format!("{CONTROL_PREFIX}{:016x}.sock", h.finish()));
        let text = path.to_str()?;
        // ssh adds a 17-character suffix while it sets the socket up; a
        // socket address holds 107 bytes; `%` would be expanded by ssh
        let plain = text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'"' | b'\\' | b'\''));
        (plain && text.len() + 17 < 107).then_some(path)
    }

    /// Arguments for `ssh`/`scp`: `-o` options and the key (`-i`).
    fn ssh_args(&self) -> Vec<String> {
        self.ssh_args_sharing(None)
    }

    /// [`Self::ssh_args`] with [`Self::options_sharing`].
    fn ssh_args_sharing(&self, control: Option<&Path>) -> Vec<String> {
        let mut a = Vec::new();
        for o in self.options_sharing(control) {
            a.push("-o".to_string());
            a.push(o);
        }
        if let Some(k) = &self.target.key_path {
            a.push("-i".to_string());
            a.push(k.to_string_lossy().into_owned());
        }
        a
    }

    fn host_part(&self) -> String {
        if self.target.host.contains(':') {
            format!("[{}]", self.target.host)
        } else {
            self.target.host.clone()
        }
    }

    /// `user@host:path`.
    fn location(&self, user: Option<&str>, path: &str) -> String {
        format!(
            "{}@{}:{path}",
            user.unwrap_or(&self.target.user),
            self.host_part()
        )
    }

    /// After a failed `ssh`/`scp`/`sshfs` (status 255), find out whether a
    /// changed host key was the cause and say how to re-pin it.
    async fn explain_failure(&self, ctx: &Ctx) -> Option<CliError> {
        match self.host.connect().await {
            Err(e) if e.code() == machine_core::ErrorCode::HostKeyMismatch => {
                Some(ctx.err("Error", &e))
            }
            Ok(c) => {
                c.close().await;
                None
            }
            Err(_) => None,
        }
    }
}

fn log_command(cmd: &Command) {
    tracing::debug!(command = ?cmd, "running");
}

fn run_status(mut cmd: Command, what: &str) -> CliResult<i32> {
    log_command(&cmd);
    let status = cmd
        .status()
        .map_err(|e| CliError::msg(format!("Error running {what}: {e}")))?;
    Ok(status.code().unwrap_or(255))
}

pub(crate) async fn ssh(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let name = ctx.target(m.get_one("name"))?;
    let remote = Remote::open(ctx, &name).await?;
    if m.get_flag("repin") {
        remote
            .host
            .forget_host_key()
            .map_err(|e| ctx.err("Error forgetting the host key", &e))?;
    }
    let state = remote
        .host
        .state()
        .await
        .map_err(|e| ctx.err("Error", &e))?;
    if state != State::Running && state != State::Error {
        return Err(CliError::msg(format!(
            "Error: Cannot run SSH command: Host \"{name}\" is not running"
        )));
    }
    let words: Vec<String> = m
        .get_many::<String>("command")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let (options, words) = split_ssh_options(&words);
    let command = words.join(" ");
    let system = which("ssh");
    if !options.is_empty() && system.is_none() {
        return Err(CliError::msg(format!(
            "Error: the ssh options {} need the ssh client (openssh-client)",
            options.join(" ")
        )));
    }
    if !command.is_empty() && options.is_empty() && (ctx.native_ssh || system.is_none()) {
        let out = remote
            .host
            .ssh(&command)
            .await
            .map_err(|e| ctx.err("Error", &e))?;
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(&out.stdout);
        let _ = so.flush();
        let mut se = std::io::stderr().lock();
        let _ = se.write_all(&out.stderr);
        let _ = se.flush();
        return Ok(i32::try_from(out.exit_status).unwrap_or(255));
    }
    let Some(ssh) = system else {
        return Err(CliError::msg(
            "Error: an interactive shell needs the ssh client (openssh-client); give a command to run one over the built-in client",
        ));
    };
    if ctx.native_ssh {
        tracing::debug!("the built-in client runs commands only: using the system ssh for the interactive shell");
    }
    remote.ensure_pinned(ctx).await?;
    // A command without ssh options of the user's shares one connection
    // with the runs before and after it (OpenSSH's ControlMaster); an
    // interactive shell gets a connection of its own.
    let control = if !command.is_empty() && options.is_empty() {
        remote.control_path()
    } else {
        None
    };
    let mut cmd = Command::new(ssh);
    // ours first: for -o settings the first value given wins
    cmd.args(remote.ssh_args_sharing(control.as_deref()))
        .arg("-p")
        .arg(remote.target.port.to_string())
        .args(&options)
        .arg("--")
        .arg(format!("{}@{}", remote.target.user, remote.target.host));
    if !command.is_empty() {
        cmd.arg(&command);
    }
    let code = run_status(cmd, "ssh")?;
    if code == 255 {
        if let Some(e) = remote.explain_failure(ctx).await {
            return Err(CliError { code: 255, ..e });
        }
    }
    Ok(code)
}

/// How long a shared SSH connection stays open after its last use, seconds.
const CONTROL_PERSIST_SECS: u32 = 60;
/// The start of a control socket's name in a machine's directory.
const CONTROL_PREFIX: &str = "ssh-control-";

/// End the shared SSH connections to the machine whose directory is `dir`
/// (before it stops, restarts or goes away): each control socket's master
/// is told to exit, and the socket is removed.
pub(crate) fn close_shared_connections(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ssh = which("ssh");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(CONTROL_PREFIX) && name.ends_with(".sock")) {
            continue;
        }
        let path = entry.path();
        if let Some(ssh) = &ssh {
            let mut cmd = Command::new(ssh);
            cmd.arg("-o")
                .arg(format!("ControlPath={}", path.to_string_lossy()))
                .args(["-O", "exit", "machine"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            log_command(&cmd);
            let _ = cmd.status();
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// OpenSSH options that take a value as the next word.
const SSH_OPTIONS_WITH_VALUE: &str = "BbcDEeFIiJLlmOoPpQRSWw";

/// `machine ssh NAME [SSH OPTIONS] [--] [COMMAND]`: the words before the
/// command that start with '-' are options for ssh (with the value of those
/// that take one), as with the original; `--` ends them.
fn split_ssh_options(words: &[String]) -> (Vec<String>, Vec<String>) {
    let mut options = Vec::new();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        if w == "--" {
            i += 1;
            break;
        }
        if !w.starts_with('-') || w == "-" {
            break;
        }
        options.push(w.clone());
        i += 1;
        // `-o Value` (a lone option letter that takes a value)
        let mut letters = w[1..].chars();
        if let (Some(c), None) = (letters.next(), letters.next()) {
            if SSH_OPTIONS_WITH_VALUE.contains(c) {
                if let Some(v) = words.get(i) {
                    options.push(v.clone());
                    i += 1;
                }
            }
        }
    }
    (options, words.get(i..).unwrap_or_default().to_vec())
}

/// One side of `scp`: a local path, or `[user@]machine:path`.
struct Endpoint {
    remote: Option<(Remote, Option<String>)>,
    path: String,
}

async fn endpoint(ctx: &Ctx, arg: &str) -> CliResult<Endpoint> {
    let Some((host_part, path)) = arg.split_once(':') else {
        return Ok(Endpoint {
            remote: None,
            path: arg.to_string(),
        });
    };
    let (user, name) = match host_part.split_once('@') {
        Some((u, n)) => (Some(u.to_string()), n),
        None => (None, host_part),
    };
    if let Some(u) = &user {
        machine_core::ssh::check_user(u)
            .map_err(|e| CliError::msg(format!("Error: {arg}: {e}")))?;
    }
    if name == "localhost" {
        return Ok(Endpoint {
            remote: None,
            path: path.to_string(),
        });
    }
    let r = Remote::open(ctx, name).await?;
    r.ensure_pinned(ctx).await?;
    Ok(Endpoint {
        remote: Some((r, user)),
        path: path.to_string(),
    })
}

impl Endpoint {
    fn arg(&self) -> String {
        match &self.remote {
            Some((r, user)) => r.location(user.as_deref(), &self.path),
            None => self.path.clone(),
        }
    }
}

pub(crate) async fn scp(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let src = endpoint(
        ctx,
        m.get_one::<String>("source")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .await?;
    let dst = endpoint(
        ctx,
        m.get_one::<String>("destination")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .await?;
    let (recursive, delta, quiet) = (
        m.get_flag("recursive"),
        m.get_flag("delta"),
        m.get_flag("quiet"),
    );
    let remotes: Vec<&Remote> = [&src, &dst]
        .iter()
        .filter_map(|e| e.remote.as_ref().map(|(r, _)| r))
        .collect();
    let Some(first) = remotes.first().copied() else {
        return Err(CliError::msg(
            "Error: neither path names a machine (use NAME:PATH)",
        ));
    };
    if let (Some((a, _)), Some((b, _)), false) = (&src.remote, &dst.remote, delta) {
        return scp_between(ctx, (a, &src), (b, &dst), recursive, quiet).await;
    }
    let mut cmd;
    if delta {
        if remotes.len() == 2 {
            return Err(CliError::msg(
                "Error: --delta copies between this computer and one machine",
            ));
        }
        let rsync = which("rsync")
            .ok_or("You must have a copy of the rsync binary locally to use the --delta option")?;
        let mut ssh = vec!["ssh".to_string()];
        ssh.extend(first.ssh_args());
        ssh.push("-p".into());
        ssh.push(first.target.port.to_string());
        let e = ssh
            .iter()
            .map(|a| machine_core::ssh::shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        cmd = Command::new(rsync);
        cmd.arg("-e")
            .arg(e)
            .arg("--links")
            .arg("--perms")
            .arg("--times");
        if recursive {
            cmd.arg("--recursive");
        }
        if quiet {
            cmd.arg("--quiet");
        }
    } else {
        cmd = scp_command(first, recursive, quiet)?;
    }
    // `--`: a local path starting with '-' is a path, not an option
    cmd.arg("--").arg(src.arg()).arg(dst.arg());
    let code = run_status(cmd, if delta { "rsync" } else { "scp" })?;
    if code != 0 {
        for r in &remotes {
            if let Some(e) = r.explain_failure(ctx).await {
                return Err(CliError { code, ..e });
            }
        }
    }
    Ok(code)
}

/// `scp` set up for one machine (its key, pinned host key and port).
fn scp_command(r: &Remote, recursive: bool, quiet: bool) -> CliResult<Command> {
    let scp = which("scp")
        .ok_or("You must have a copy of the scp binary locally to use the scp feature")?;
    let mut cmd = Command::new(scp);
    if recursive {
        cmd.arg("-r");
    }
    if quiet {
        cmd.arg("-q");
    }
    cmd.args(r.ssh_args())
        .arg("-P")
        .arg(r.target.port.to_string());
    Ok(cmd)
}

/// Machine to machine: each machine has its own port, key and pinned host
/// key, which one `scp` run cannot hold apart, so the copy goes through a
/// private local directory in two runs.
async fn scp_between(
    ctx: &Ctx,
    (from, src): (&Remote, &Endpoint),
    (to, dst): (&Remote, &Endpoint),
    recursive: bool,
    quiet: bool,
) -> CliResult<i32> {
    let stage = tempfile::Builder::new()
        .prefix("machine-scp-")
        .tempdir()
        .map_err(|e| CliError::msg(format!("Error: cannot make a local staging directory: {e}")))?;
    let base = src
        .path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty() && *b != "." && *b != "..")
        .unwrap_or("copy");
    let local = stage.path().join(base).to_string_lossy().into_owned();
    for (r, from_arg, to_arg) in [
        (from, src.arg(), local.clone()),
        (to, local.clone(), dst.arg()),
    ] {
        let mut cmd = scp_command(r, recursive, quiet)?;
        cmd.arg("--").arg(from_arg).arg(to_arg);
        let code = run_status(cmd, "scp")?;
        if code != 0 {
            if let Some(e) = r.explain_failure(ctx).await {
                return Err(CliError { code, ..e });
            }
            return Ok(code);
        }
    }
    Ok(0)
}

pub(crate) async fn mount(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let source = m.get_one::<String>("source").cloned().unwrap_or_default();
    let (host_part, path) = match source.split_once(':') {
        Some((h, p)) => (h.to_string(), p.to_string()),
        None => (ctx.target(None)?, source.clone()),
    };
    let (user, name) = match host_part.split_once('@') {
        Some((u, n)) => (Some(u.to_string()), n.to_string()),
        None => (None, host_part),
    };
    if let Some(u) = &user {
        machine_core::ssh::check_user(u)
            .map_err(|e| CliError::msg(format!("Error: {source}: {e}")))?;
    }
    let target = m
        .get_one::<String>("target")
        .cloned()
        .unwrap_or_else(|| path.clone());
    if m.get_flag("unmount") {
        let (prog, args): (PathBuf, Vec<&str>) =
            if let Some(p) = which("fusermount3").or_else(|| which("fusermount")) {
                (p, vec!["-u"])
            } else if let Some(p) = which("umount") {
                (p, vec![])
            } else {
                return Err(CliError::msg(
                "You must have a copy of the fusermount binary locally to use the unmount option",
            ));
            };
        let mut cmd = Command::new(prog);
        cmd.args(args).arg(&target);
        return run_status(cmd, "fusermount");
    }
    let sshfs = which("sshfs")
        .ok_or("You must have a copy of the sshfs binary locally to use the mount feature")?;
    let remote = Remote::open(ctx, &name).await?;
    remote.ensure_pinned(ctx).await?;
    if !Path::new(&target).is_dir() {
        return Err(CliError::msg(format!(
            "Error: mount point {target} is not a directory"
        )));
    }
    let mut cmd = Command::new(sshfs);
    // sshfs runs ssh with -x -a itself and refuses the Forward* options
    for o in remote
        .options()
        .into_iter()
        .filter(|o| !o.starts_with("Forward"))
    {
        cmd.arg("-o").arg(o);
    }
    cmd.arg("-o").arg(format!("Port={}", remote.target.port));
    if let Some(k) = &remote.target.key_path {
        cmd.arg("-o")
            .arg(format!("IdentityFile={}", opt_value(&k.to_string_lossy())));
    }
    // a mount point starting with '-' would read as an option
    let target = if target.starts_with('-') {
        format!("./{target}")
    } else {
        target
    };
    cmd.arg(remote.location(user.as_deref(), &path))
        .arg(&target);
    let code = run_status(cmd, "sshfs")?;
    if code != 0 {
        if let Some(e) = remote.explain_failure(ctx).await {
            return Err(CliError { code, ..e });
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::split_ssh_options;

    fn split(words: &[&str]) -> (Vec<String>, Vec<String>) {
        let w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        split_ssh_options(&w)
    }

    #[test]
    fn options_before_the_command_go_to_ssh() {
        assert_eq!(
            split(&["-C", "echo", "foo"]),
            (vec!["-C".into()], vec!["echo".into(), "foo".into()])
        );
        assert_eq!(
            split(&["-o", "Compression=yes", "-vC", "--", "ls", "-l"]),
            (
                vec!["-o".into(), "Compression=yes".into(), "-vC".into()],
                vec!["ls".into(), "-l".into()]
            )
        );
        // `--` first: everything after it is the command
        assert_eq!(
            split(&["--", "ls", "-lah", "/"]),
            (vec![], vec!["ls".into(), "-lah".into(), "/".into()])
        );
        assert_eq!(
            split(&["df", "-h"]),
            (vec![], vec!["df".into(), "-h".into()])
        );
        assert_eq!(split(&[]), (vec![], vec![]));
    }
}
