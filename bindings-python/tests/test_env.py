"""Environment rendering, checked against the project's golden files
(tests/fixtures/env, rendered there for a machine `dev` at 192.168.99.100
whose certificates are in /home/user/.docker/machine/machines/dev)."""

import json
import os
import subprocess

import pytest

import docker_machine
from conftest import REPO, none_machine

GOLDEN = REPO / "tests" / "fixtures" / "env"
SHELLS = ["bash", "fish", "powershell", "cmd", "tcsh", "emacs", "json", "nu"]
GOLDEN_CERT_PATH = "/home/user/.docker/machine/machines/dev"


def hand_written_machine(store, name="dev", url="tcp://192.168.99.100:2376"):
    """Write a `none` machine's config.json by hand, from the v3 fixture."""
    with open(REPO / "tests" / "fixtures" / "config" / "v3-none.json") as f:
        cfg = json.load(f)
    cfg["Name"] = cfg["Driver"]["MachineName"] = name
    cfg["Driver"]["URL"] = url
    d = store.path / "machines" / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(cfg, indent=4))
    return store.get(name)


def golden(case, shell, cert_path):
    """The golden text without its usage hint (the bindings print none)."""
    lines = (GOLDEN / f"{case}.{shell}").read_text().splitlines()
    if len(lines) >= 2 and "Run this command to configure your shell" in lines[-2]:
        lines = lines[:-2]
    return "\n".join(lines).replace(GOLDEN_CERT_PATH, cert_path)


@pytest.fixture
def dev(store, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "localhost")
    return hand_written_machine(store)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", ["set", "set-no-proxy", "unset", "unset-no-proxy"])
def test_env_matches_the_golden_files(dev, store, shell, case):
    text = dev.env(shell=shell, unset=case.startswith("unset"), no_proxy=case.endswith("no-proxy"))
    cert_path = str(store.path / "machines" / "dev")
    assert text.rstrip("\n") == golden(case, shell, cert_path)


def test_env_vars_of_a_hand_written_machine(dev, store):
    assert dev.driver_name == "none"
    assert dev.url() == "tcp://192.168.99.100:2376"
    assert dev.env_vars() == {
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_HOST": "tcp://192.168.99.100:2376",
        "DOCKER_CERT_PATH": str(store.path / "machines" / "dev"),
        "DOCKER_MACHINE_NAME": "dev",
    }
    # dicts keep docker-machine's order
    assert list(dev.env_vars())[0] == "DOCKER_TLS_VERIFY"


def test_no_proxy_lower_case_wins(dev, monkeypatch):
    monkeypatch.setenv("no_proxy", "example.org")
    text = dev.env(no_proxy=True)
    assert 'export no_proxy="example.org,192.168.99.100"' in text
    assert "NO_PROXY" not in text


def test_default_shell_is_bash_and_aliases(dev):
    assert dev.env() == dev.env(shell="bash") == dev.env(shell="zsh") == dev.env(shell="sh")
    assert dev.env(shell="pwsh") == dev.env(shell="powershell")


def test_unknown_shell(dev):
    with pytest.raises(docker_machine.InvalidOptionError) as ei:
        dev.env(shell="klingon")
    assert "klingon" in str(ei.value)


def test_bash_output_evaluates_in_bash(tmp_path):
    store = docker_machine.Store(tmp_path / "a store's $HOME dir")
    m = none_machine(store, name="dev.1")
    script = m.env() + 'printf "%s|%s|%s" "$DOCKER_HOST" "$DOCKER_CERT_PATH" "$DOCKER_MACHINE_NAME"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == f"tcp://127.0.0.1:2376|{store.path / 'machines' / 'dev.1'}|dev.1"
