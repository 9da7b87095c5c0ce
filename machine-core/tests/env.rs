//! `env` output: golden files for every shell, and round trips through the
//! real shells (bash, sh, dash, zsh, tcsh, fish, nu) with hostile values.
//!
//! A round trip needs the shell's binary. When one is missing the test
//! prints `SKIPPED: …` and passes, except when CI is set
//! (`machine_test_support::ci_is_set`), where it fails.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use machine_core::env::{render, render_unset, MachineEnv, Shell};

const HOST: &str = "tcp://192.168.99.100:2376";
const CERT: &str = "/home/user/.docker/machine/machines/dev";
const NAME: &str = "dev";
const IP: &str = "192.168.99.100";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/env")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn extension(shell: Shell) -> &'static str {
    match shell {
        Shell::Nushell => "nu",
        other => other.as_str(),
    }
}

/// The command line a user of `shell` would have typed.
fn command_line(shell: Shell, no_proxy: bool, tail: &str) -> String {
    let mut line = String::from("docker-machine env");
    if shell != Shell::Bash {
        line.push_str(" --shell ");
        line.push_str(extension(shell));
    }
    if no_proxy {
        line.push_str(" --no-proxy");
    }
    line.push(' ');
    line.push_str(tail);
    line
}

fn golden_set(no_proxy: bool) {
    for shell in Shell::ALL {
        let mut env = MachineEnv::new(NAME, HOST, CERT, true);
        if no_proxy {
            env = env.with_no_proxy(IP, None, Some("localhost"));
        }
        let hint = command_line(shell, no_proxy, NAME);
        let got = render(&env, shell, Some(&hint)).expect("render");
        let file = format!(
            "{}.{}",
            if no_proxy { "set-no-proxy" } else { "set" },
            extension(shell)
        );
        assert_eq!(got, fixture(&file), "{file}");
    }
}

fn golden_unset(no_proxy: bool) {
    for shell in Shell::ALL {
        let env = MachineEnv::unset(no_proxy, false);
        let hint = command_line(shell, no_proxy, "-u");
        let file = format!(
            "{}.{}",
            if no_proxy { "unset-no-proxy" } else { "unset" },
            extension(shell)
        );
        let expected = fixture(&file);
        assert_eq!(
            render(&env, shell, Some(&hint)).expect("render"),
            expected,
            "{file}"
        );
        assert_eq!(
            render_unset(&env.clear, shell, Some(&hint)).expect("render_unset"),
            expected,
            "{file}"
        );
    }
}

#[test]
fn env_golden_set_every_shell() {
    golden_set(false);
}

#[test]
fn env_golden_set_with_no_proxy_every_shell() {
    golden_set(true);
}

#[test]
fn env_golden_unset_every_shell() {
    golden_unset(false);
}

#[test]
fn env_golden_unset_with_no_proxy_every_shell() {
    golden_unset(true);
}

#[test]
fn env_golden_without_hint_is_only_the_variable_lines() {
    let env = MachineEnv::new(NAME, HOST, CERT, true);
    for shell in Shell::ALL {
        let full = fixture(&format!("set.{}", extension(shell)));
        let body: String = if shell == Shell::Json {
            full
        } else {
            full.lines().take(4).map(|l| format!("{l}\n")).collect()
        };
        assert_eq!(render(&env, shell, None).expect("render"), body, "{shell}");
    }
}

// ---------------------------------------------------------------------------
// Real shells
// ---------------------------------------------------------------------------

/// Find `name` on PATH. Missing: fail when CI is set, else say so and skip.
fn require(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        machine_test_support::skip_or_fail(
            &format!("the `{name}` shell is not installed"),
            "scripts/test.sh installs every shell these tests run",
        );
    }
    found
}

/// Values that each break the original's unescaped double-quoted output.
/// `exact` adds line breaks, tabs and runs of spaces, which only the
/// `source` and quoted `eval` forms keep.
fn hostile_env(exact: bool) -> MachineEnv {
    let host = if exact {
        "tcp://\"q\" $HOME ${PATH} $(id) `id` a\tb  c ; echo pwned #"
    } else {
        "tcp://\"q\" $HOME ${PATH} $(id) `id` a b ; echo pwned #"
    };
    let cert = "/tmp/it's a \"dir\"/''/'''/\\/back\\slash\\'/!bang/\\!/!!/trailing\\";
    let name = "!x '!' \\' \\\\ é “smart” ‘quotes’ ~ * ? [a] {b,c} end\\";
    let mut env = MachineEnv::new(name, host, cert, true)
        .with_no_proxy(
            IP,
            None,
            Some("localhost, *.local ~ {a,b} [x] ;&|<> #c %PATH% ^&"),
        )
        .with_var("MACHINE_TEST_PLAIN", "/plain/path with spaces")
        .expect("name")
        .with_var("MACHINE_TEST_EMPTY", "")
        .expect("name")
        .with_var("MACHINE_TEST_QUOTE", "'")
        .expect("name")
        .with_var("MACHINE_TEST_BANG", "!")
        .expect("name")
        .with_var("MACHINE_TEST_HISTORY", "a !! b !x !-1 c!d")
        .expect("name")
        .with_var("MACHINE_TEST_BRACES", "{ } {} {a} {a,b} }{ x{ }y")
        .expect("name")
        .with_var("MACHINE_TEST_GLOB", "a * ? [abc] ~ ~/x *.local")
        .expect("name");
    if exact {
        env = env
            .with_var(
                "MACHINE_TEST_MULTI",
                "line1\nline2\n\n 'q' \"d\" $x `y` \\\n! \r end\n",
            )
            .expect("name")
            .with_var("MACHINE_TEST_CTRL", "bell\u{7} esc\u{1b} tab\t del\u{7f}")
            .expect("name");
    }
    env
}

/// Values that survive the unquoted `eval $(...)` word splitting: no runs of
/// whitespace, no line breaks, no glob characters.
fn word_safe_env() -> MachineEnv {
    MachineEnv::new(
        "!x'!'\\'\\\\é“smart”‘quotes’{a,b}end\\",
        "tcp://\"q\"$HOME${PATH}$(id)`id`;echo pwned #x",
        "/tmp/it's a \"dir\"/''/'''/\\/back\\slash\\'/!bang/\\!/!!/trailing\\",
        true,
    )
    .with_no_proxy(IP, Some("localhost,.local;&|<>#c"), None)
}

fn write_output(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write output");
    path
}

/// Run a shell with a small, fixed environment plus `extra`, and return the
/// environment its last command (`env -0`) printed.
fn run(program: &Path, args: &[&str], extra: &[(String, String)]) -> HashMap<String, String> {
    run_with_input(program, args, extra, None)
}

/// [`run`], feeding `input` on standard input.
fn run_with_input(
    program: &Path,
    args: &[&str],
    extra: &[(String, String)],
    input: Option<&str>,
) -> HashMap<String, String> {
    let home = std::env::temp_dir();
    // A working directory where stray globs would match something.
    let cwd = tempfile::tempdir().expect("tempdir");
    for file in ["a", "b", "c", "end", "x.local"] {
        std::fs::write(cwd.path().join(file), "").expect("write");
    }
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd.path())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("USER", "tester")
        .env("TERM", "dumb")
        .env("LANG", "C.UTF-8");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\nstderr: {stderr}",
        program.display(),
        out.status
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 environment");
    stdout
        .split('\0')
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn assert_all_set(shell: &str, got: &HashMap<String, String>, env: &MachineEnv) {
    for (name, value) in &env.vars {
        assert_eq!(got.get(name), Some(value), "{shell}: {name}");
    }
    assert!(!got.contains_key("pwned"));
}

fn assert_all_gone(shell: &str, got: &HashMap<String, String>, names: &[String]) {
    for name in names {
        assert!(
            !got.contains_key(name),
            "{shell}: {name} still set to {:?}",
            got.get(name)
        );
    }
}

/// The hint line of a rendered output, without its comment marker.
fn hint_line(text: &str, comment: &str) -> String {
    let last = text.lines().last().expect("hint line");
    last.strip_prefix(comment)
        .and_then(|l| l.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no hint in {last:?}"))
        .to_string()
}

/// The variables of `env` as a process environment, to check that unset
/// output removes them.
fn preset(env: &MachineEnv) -> Vec<(String, String)> {
    env.vars.clone()
}

fn posix_round_trip(program_name: &str, extra_args: &[&str]) {
    let Some(program) = require(program_name) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");

    // Sourced and `eval "$(...)"`: every value, line breaks included.
    let env = hostile_env(true);
    let file = write_output(
        dir.path(),
        "set.sh",
        &render(&env, Shell::Bash, Some("echo docker-machine env")).expect("render"),
    );
    let file = file.to_str().expect("path");
    for script in [
        ". \"$1\" && exec env -0",
        "eval \"$(cat \"$1\")\" && exec env -0",
    ] {
        let mut args: Vec<&str> = extra_args.to_vec();
        args.extend(["-c", script, program_name, file]);
        assert_all_set(program_name, &run(&program, &args, &[]), &env);
    }

    // The hint exactly as printed: unquoted `eval $(...)`.
    let env = word_safe_env();
    let path = dir.path().join("word.sh");
    let command = format!("cat {}", path.display());
    let text = render(&env, Shell::Bash, Some(&command)).expect("render");
    std::fs::write(&path, &text).expect("write");
    let script = format!("{} && exec env -0", hint_line(&text, "#"));
    let mut args: Vec<&str> = extra_args.to_vec();
    args.extend(["-c", &script]);
    assert_all_set(program_name, &run(&program, &args, &[]), &env);

    // Unset, with the variables present beforehand.
    let env = hostile_env(true).with_compose_convert_windows_paths();
    let unset = MachineEnv::unset(true, false);
    let file = write_output(
        dir.path(),
        "unset.sh",
        &render(&unset, Shell::Bash, Some("echo x")).expect("render"),
    );
    let file = file.to_str().expect("path");
    let mut args: Vec<&str> = extra_args.to_vec();
    args.extend([
        "-c",
        "eval \"$(cat \"$1\")\" && exec env -0",
        program_name,
        file,
    ]);
    let got = run(&program, &args, &preset(&env));
    assert_all_gone(program_name, &got, &unset.clear);
    assert_eq!(
        got.get("MACHINE_TEST_PLAIN").map(String::as_str),
        Some("/plain/path with spaces")
    );
}

#[test]
fn env_bash_evaluates_hostile_values_literally() {
    posix_round_trip("bash", &["--norc", "--noprofile"]);
}

#[test]
fn env_sh_evaluates_hostile_values_literally() {
    posix_round_trip("sh", &[]);
}

#[test]
fn env_dash_evaluates_hostile_values_literally() {
    posix_round_trip("dash", &[]);
}

#[test]
fn env_zsh_evaluates_hostile_values_literally() {
    posix_round_trip("zsh", &["-f"]);
}

#[test]
fn env_zsh_with_rc_quotes_evaluates_hostile_values_literally() {
    posix_round_trip("zsh", &["-f", "-o", "rcquotes"]);
}

/// Type the output into an interactive shell, where history expansion is
/// on and `!` in double quotes would be replaced.
fn pasted_round_trip(program_name: &str, args: &[&str]) {
    let Some(program) = require(program_name) else {
        return;
    };
    // Without tabs, which an interactive line editor takes as completion.
    let env = hostile_env(false);
    let mut input = render(&env, Shell::Bash, Some("echo docker-machine env")).expect("render");
    input.push_str("exec env -0\n");
    let got = run_with_input(&program, args, &[], Some(&input));
    assert_all_set(program_name, &got, &env);
}

#[test]
fn env_bash_pasted_interactively_keeps_values() {
    pasted_round_trip("bash", &["--norc", "--noprofile", "-i"]);
}

#[test]
fn env_zsh_pasted_interactively_keeps_values() {
    pasted_round_trip("zsh", &["-f", "-i"]);
}

#[test]
fn env_tcsh_evaluates_hostile_values_literally() {
    let Some(tcsh) = require("tcsh") else { return };
    let dir = tempfile::tempdir().expect("tempdir");

    // Sourced: every value, line feeds included.
    let env = hostile_env(true);
    let file = write_output(
        dir.path(),
        "set.csh",
        &render(&env, Shell::Tcsh, Some("echo docker-machine env")).expect("render"),
    );
    let script = format!("source {} && env -0", file.display());
    assert_all_set(
        "tcsh source",
        &run(&tcsh, &["-f", "-c", &script], &[]),
        &env,
    );

    // The hint exactly as printed: eval `...` (which turns line feeds into
    // spaces, so values without them).
    let env = hostile_env(false);
    let path = dir.path().join("eval.csh");
    let command = format!("cat {}", path.display());
    let text = render(&env, Shell::Tcsh, Some(&command)).expect("render");
    std::fs::write(&path, &text).expect("write");
    let script = format!("{} && env -0", hint_line(&text, ":"));
    assert_all_set("tcsh eval", &run(&tcsh, &["-f", "-c", &script], &[]), &env);

    // Unset.
    let preset_env = hostile_env(false);
    let unset = MachineEnv::unset(true, true);
    let path = dir.path().join("unset.csh");
    let command = format!("cat {}", path.display());
    let text = render(&unset, Shell::Tcsh, Some(&command)).expect("render");
    std::fs::write(&path, &text).expect("write");
    let script = format!("{} && env -0", hint_line(&text, ":"));
    let mut extra = preset(&preset_env);
    extra.push(("no_proxy".into(), "example.com".into()));
    let got = run(&tcsh, &["-f", "-c", &script], &extra);
    assert_all_gone("tcsh unset", &got, &unset.clear);
}

#[test]
fn env_fish_evaluates_hostile_values_literally() {
    let Some(fish) = require("fish") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let env = hostile_env(true);

    // The hint exactly as printed: eval (...), which joins lines, so every
    // value must sit on one line.
    let path = dir.path().join("set.fish");
    let command = format!("cat {}", path.display());
    let text = render(&env, Shell::Fish, Some(&command)).expect("render");
    std::fs::write(&path, &text).expect("write");
    assert_eq!(text.lines().count(), env.vars.len() + 2);
    let script = format!("{}; and env -0", hint_line(&text, "#"));
    assert_all_set("fish eval", &run(&fish, &["-N", "-c", &script], &[]), &env);

    let script = format!("source {}; and env -0", path.display());
    assert_all_set(
        "fish source",
        &run(&fish, &["-N", "-c", &script], &[]),
        &env,
    );

    // Unset.
    let unset = MachineEnv::unset(true, false);
    let path = dir.path().join("unset.fish");
    let command = format!("cat {}", path.display());
    let text = render(&unset, Shell::Fish, Some(&command)).expect("render");
    std::fs::write(&path, &text).expect("write");
    let script = format!("{}; and env -0", hint_line(&text, "#"));
    let got = run(&fish, &["-N", "-c", &script], &preset(&env));
    assert_all_gone("fish unset", &got, &unset.clear);
}

#[test]
fn env_nushell_evaluates_hostile_values_literally() {
    let Some(nu) = require("nu") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let env = hostile_env(true);

    // The hint exactly as printed, reading the output from a file.
    let path = dir.path().join("set.nu");
    let command = format!("open --raw {}", path.display());
    let text = render(&env, Shell::Nushell, Some(&command)).expect("render");
    std::fs::write(&path, &text).expect("write");
    let script = format!("{}; ^env -0", hint_line(&text, "#"));
    assert_all_set("nu hint", &run(&nu, &["-n", "-c", &script], &[]), &env);

    // The saved output sourced as code.
    let script = format!("source {}; ^env -0", path.display());
    assert_all_set("nu source", &run(&nu, &["-n", "-c", &script], &[]), &env);

    // Unset through the hint, and sourced, including a variable not present.
    let unset = MachineEnv::unset(true, true);
    let path = dir.path().join("unset.nu");
    let command = format!("open --raw {}", path.display());
    let text = render(&unset, Shell::Nushell, Some(&command)).expect("render");
    std::fs::write(&path, &text).expect("write");
    for script in [
        format!("{}; ^env -0", hint_line(&text, "#")),
        format!("source {}; ^env -0", path.display()),
    ] {
        let got = run(&nu, &["-n", "-c", &script], &preset(&env));
        assert_all_gone("nu unset", &got, &unset.clear);
    }
}

#[test]
fn env_json_round_trips_hostile_values() {
    let env = hostile_env(true);
    let text = render(&env, Shell::Json, Some("ignored")).expect("render");
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("json");
    let got: Vec<(String, String)> = parsed
        .into_iter()
        .map(|(k, v)| (k, v.as_str().expect("string").to_string()))
        .collect();
    assert_eq!(got, env.vars);
}
