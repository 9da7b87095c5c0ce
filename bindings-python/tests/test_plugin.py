"""Driver plugins from Python: the Go test plugin (tests/goplugin, built
with Debian's golang-go) serves a machine that the `machine` CLI creates and
the package then loads and drives, and the reverse. The plugin is forced over
the built-in name `none` (MACHINE_PLUGIN_DRIVERS), so no provisioning runs:
no test host is needed."""

import os
import shutil
import subprocess

import pytest

import docker_machine
from _testhosts import ci_is_set
from conftest import REPO

MACHINE = REPO / "target" / "debug" / "machine"


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    if shutil.which("go") is None or not MACHINE.exists():
        why = "go (golang-go) and target/debug/machine are needed (scripts/test.sh installs and builds them)"
        if ci_is_set():
            pytest.fail(why)
        pytest.skip(why)
    out = tmp_path / "bin"
    subprocess.run(
        ["go", "build", "-o", str(out / "docker-machine-driver-gotest"), "./cmd/docker-machine-driver-gotest"],
        cwd=REPO / "tests" / "goplugin",
        env={**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOCACHE": str(tmp_path / "gocache")},
        check=True,
        timeout=300,
    )
    (out / "docker-machine-driver-none").symlink_to(out / "docker-machine-driver-gotest")
    monkeypatch.setenv("PATH", f"{out}:{os.environ['PATH']}")
    monkeypatch.setenv("MACHINE_PLUGIN_DRIVERS", "none")
    monkeypatch.setenv("GOTEST_CALL_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("MACHINE_STORAGE_PATH", str(tmp_path / "store"))
    return tmp_path


def cli(*args):
    out = subprocess.run([str(MACHINE), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"machine {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def test_cli_created_plugin_machine_driven_from_python(plugin_env):
    cli("create", "-d", "none", "--none-ip-address", "10.3.3.3", "--none-tags", "p", "cli1")
    store = docker_machine.Store(plugin_env / "store")
    m = store.get("cli1")
    assert m.driver_name == "none"
    assert m.state() == "Running"
    assert m.url() == "tcp://10.3.3.3:2376"
    assert m.ip() == "10.3.3.3"
    m.stop()
    assert m.state() == "Stopped"
    m.start()
    assert m.state() == "Running"
    assert m.inspect()["Driver"]["Tags"] == ["p"]
    store.remove("cli1")
    assert "Remove cli1" in (plugin_env / "calls.log").read_text()
    assert store.names() == []


def test_python_created_plugin_machine_seen_by_the_cli(plugin_env):
    store = docker_machine.Store(plugin_env / "store")
    steps = []
    m = store.create(
        "py1", driver="none", options={"none-ip-address": "10.4.4.4", "none-ssh-port": 2200}, progress=steps.append
    )
    # the plugin's log lines during Create are steps, labelled with the machine's name
    assert [s for s in steps if s.startswith("(py1) ")] == ["(py1) creating the machine", "(py1) machine py1 is created"]
    assert m.state() == "Running"
    assert m.inspect()["Driver"]["SSHPort"] == 2200
    assert cli("ls", "--format", "{{.Name}} {{.State}} {{.URL}}").strip() == "py1 Running tcp://10.4.4.4:2376"
    with pytest.raises(docker_machine.InvalidOptionError):
        store.create("py2", driver="none", options={"none-no-such-flag": "x"})
    store.remove("py1")


def test_a_plugin_and_a_python_driver_are_refused_by_the_same_rule(plugin_env):
    """A plugin goes through the same adapter as Python and JavaScript driver
    objects (machine_core::foreign): an engine port that is no port is refused
    with the same words, before anything is created."""
    store = docker_machine.Store(plugin_env / "store")

    class BadPort:
        engine_port = 70000

        def __init__(self, context, options):
            pass

        def create(self):
            raise AssertionError("not to be called")

        remove = state = ip = create

    store.register_driver("badport", BadPort)
    rule = "is not a port (a whole number in 1..=65535)"
    with pytest.raises(docker_machine.MachineError) as py:
        store.create("bp1", driver="badport")
    with pytest.raises(docker_machine.MachineError) as plugin:
        store.create("bp2", driver="none", options={"none-ip-address": "10.7.7.7", "none-engine-port": 70000})
    assert f"engine_port 70000 {rule}" in str(py.value), str(py.value)
    assert f"EnginePort 70000 {rule}" in str(plugin.value), str(plugin.value)
    assert "Create bp2" not in (plugin_env / "calls.log").read_text()
    assert store.names() == []


def test_plugins_on_path_are_listed_with_the_drivers(plugin_env):
    store = docker_machine.Store(plugin_env / "store")
    drivers = store.drivers()
    assert drivers == sorted(drivers)
    for name in ["gotest", "none", "generic", "qemu"]:
        assert drivers.count(name) == 1, drivers
    # listing started no plugin
    assert not (plugin_env / "calls.log").exists()
