//! The `DOCKER_*` environment of a machine, rendered for a shell.
//!
//! A [`MachineEnv`] holds the variables that point a Docker client at one
//! machine, in docker-machine's order; [`render`] turns it into text that the
//! chosen [`Shell`] evaluates, followed by a two-line usage hint.
//!
//! # Output formats
//!
//! | shell | set | unset | comment | hint |
//! |---|---|---|---|---|
//! | [`Shell::Bash`] (also sh, zsh, ksh, dash) | `export X="v"` | `unset X` | `#` | `eval $(CMD)` |
//! | [`Shell::Fish`] | `set -gx X "v";` | `set -e X;` | `#` | `eval (CMD)` |
//! | [`Shell::Powershell`] | `$Env:X = "v"` | `Remove-Item Env:\\X` | `#` | `& CMD \| Invoke-Expression` |
//! | [`Shell::Cmd`] | `SET X=v` | `SET X=` | `REM` | tab, `@FOR /f "tokens=*" %i IN ('CMD') DO @%i` |
//! | [`Shell::Tcsh`] (also csh) | `setenv X "v";` | `unsetenv X;` | `:` | ``eval `CMD` `` |
//! | [`Shell::Emacs`] | `(setenv "X" "v")` | `(setenv "X" nil)` | `;;` | `(with-temp-buffer (shell-command "CMD" (current-buffer)) (eval-buffer))` |
//! | [`Shell::Nushell`] | `$env.X = "v"` | `hide-env --ignore-errors X` | `#` | see [`Shell::Nushell`] |
//! | [`Shell::Json`] | a JSON object | the names mapped to `null` | none | none |
//!
//! Every line ends with `\n`; there are no blank lines. The hint is
//! `<comment> Run this command to configure your shell: ` (with the trailing
//! space) then `<comment> <hint>`. For the first six shells the output is
//! byte-identical to docker-machine 0.16.2 for ordinary values.
//!
//! # Quoting rule
//!
//! docker-machine wrote values between double quotes without escaping them.
//! That form is kept, byte for byte, whenever it reads back literally. A
//! value containing a character the shell would interpret there is written
//! in that shell's literal quoting instead, so that evaluating the output
//! always yields exactly the original value:
//!
//! - bash/sh/zsh: a value with `"`, `$`, `` ` ``, `\` or `!` is written in
//!   single quotes, each `'` as `\'` outside them (`'it'\''s'`).
//! - fish: a value with `"`, `$`, `\` or a control character is written in
//!   single quotes (with `\\` and `\'`), control characters as `\n`, `\t`,
//!   `\r` or `\xHH` between the quoted parts, so the output has one line
//!   per variable.
//! - tcsh: a value with `"`, `$`, `` ` ``, `\`, `!`, a line feed, `{` or `}`
//!   is written in single quotes, `'` as `\'` and `!` as `\!` outside them,
//!   a line feed as `\` + line feed inside them. The same form is used for
//!   a value with a blank and one of `*`, `?`, `[`, `~`. In this form `{`,
//!   `}`, `*`, `?`, `[` and `~` are written as a command substitution such
//!   as ``"`printf '\173'`"``, because ``eval `...` `` brace-expands and
//!   globs the words it reads before any quoting applies.
//! - PowerShell: a value with `"`, `$`, `` ` ``, a typographic double quote
//!   or a line break is written in single quotes (doubling `'` and the
//!   typographic single quotes); line breaks become `"`n"` / `"`r"` joined
//!   with `+`, so each variable stays on one line.
//! - Emacs Lisp: `\` and `"` are backslash-escaped (other values are
//!   unchanged, so this is the original form).
//! - nushell: double quotes with `\\`, `\"`, `\n`, `\r`, `\t` and `\u{..}`
//!   escapes.
//! - cmd: values are written verbatim, as docker-machine did; cmd.exe has
//!   no quoting that makes every character literal. A value with a line
//!   break would start a new command under `FOR /f` and is refused.
//!
//! A NUL character cannot live in an environment variable and is refused
//! for every shell, as are variable names that are not
//! `[A-Za-z_][A-Za-z0-9_]*`.
//!
//! Two limits come from the hint forms themselves, not from the quoting: an
//! unquoted `eval $(CMD)` (bash) word-splits the output, so runs of
//! whitespace and line feeds inside a value collapse to one space (use
//! `eval "$(CMD)"` to keep them); tcsh's ``eval `CMD` `` does the same (use
//! `source` on the saved output to keep them). The unquoted bash form also
//! globs the words it reads, so a blank-separated part of a value holding
//! `*`, `?` or `[` may match file names; the quoted form does not (tcsh is
//! protected by the printf form above). In the tcsh hint line the
//! backquoted command is itself run when the output is evaluated, as with
//! docker-machine.

use std::fmt;
use std::str::FromStr;

/// The variable docker-machine sets to `1` when the daemon requires TLS.
pub const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
/// The daemon URL variable.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// The directory holding `ca.pem`, `cert.pem` and `key.pem`.
pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";
/// The machine name variable.
pub const DOCKER_MACHINE_NAME: &str = "DOCKER_MACHINE_NAME";
/// Set to `true` on Windows hosts by docker-machine.
pub const COMPOSE_CONVERT_WINDOWS_PATHS: &str = "COMPOSE_CONVERT_WINDOWS_PATHS";
/// The lower-case no-proxy variable, preferred when it is set.
pub const NO_PROXY_LOWER: &str = "no_proxy";
/// The upper-case no-proxy variable, used when `no_proxy` is unset or empty.
pub const NO_PROXY_UPPER: &str = "NO_PROXY";

/// First line of the usage hint, after the comment marker.
const HINT_HEADER: &str = "Run this command to configure your shell: ";

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A shell name that is not supported.
    #[error("unknown shell {name:?}")]
    UnknownShell {
        /// The name as given.
        name: String,
    },
    /// A variable name that is not a portable identifier.
    #[error("invalid environment variable name {name:?}")]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// A value that the target shell cannot carry literally.
    #[error("the value of {name} cannot be written for {shell}: {reason}")]
    Unrepresentable {
        /// The variable whose value was refused.
        name: String,
        /// The shell it was rendered for.
        shell: Shell,
        /// Why the value was refused.
        reason: &'static str,
    },
}

/// A shell (or format) the environment can be rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shell {
    /// POSIX shells: bash, sh, zsh, ksh, dash. The default.
    Bash,
    /// The fish shell.
    Fish,
    /// Windows PowerShell and PowerShell 7 (`pwsh`).
    Powershell,
    /// Windows `cmd.exe`.
    Cmd,
    /// tcsh and csh.
    Tcsh,
    /// Emacs Lisp, for `M-x eval-buffer`.
    Emacs,
    /// A JSON object mapping names to values (`null` for variables to
    /// remove). No hint is written.
    Json,
    /// nushell. Set lines are `$env.X = "v"`, unset lines
    /// `hide-env --ignore-errors X`, so the saved output can be `source`d.
    ///
    /// nushell cannot evaluate text read from a pipe, so the hint parses the
    /// output instead:
    ///
    /// ```text
    /// CMD | parse '$env.{name} = {value}' | each {|v| {$v.name: ($v.value | from nuon)} } | into record | load-env
    /// hide-env --ignore-errors ...(CMD | parse 'hide-env --ignore-errors {name}' | get name)
    /// ```
    ///
    /// (the second form for unset output). Values are nushell string
    /// literals, which `from nuon` decodes exactly. The set form of the hint
    /// applies only the `$env.` lines; variables in [`MachineEnv::clear`]
    /// are removed when the output is `source`d.
    Nushell,
}

impl Shell {
    /// Every supported shell, in a stable order.
    pub const ALL: [Shell; 8] = [
        Shell::Bash,
        Shell::Fish,
        Shell::Powershell,
        Shell::Cmd,
        Shell::Tcsh,
        Shell::Emacs,
        Shell::Json,
        Shell::Nushell,
    ];

    /// The canonical name, as accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Fish => "fish",
            Shell::Powershell => "powershell",
            Shell::Cmd => "cmd",
            Shell::Tcsh => "tcsh",
            Shell::Emacs => "emacs",
            Shell::Json => "json",
            Shell::Nushell => "nu",
        }
    }

    /// Choose the shell: an explicit, non-empty `flag` wins and must name a
    /// supported shell; otherwise the basename of `shell_env` (the value of
    /// `$SHELL`; `/` and `\` separators, a `.exe` suffix and a login `-`
    /// prefix are handled) is used; a missing, empty or unrecognised `$SHELL`
    /// gives [`Shell::Bash`], the format docker-machine printed for any shell
    /// it did not know.
    pub fn detect(flag: Option<&str>, shell_env: Option<&str>) -> Result<Shell, EnvError> {
        if let Some(flag) = flag.filter(|f| !f.is_empty()) {
            return flag.parse();
        }
        let Some(path) = shell_env.filter(|s| !s.is_empty()) else {
            return Ok(Shell::Bash);
        };
        let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let base = base.strip_prefix('-').unwrap_or(base);
        let base = match base.len().checked_sub(4) {
            Some(cut) if base.is_char_boundary(cut) && base[cut..].eq_ignore_ascii_case(".exe") => {
                &base[..cut]
            }
            _ => base,
        };
        Ok(base.parse().unwrap_or(Shell::Bash))
    }

    /// The comment marker of the hint lines, if the format has a hint.
    fn comment(self) -> Option<&'static str> {
        match self {
            Shell::Bash | Shell::Fish | Shell::Powershell | Shell::Nushell => Some("#"),
            Shell::Cmd => Some("REM"),
            Shell::Tcsh => Some(":"),
            Shell::Emacs => Some(";;"),
            Shell::Json => None,
        }
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Shell {
    type Err = EnvError;

    /// Parse a shell name, case-insensitively. The empty string, `bash`,
    /// `sh`, `zsh`, `ksh`, `mksh`, `dash` and `ash` give [`Shell::Bash`];
    /// `fish`; `powershell` / `pwsh`; `cmd`; `tcsh` / `csh`; `emacs`;
    /// `json`; `nu` / `nushell`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shell = match s.to_ascii_lowercase().as_str() {
            "" | "bash" | "sh" | "zsh" | "ksh" | "mksh" | "dash" | "ash" => Shell::Bash,
            "fish" => Shell::Fish,
            "powershell" | "pwsh" => Shell::Powershell,
            "cmd" => Shell::Cmd,
            "tcsh" | "csh" => Shell::Tcsh,
            "emacs" => Shell::Emacs,
            "json" => Shell::Json,
            "nu" | "nushell" => Shell::Nushell,
            _ => {
                return Err(EnvError::UnknownShell {
                    name: s.to_string(),
                })
            }
        };
        Ok(shell)
    }
}

/// The variables for one machine, in docker-machine's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MachineEnv {
    /// Variables to set, in output order.
    pub vars: Vec<(String, String)>,
    /// Variables to remove, written before the ones to set.
    pub clear: Vec<String>,
}

impl MachineEnv {
    /// `DOCKER_TLS_VERIFY=1`, `DOCKER_HOST=<docker_host>`,
    /// `DOCKER_CERT_PATH=<cert_path>`, `DOCKER_MACHINE_NAME=<machine_name>`.
    ///
    /// The two TLS variables are set only when `tls_verify` is true;
    /// otherwise they are listed in [`MachineEnv::clear`], so that a shell
    /// previously pointed at a TLS machine does not keep them.
    pub fn new(machine_name: &str, docker_host: &str, cert_path: &str, tls_verify: bool) -> Self {
        let mut env = MachineEnv::default();
        if tls_verify {
            env.vars.push((DOCKER_TLS_VERIFY.into(), "1".into()));
        } else {
            env.clear.push(DOCKER_TLS_VERIFY.into());
        }
        env.vars.push((DOCKER_HOST.into(), docker_host.into()));
        if tls_verify {
            env.vars.push((DOCKER_CERT_PATH.into(), cert_path.into()));
        } else {
            env.clear.push(DOCKER_CERT_PATH.into());
        }
        env.vars
            .push((DOCKER_MACHINE_NAME.into(), machine_name.into()));
        env
    }

    /// Add `COMPOSE_CONVERT_WINDOWS_PATHS=true`, which docker-machine sets on
    /// Windows hosts. It goes after `DOCKER_MACHINE_NAME` and before any
    /// no-proxy variable, where the original printed it.
    pub fn with_compose_convert_windows_paths(mut self) -> Self {
        let at = self
            .vars
            .iter()
            .position(|(name, _)| name == NO_PROXY_LOWER || name == NO_PROXY_UPPER)
            .unwrap_or(self.vars.len());
        self.vars
            .insert(at, (COMPOSE_CONVERT_WINDOWS_PATHS.into(), "true".into()));
        self
    }

    /// Append the no-proxy variable as docker-machine does for `--no-proxy`.
    ///
    /// `no_proxy_lower` and `no_proxy_upper` are the current values of the
    /// process's `no_proxy` and `NO_PROXY`. The variable is `no_proxy` with
    /// its value when that is non-empty, else `NO_PROXY` with its value (or
    /// empty). The machine `ip` is then appended with `,` unless it already
    /// is one of the comma-separated entries; see [`merge_no_proxy`].
    pub fn with_no_proxy(
        mut self,
        ip: &str,
        no_proxy_lower: Option<&str>,
        no_proxy_upper: Option<&str>,
    ) -> Self {
        let (name, current) = match no_proxy_lower.filter(|v| !v.is_empty()) {
            Some(lower) => (NO_PROXY_LOWER, lower),
            None => (NO_PROXY_UPPER, no_proxy_upper.unwrap_or("")),
        };
        self.vars.push((name.into(), merge_no_proxy(current, ip)));
        self
    }

    /// Append one variable, checking that its name is a portable identifier.
    pub fn with_var(mut self, name: &str, value: &str) -> Result<Self, EnvError> {
        check_name(name)?;
        self.vars.push((name.into(), value.into()));
        Ok(self)
    }

    /// The variables `env --unset` removes: the four `DOCKER_*` variables
    /// and, when `no_proxy` is true, the no-proxy variable (`no_proxy` when
    /// `no_proxy_lower_set` says the process's `no_proxy` is non-empty,
    /// else `NO_PROXY`).
    ///
    /// docker-machine also pasted the variable's current value after its
    /// name in this case (`unset NO_PROXYlocalhost`), which no shell reads
    /// as intended; only the name is written here.
    pub fn unset(no_proxy: bool, no_proxy_lower_set: bool) -> Self {
        let mut clear: Vec<String> = [
            DOCKER_TLS_VERIFY,
            DOCKER_HOST,
            DOCKER_CERT_PATH,
            DOCKER_MACHINE_NAME,
        ]
        .iter()
        .map(|name| (*name).to_string())
        .collect();
        if no_proxy {
            clear.push(no_proxy_var(no_proxy_lower_set).to_string());
        }
        MachineEnv {
            vars: Vec::new(),
            clear,
        }
    }
}

/// The no-proxy variable docker-machine uses: `no_proxy` when the
/// process's `no_proxy` is non-empty, else `NO_PROXY`.
pub fn no_proxy_var(no_proxy_lower_set: bool) -> &'static str {
    if no_proxy_lower_set {
        NO_PROXY_LOWER
    } else {
        NO_PROXY_UPPER
    }
}

/// Add `ip` to a comma-separated no-proxy list.
///
/// An empty list becomes `ip`; a list that already has `ip` as one of its
/// entries (surrounding spaces ignored) is returned unchanged; otherwise
/// `,ip` is appended. An empty `ip` leaves the list unchanged. (The original
/// tested for `ip` as a substring, so `10.0.0.1` counted as present in
/// `10.0.0.10`; whole entries are compared here.)
pub fn merge_no_proxy(current: &str, ip: &str) -> String {
    if current.is_empty() {
        return ip.to_string();
    }
    if ip.is_empty() || current.split(',').any(|entry| entry.trim() == ip) {
        return current.to_string();
    }
    format!("{current},{ip}")
}

/// Join a program's arguments into the command line shown in the hint, as
/// docker-machine did: the program path is wrapped in double quotes when it
/// contains a space or a backslash, then everything is joined with spaces.
pub fn hint_command_line<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for (i, arg) in args.into_iter().enumerate() {
        let arg = arg.as_ref();
        if i == 0 {
            if arg.contains([' ', '\\']) {
                out.push('"');
                out.push_str(arg);
                out.push('"');
            } else {
                out.push_str(arg);
            }
        } else {
            out.push(' ');
            out.push_str(arg);
        }
    }
    out
}

/// Render `env` for `shell`: first a removal line for each name in
/// [`MachineEnv::clear`], then an assignment for each of
/// [`MachineEnv::vars`], then, when `hint_command` is given and the format
/// has comments, the two-line usage hint built around it.
///
/// `hint_command` is inserted verbatim (control characters become spaces, so
/// the hint stays on its comment lines). See the module documentation for
/// the formats and the quoting rule. Fails when a name is not a portable
/// identifier or a value cannot be carried by the shell.
pub fn render(
    env: &MachineEnv,
    shell: Shell,
    hint_command: Option<&str>,
) -> Result<String, EnvError> {
    let unset_only = env.vars.is_empty();
    render_parts(&env.clear, &env.vars, shell, hint_command, unset_only)
}

/// Render the removal of `names` for `shell`, followed by the usage hint
/// when `hint_command` is given (see [`render`]).
pub fn render_unset(
    names: &[String],
    shell: Shell,
    hint_command: Option<&str>,
) -> Result<String, EnvError> {
    render_parts(names, &[], shell, hint_command, true)
}

fn render_parts(
    clear: &[String],
    vars: &[(String, String)],
    shell: Shell,
    hint_command: Option<&str>,
    unset_hint: bool,
) -> Result<String, EnvError> {
    for name in clear.iter().chain(vars.iter().map(|(name, _)| name)) {
        check_name(name)?;
    }
    for (name, value) in vars {
        if value.contains('\0') {
            return Err(EnvError::Unrepresentable {
                name: name.clone(),
                shell,
                reason: "it contains a NUL character",
            });
        }
    }

    if shell == Shell::Json {
        return render_json(clear, vars);
    }

    let mut out = String::new();
    for name in clear {
        out.push_str(&unset_line(shell, name));
    }
    for (name, value) in vars {
        out.push_str(&set_line(shell, name, value)?);
    }
    if let (Some(command), Some(comment)) = (hint_command, shell.comment()) {
        let command: String = command
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.push_str(comment);
        out.push(' ');
        out.push_str(HINT_HEADER);
        out.push('\n');
        out.push_str(comment);
        out.push(' ');
        out.push_str(&hint(shell, &command, unset_hint));
        out.push('\n');
    }
    Ok(out)
}

fn render_json(clear: &[String], vars: &[(String, String)]) -> Result<String, EnvError> {
    let mut map = serde_json::Map::new();
    for name in clear {
        map.insert(name.clone(), serde_json::Value::Null);
    }
    for (name, value) in vars {
        map.insert(name.clone(), serde_json::Value::String(value.clone()));
    }
    // Serialising a map of strings cannot fail; fall back to an empty object
    // rather than panic.
    let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(map))
        .unwrap_or_else(|_| "{}".into());
    text.push('\n');
    Ok(text)
}

fn check_name(name: &str) -> Result<(), EnvError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(EnvError::InvalidName {
            name: name.to_string(),
        })
    }
}

fn hint(shell: Shell, command: &str, unset_hint: bool) -> String {
    match shell {
        Shell::Bash | Shell::Json => format!("eval $({command})"),
        Shell::Fish => format!("eval ({command})"),
        Shell::Powershell => format!("& {command} | Invoke-Expression"),
        Shell::Cmd => format!("\t@FOR /f \"tokens=*\" %i IN ('{command}') DO @%i"),
        Shell::Tcsh => format!("eval `{command}`"),
        Shell::Emacs => {
            format!("(with-temp-buffer (shell-command \"{command}\" (current-buffer)) (eval-buffer))")
        }
        Shell::Nushell if unset_hint => format!(
            "hide-env --ignore-errors ...({command} | parse 'hide-env --ignore-errors {{name}}' | get name)"
        ),
        Shell::Nushell => format!(
            "{command} | parse '$env.{{name}} = {{value}}' | each {{|v| {{$v.name: ($v.value | from nuon)}} }} | into record | load-env"
        ),
    }
}

fn unset_line(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Bash | Shell::Json => format!("unset {name}\n"),
        Shell::Fish => format!("set -e {name};\n"),
        Shell::Powershell => format!("Remove-Item Env:\\\\{name}\n"),
        Shell::Cmd => format!("SET {name}=\n"),
        Shell::Tcsh => format!("unsetenv {name};\n"),
        Shell::Emacs => format!("(setenv \"{name}\" nil)\n"),
        Shell::Nushell => format!("hide-env --ignore-errors {name}\n"),
    }
}

fn set_line(shell: Shell, name: &str, value: &str) -> Result<String, EnvError> {
    let line = match shell {
        Shell::Bash | Shell::Json => format!("export {name}={}\n", quote_posix(value)),
        Shell::Fish => format!("set -gx {name} {};\n", quote_fish(value)),
        Shell::Powershell => format!("$Env:{name} = {}\n", quote_powershell(value)),
        Shell::Cmd => {
            if value.contains(['\n', '\r']) {
                return Err(EnvError::Unrepresentable {
                    name: name.to_string(),
                    shell,
                    reason: "cmd.exe cannot carry a line break in a variable",
                });
            }
            // cmd.exe runs `& | < > ^ ( )` in a bare SET line; in the quoted
            // form they are text (plain values keep the original's bare form)
            if value.contains(['&', '|', '<', '>', '^', '(', ')']) {
                format!("SET \"{name}={value}\"\n")
            } else {
                format!("SET {name}={value}\n")
            }
        }
        Shell::Tcsh => format!("setenv {name} {};\n", quote_tcsh(value)),
        Shell::Emacs => format!("(setenv \"{name}\" {})\n", quote_elisp(value)),
        Shell::Nushell => format!("$env.{name} = {}\n", quote_nu(value)),
    };
    Ok(line)
}

fn double_quoted(value: &str) -> String {
    format!("\"{value}\"")
}

/// Single-quote runs of a value for a shell where `'...'` is fully literal
/// and `\'` outside quotes is a quote; no two quotes are ever adjacent, so
/// zsh's RC_QUOTES cannot change the meaning.
fn quote_posix(value: &str) -> String {
    if !value.contains(['"', '$', '`', '\\', '!']) {
        return double_quoted(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut open = false;
    for c in value.chars() {
        if c == '\'' {
            if open {
                out.push('\'');
                open = false;
            }
            out.push_str("\\'");
        } else {
            if !open {
                out.push('\'');
                open = true;
            }
            out.push(c);
        }
    }
    if open {
        out.push('\'');
    }
    out
}

fn quote_fish(value: &str) -> String {
    if !value.contains(['"', '$', '\\']) && !value.chars().any(|c| c.is_ascii_control()) {
        return double_quoted(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut open = false;
    for c in value.chars() {
        if c.is_ascii_control() {
            if open {
                out.push('\'');
                open = false;
            }
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                _ => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            }
        } else {
            if !open {
                out.push('\'');
                open = true;
            }
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                _ => out.push(c),
            }
        }
    }
    if open {
        out.push('\'');
    }
    out
}

/// Characters ``eval `...` `` expands in the words it reads before any
/// quoting applies: braces always, the glob characters in any word that
/// does not start with a quote (a word starts after each blank).
const TCSH_EXPANDED: [char; 6] = ['{', '}', '*', '?', '[', '~'];

/// A double-quoted command substitution that prints `c`; its output is not
/// expanded again.
fn tcsh_printf(c: char) -> Option<&'static str> {
    Some(match c {
        '{' => "\"`printf '\\173'`\"",
        '}' => "\"`printf '\\175'`\"",
        '*' => "\"`printf '\\052'`\"",
        '?' => "\"`printf '\\077'`\"",
        '[' => "\"`printf '\\133'`\"",
        '~' => "\"`printf '\\176'`\"",
        _ => return None,
    })
}

fn quote_tcsh(value: &str) -> String {
    let interpreted = value.contains(['"', '$', '`', '\\', '!', '\n', '{', '}']);
    let globbed = value.contains([' ', '\t']) && value.contains(TCSH_EXPANDED);
    if !interpreted && !globbed {
        return double_quoted(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    let mut open = false;
    for c in value.chars() {
        let outside: Option<&str> = match c {
            '\'' => Some("\\'"),
            '!' => Some("\\!"),
            _ => tcsh_printf(c),
        };
        if let Some(text) = outside {
            if open {
                out.push('\'');
                open = false;
            }
            out.push_str(text);
        } else {
            if !open {
                out.push('\'');
                open = true;
            }
            if c == '\n' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    if open {
        out.push('\'');
    }
    out
}

/// PowerShell treats the typographic quotes as quotes too.
const PS_DOUBLE_QUOTES: [char; 4] = ['"', '\u{201C}', '\u{201D}', '\u{201E}'];
const PS_SINGLE_QUOTES: [char; 5] = ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

fn quote_powershell(value: &str) -> String {
    if !value.contains(PS_DOUBLE_QUOTES) && !value.contains(['$', '`', '\n', '\r']) {
        return double_quoted(value);
    }
    let mut terms: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for c in value.chars() {
        match c {
            '\n' | '\r' => {
                if let Some(run) = current.take() {
                    terms.push(format!("'{run}'"));
                }
                terms.push(if c == '\n' { "\"`n\"" } else { "\"`r\"" }.to_string());
            }
            _ => {
                let run = current.get_or_insert_with(String::new);
                if PS_SINGLE_QUOTES.contains(&c) {
                    run.push(c);
                }
                run.push(c);
            }
        }
    }
    if let Some(run) = current.take() {
        terms.push(format!("'{run}'"));
    }
    if terms.is_empty() {
        return "''".to_string();
    }
    terms.join(" + ")
}

fn quote_elisp(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn quote_nu(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MachineEnv {
        MachineEnv::new(
            "dev",
            "tcp://192.168.99.100:2376",
            "/home/u/.docker/machine/machines/dev",
            true,
        )
    }

    #[test]
    fn shell_names_parse_case_insensitively() {
        for (name, shell) in [
            ("", Shell::Bash),
            ("bash", Shell::Bash),
            ("SH", Shell::Bash),
            ("zsh", Shell::Bash),
            ("dash", Shell::Bash),
            ("fish", Shell::Fish),
            ("PowerShell", Shell::Powershell),
            ("pwsh", Shell::Powershell),
            ("cmd", Shell::Cmd),
            ("tcsh", Shell::Tcsh),
            ("csh", Shell::Tcsh),
            ("emacs", Shell::Emacs),
            ("JSON", Shell::Json),
            ("nu", Shell::Nushell),
            ("nushell", Shell::Nushell),
        ] {
            assert_eq!(name.parse::<Shell>(), Ok(shell), "{name:?}");
        }
        assert_eq!(
            "xonsh".parse::<Shell>(),
            Err(EnvError::UnknownShell {
                name: "xonsh".into()
            })
        );
        for shell in Shell::ALL {
            assert_eq!(shell.as_str().parse::<Shell>(), Ok(shell));
            assert_eq!(shell.to_string(), shell.as_str());
        }
    }

    #[test]
    fn detect_prefers_flag_then_shell_basename() {
        assert_eq!(
            Shell::detect(Some("fish"), Some("/bin/zsh")),
            Ok(Shell::Fish)
        );
        assert_eq!(
            Shell::detect(Some(""), Some("/usr/bin/fish")),
            Ok(Shell::Fish)
        );
        assert_eq!(Shell::detect(None, Some("/bin/tcsh")), Ok(Shell::Tcsh));
        assert_eq!(Shell::detect(None, Some("-zsh")), Ok(Shell::Bash));
        assert_eq!(
            Shell::detect(None, Some(r"C:\Program Files\PowerShell\7\pwsh.EXE")),
            Ok(Shell::Powershell)
        );
        assert_eq!(Shell::detect(None, Some("/opt/bin/nu")), Ok(Shell::Nushell));
        assert_eq!(Shell::detect(None, Some("/usr/bin/xonsh")), Ok(Shell::Bash));
        assert_eq!(Shell::detect(None, Some("")), Ok(Shell::Bash));
        assert_eq!(Shell::detect(None, None), Ok(Shell::Bash));
        assert!(matches!(
            Shell::detect(Some("elvish"), None),
            Err(EnvError::UnknownShell { name }) if name == "elvish"
        ));
    }

    #[test]
    fn new_lists_variables_in_order() {
        let env = sample();
        let names: Vec<&str> = env.vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                DOCKER_TLS_VERIFY,
                DOCKER_HOST,
                DOCKER_CERT_PATH,
                DOCKER_MACHINE_NAME
            ]
        );
        assert_eq!(env.vars[0].1, "1");
        assert!(env.clear.is_empty());
    }

    #[test]
    fn new_without_tls_clears_tls_variables() {
        let env = MachineEnv::new("plain", "tcp://10.0.0.5:2375", "/ignored", false);
        assert_eq!(
            env.vars,
            vec![
                (DOCKER_HOST.to_string(), "tcp://10.0.0.5:2375".to_string()),
                (DOCKER_MACHINE_NAME.to_string(), "plain".to_string()),
            ]
        );
        assert_eq!(
            env.clear,
            vec![DOCKER_TLS_VERIFY.to_string(), DOCKER_CERT_PATH.to_string()]
        );
        let out = render(&env, Shell::Bash, None).expect("render");
        assert_eq!(
            out,
            "unset DOCKER_TLS_VERIFY\nunset DOCKER_CERT_PATH\nexport DOCKER_HOST=\"tcp://10.0.0.5:2375\"\nexport DOCKER_MACHINE_NAME=\"plain\"\n"
        );
    }

    #[test]
    fn no_proxy_prefers_lower_case_variable() {
        let env = sample().with_no_proxy("1.2.3.4", Some("192.168.59.1"), Some("other"));
        assert_eq!(
            env.vars.last(),
            Some(&("no_proxy".to_string(), "192.168.59.1,1.2.3.4".to_string()))
        );
    }

    #[test]
    fn no_proxy_falls_back_to_upper_case_variable() {
        let env = sample().with_no_proxy("1.2.3.4", Some(""), Some("localhost"));
        assert_eq!(
            env.vars.last(),
            Some(&("NO_PROXY".to_string(), "localhost,1.2.3.4".to_string()))
        );
        let env = sample().with_no_proxy("1.2.3.4", None, None);
        assert_eq!(
            env.vars.last(),
            Some(&("NO_PROXY".to_string(), "1.2.3.4".to_string()))
        );
        let env = sample().with_no_proxy("1.2.3.4", None, Some(""));
        assert_eq!(
            env.vars.last(),
            Some(&("NO_PROXY".to_string(), "1.2.3.4".to_string()))
        );
    }

    #[test]
    fn no_proxy_does_not_duplicate_the_ip() {
        assert_eq!(merge_no_proxy("1.2.3.4", "1.2.3.4"), "1.2.3.4");
        assert_eq!(
            merge_no_proxy("localhost,1.2.3.4", "1.2.3.4"),
            "localhost,1.2.3.4"
        );
        assert_eq!(
            merge_no_proxy("localhost, 1.2.3.4 ,x", "1.2.3.4"),
            "localhost, 1.2.3.4 ,x"
        );
        assert_eq!(merge_no_proxy("11.2.3.45", "1.2.3.4"), "11.2.3.45,1.2.3.4");
        assert_eq!(merge_no_proxy("", "1.2.3.4"), "1.2.3.4");
        assert_eq!(merge_no_proxy("localhost", ""), "localhost");
    }

    #[test]
    fn compose_variable_goes_before_no_proxy() {
        let env = sample()
            .with_no_proxy("1.2.3.4", None, None)
            .with_compose_convert_windows_paths();
        let names: Vec<&str> = env.vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                DOCKER_TLS_VERIFY,
                DOCKER_HOST,
                DOCKER_CERT_PATH,
                DOCKER_MACHINE_NAME,
                COMPOSE_CONVERT_WINDOWS_PATHS,
                "NO_PROXY"
            ]
        );
    }

    #[test]
    fn unset_names_follow_the_no_proxy_rule() {
        assert_eq!(MachineEnv::unset(false, true).clear.len(), 4);
        assert_eq!(
            MachineEnv::unset(true, true)
                .clear
                .last()
                .map(String::as_str),
            Some("no_proxy")
        );
        assert_eq!(
            MachineEnv::unset(true, false)
                .clear
                .last()
                .map(String::as_str),
            Some("NO_PROXY")
        );
        assert!(MachineEnv::unset(true, false).vars.is_empty());
    }

    #[test]
    fn hint_command_line_quotes_program_with_space_or_backslash() {
        assert_eq!(
            hint_command_line(["machine", "env", "default"]),
            "machine env default"
        );
        assert_eq!(
            hint_command_line([r"C:\\Program Files\docker-machine.exe", "env", "default"]),
            r#""C:\\Program Files\docker-machine.exe" env default"#
        );
        assert_eq!(hint_command_line(Vec::<String>::new()), "");
    }

    #[test]
    fn hints_match_the_original_forms() {
        let env = MachineEnv::default();
        let cases = [
            (Shell::Bash, "# Run this command to configure your shell: \n# eval $(machine env default)\n"),
            (Shell::Fish, "# Run this command to configure your shell: \n# eval (machine env default)\n"),
            (
                Shell::Powershell,
                "# Run this command to configure your shell: \n# & machine env default | Invoke-Expression\n",
            ),
            (
                Shell::Cmd,
                "REM Run this command to configure your shell: \nREM \t@FOR /f \"tokens=*\" %i IN ('machine env default') DO @%i\n",
            ),
            (Shell::Tcsh, ": Run this command to configure your shell: \n: eval `machine env default`\n"),
            (
                Shell::Emacs,
                ";; Run this command to configure your shell: \n;; (with-temp-buffer (shell-command \"machine env default\" (current-buffer)) (eval-buffer))\n",
            ),
        ];
        for (shell, expected) in cases {
            assert_eq!(
                render(&env, shell, Some("machine env default")).as_deref(),
                Ok(expected),
                "{shell}"
            );
        }
        assert_eq!(
            render(&env, Shell::Json, Some("machine env default")).as_deref(),
            Ok("{}\n")
        );
    }

    #[test]
    fn hint_control_characters_become_spaces() {
        let out =
            render(&MachineEnv::default(), Shell::Bash, Some("m env\nrm -rf x")).expect("render");
        assert_eq!(
            out,
            "# Run this command to configure your shell: \n# eval $(m env rm -rf x)\n"
        );
    }

    #[test]
    fn ordinary_values_keep_the_original_bytes() {
        let env = sample();
        let out = render(&env, Shell::Bash, None).expect("render");
        assert_eq!(
            out,
            "export DOCKER_TLS_VERIFY=\"1\"\nexport DOCKER_HOST=\"tcp://192.168.99.100:2376\"\nexport DOCKER_CERT_PATH=\"/home/u/.docker/machine/machines/dev\"\nexport DOCKER_MACHINE_NAME=\"dev\"\n"
        );
        // Spaces alone need no escaping in any shell.
        for (shell, expected) in [
            (Shell::Bash, "export X=\"a b\"\n"),
            (Shell::Fish, "set -gx X \"a b\";\n"),
            (Shell::Powershell, "$Env:X = \"a b\"\n"),
            (Shell::Cmd, "SET X=a b\n"),
            (Shell::Tcsh, "setenv X \"a b\";\n"),
            (Shell::Emacs, "(setenv \"X\" \"a b\")\n"),
            (Shell::Nushell, "$env.X = \"a b\"\n"),
        ] {
            let env = MachineEnv::default().with_var("X", "a b").expect("name");
            assert_eq!(
                render(&env, shell, None).as_deref(),
                Ok(expected),
                "{shell}"
            );
        }
    }

    #[test]
    fn hostile_values_switch_to_literal_quoting() {
        let value = "it's \"$HOME\" `id` \\ !";
        let env = MachineEnv::default().with_var("X", value).expect("name");
        let cases = [
            (Shell::Bash, "export X='it'\\''s \"$HOME\" `id` \\ !'\n"),
            (Shell::Fish, "set -gx X 'it\\'s \"$HOME\" `id` \\\\ !';\n"),
            (Shell::Powershell, "$Env:X = 'it''s \"$HOME\" `id` \\ !'\n"),
            (Shell::Tcsh, "setenv X 'it'\\''s \"$HOME\" `id` \\ '\\!;\n"),
            (
                Shell::Emacs,
                "(setenv \"X\" \"it's \\\"$HOME\\\" `id` \\\\ !\")\n",
            ),
            (
                Shell::Nushell,
                "$env.X = \"it's \\\"$HOME\\\" `id` \\\\ !\"\n",
            ),
            (Shell::Cmd, "SET X=it's \"$HOME\" `id` \\ !\n"),
        ];
        for (shell, expected) in cases {
            assert_eq!(
                render(&env, shell, None).as_deref(),
                Ok(expected),
                "{shell}"
            );
        }
    }

    #[test]
    fn cmd_values_with_operators_are_quoted_whole() {
        let mut env = sample();
        env.vars[2].1 = "C:\\certs & calc.exe | x > y".into();
        let out = render(&env, Shell::Cmd, None).expect("render");
        assert!(
            out.contains("SET \"DOCKER_CERT_PATH=C:\\certs & calc.exe | x > y\"\n"),
            "{out}"
        );
        // plain values keep the original's bare form
        assert!(out.contains("SET DOCKER_MACHINE_NAME=dev\n"), "{out}");
    }

    #[test]
    fn line_breaks_stay_on_one_line_where_the_hint_needs_it() {
        let env = MachineEnv::default()
            .with_var("X", "a\nb\rc\u{1}")
            .expect("name");
        assert_eq!(
            render(&env, Shell::Fish, None).as_deref(),
            Ok("set -gx X 'a'\\n'b'\\r'c'\\x01;\n")
        );
        assert_eq!(
            render(&env, Shell::Powershell, None).as_deref(),
            Ok("$Env:X = 'a' + \"`n\" + 'b' + \"`r\" + 'c\u{1}'\n")
        );
        assert_eq!(
            render(&env, Shell::Nushell, None).as_deref(),
            Ok("$env.X = \"a\\nb\\rc\\u{1}\"\n")
        );
        assert!(matches!(
            render(&env, Shell::Cmd, None),
            Err(EnvError::Unrepresentable { name, shell: Shell::Cmd, .. }) if name == "X"
        ));
    }

    #[test]
    fn tcsh_braces_come_from_printf() {
        let env = MachineEnv::default().with_var("X", "a{b}").expect("name");
        assert_eq!(
            render(&env, Shell::Tcsh, None).as_deref(),
            Ok("setenv X 'a'\"`printf '\\173'`\"'b'\"`printf '\\175'`\";\n")
        );
        // Other shells keep braces in the plain form.
        assert_eq!(
            render(&env, Shell::Bash, None).as_deref(),
            Ok("export X=\"a{b}\"\n")
        );
    }

    #[test]
    fn powershell_typographic_quotes_are_literal() {
        let env = MachineEnv::default()
            .with_var("X", "\u{201C}a\u{2019}")
            .expect("name");
        assert_eq!(
            render(&env, Shell::Powershell, None).as_deref(),
            Ok("$Env:X = '\u{201C}a\u{2019}\u{2019}'\n")
        );
    }

    #[test]
    fn nul_and_bad_names_are_refused() {
        let env = MachineEnv {
            vars: vec![("X".into(), "a\0b".into())],
            clear: vec![],
        };
        for shell in Shell::ALL {
            assert!(
                matches!(
                    render(&env, shell, None),
                    Err(EnvError::Unrepresentable { .. })
                ),
                "{shell}"
            );
        }
        for name in ["", "1X", "A-B", "A B", "X;rm", "$X", "é"] {
            assert_eq!(
                MachineEnv::default().with_var(name, "v"),
                Err(EnvError::InvalidName { name: name.into() })
            );
            let env = MachineEnv {
                vars: vec![],
                clear: vec![name.to_string()],
            };
            assert!(matches!(
                render(&env, Shell::Bash, None),
                Err(EnvError::InvalidName { .. })
            ));
        }
    }

    #[test]
    fn json_maps_names_to_values_and_null() {
        let env = MachineEnv::new("m", "tcp://h:2375", "/c", false);
        let out = render(&env, Shell::Json, Some("ignored")).expect("render");
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            parsed,
            serde_json::json!({
                "DOCKER_TLS_VERIFY": null,
                "DOCKER_CERT_PATH": null,
                "DOCKER_HOST": "tcp://h:2375",
                "DOCKER_MACHINE_NAME": "m",
            })
        );
        assert!(out.ends_with("}\n"));
    }

    #[test]
    fn errors_read_well() {
        let err = EnvError::UnknownShell { name: "foo".into() };
        assert_eq!(err.to_string(), "unknown shell \"foo\"");
        let err = EnvError::Unrepresentable {
            name: "X".into(),
            shell: Shell::Cmd,
            reason: "r",
        };
        assert_eq!(
            err.to_string(),
            "the value of X cannot be written for cmd: r"
        );
    }
}
