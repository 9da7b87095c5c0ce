"""Store operations on a temporary directory, and the errors they raise."""

import json
import os
import pathlib
import time

import pytest

import docker_machine
from docker_machine import (
    AlreadyExistsError,
    InvalidNameError,
    InvalidOptionError,
    IoError,
    MachineError,
    NotFoundError,
    NotSupportedError,
    SshError,
    UnknownDriverError,
)

from conftest import REPO, none_machine


def test_empty_store(store, tmp_path):
    assert store.names() == []
    assert store.list() == []
    assert store.list(timeout=0.5) == []
    assert store.path == tmp_path / "store"
    assert isinstance(store.path, pathlib.Path)
    assert store.drivers() == ["amazonec2", "generic", "none", "qemu"]
    assert "store" in repr(store)


def test_default_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MACHINE_STORAGE_PATH", str(tmp_path / "elsewhere"))
    assert docker_machine.Store().path == tmp_path / "elsewhere"
    assert docker_machine.Store(None).path == tmp_path / "elsewhere"
    monkeypatch.delenv("MACHINE_STORAGE_PATH")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert docker_machine.Store().path == tmp_path / "home" / ".docker" / "machine"


def test_get_missing_raises_not_found_with_code_and_machine(store):
    with pytest.raises(NotFoundError) as ei:
        store.get("nope")
    e = ei.value
    assert e.code == "NotFound"
    assert e.machine == "nope"
    assert "nope" in str(e)
    assert isinstance(e, MachineError) and isinstance(e, LookupError)
    assert type(e).__module__ == "docker_machine"


def test_remove_missing_raises_not_found(store):
    with pytest.raises(NotFoundError):
        store.remove("ghost")


def test_create_none_machine_and_use_it(store):
    steps = []
    m = store.create("local", driver="none", options={"url": "tcp://127.0.0.1:2376"}, progress=steps.append)
    assert steps[0] == "Creating CA and client certificates"
    assert steps[-1] == "Docker is up and running!"
    assert (m.name, m.driver_name) == ("local", "none")
    assert repr(m) == 'Host(name="local", driver_name="none")'
    assert m.state() == "Running"
    assert m.ip() == "127.0.0.1"
    assert m.url() == "tcp://127.0.0.1:2376"
    assert store.names() == ["local"]
    again = store.get("local")
    assert again.url() == "tcp://127.0.0.1:2376"

    cfg = m.inspect()
    assert list(cfg)[:5] == ["ConfigVersion", "Driver", "DriverName", "HostOptions", "Name"]
    assert cfg["Driver"]["URL"] == "tcp://127.0.0.1:2376"
    assert cfg["DriverName"] == "none"

    flags = m.config()
    certs = os.path.join(store.path, "machines", "local")
    assert flags == [
        "--tlsverify",
        f"--tlscacert={certs}/ca.pem",
        f"--tlscert={certs}/cert.pem",
        f"--tlskey={certs}/key.pem",
        "-H=tcp://127.0.0.1:2376",
    ]

    store.remove("local")
    assert store.names() == []
    assert not os.path.exists(certs)


def test_list_reports_an_unreachable_daemon(store, closed_port):
    none_machine(store, port=closed_port)
    (row,) = store.list(timeout=5)
    assert (row.name, row.driver_name, row.state) == ("local", "none", "Running")
    assert row.url == f"tcp://127.0.0.1:{closed_port}"
    assert row.docker_version == "Unknown"
    assert "not answering" in row.error
    assert row.response_time_ms >= 0
    d = row.to_dict()
    assert list(d) == ["name", "driver_name", "state", "url", "swarm", "docker_version", "error", "response_time_ms"]
    assert d["name"] == "local"
    assert "ListEntry(" in repr(row)


def test_list_bounded_by_timeout(store, silent_port):
    none_machine(store, port=silent_port)
    started = time.monotonic()
    (row,) = store.list(timeout=1)
    assert 0.9 < time.monotonic() - started < 5
    # the overall bound or the daemon query's own bound, whichever fires first
    assert row.state in ("Timeout", "Running")
    assert row.docker_version == "Unknown" and row.error
    with pytest.raises(ValueError):
        store.list(timeout=-1)


def test_already_exists(store):
    none_machine(store)
    with pytest.raises(AlreadyExistsError) as ei:
        none_machine(store)
    assert ei.value.code == "AlreadyExists"
    assert ei.value.machine == "local"


def test_invalid_name(store):
    with pytest.raises(InvalidNameError) as ei:
        store.create("-bad name", driver="none", options={"url": "tcp://127.0.0.1:2376"})
    assert isinstance(ei.value, ValueError)
    assert ei.value.code == "InvalidName"


def test_unknown_driver(store):
    with pytest.raises(UnknownDriverError) as ei:
        store.create("m", driver="virtualbox")
    assert "virtualbox" in str(ei.value)
    assert ei.value.code == "UnknownDriver"


@pytest.mark.parametrize(
    "options, flag",
    [
        ({}, "url"),  # required option missing
        ({"url": "http://127.0.0.1:2376"}, "url"),  # bad value
        ({"url": "tcp://127.0.0.1:2376", "bogus-flag": 1}, "bogus-flag"),  # unknown option
    ],
)
def test_invalid_driver_option_names_the_flag(store, options, flag):
    with pytest.raises(InvalidOptionError) as ei:
        store.create("m", driver="none", options=options)
    e = ei.value
    assert flag in str(e)
    assert e.code == "InvalidOption"
    assert e.machine == "m"
    assert isinstance(e, ValueError)
    assert store.names() == [], "nothing is claimed before the options are checked"


def test_generic_options_are_checked_by_kind(store):
    with pytest.raises(InvalidOptionError) as ei:
        store.create("g", driver="generic", options={"generic-ip-address": "192.0.2.10", "generic-ssh-port": "twenty"})
    assert "generic-ssh-port" in str(ei.value) and "twenty" in str(ei.value)
    with pytest.raises(InvalidOptionError) as ei:
        store.create("g", driver="generic", options={"generic-ssh-port": 22})
    assert "generic-ip-address" in str(ei.value)


def test_the_default_driver_is_the_clis(store):
    # the same default as `machine create`: options of another driver are refused by it
    with pytest.raises(InvalidOptionError) as ei:
        store.create("g", options={"generic-ip-address": "192.0.2.10"})
    assert "driver qemu has no option generic-ip-address" in str(ei.value)
    assert store.names() == []


@pytest.mark.parametrize(
    "engine, flag",
    [
        ({"engine-bogus": "x"}, "engine-bogus"),
        ({"engine-env": ["NOEQUALS"]}, "engine-env"),
        ({"engine-opt": ["--"]}, "engine-opt"),
        ({"tls-key-algorithm": "dsa"}, "tls-key-algorithm"),
    ],
)
def test_invalid_engine_flag_names_the_flag(store, engine, flag):
    with pytest.raises(InvalidOptionError) as ei:
        store.create("m", driver="none", options={"url": "tcp://127.0.0.1:2376"}, engine=engine)
    assert flag in str(ei.value)
    assert ei.value.machine is None


def test_option_values_of_the_wrong_python_type(store):
    with pytest.raises(TypeError, match="url"):
        store.create("m", driver="none", options={"url": {"not": "a string"}})
    with pytest.raises(TypeError, match="engine-label"):
        store.create("m", driver="none", options={"url": "tcp://127.0.0.1:2376"}, engine={"engine-label": [1, 2]})


def test_options_may_be_any_mapping(store):
    import types

    m = store.create(
        "m",
        driver="none",
        options=types.MappingProxyType({"url": "tcp://127.0.0.1:2376"}),
        engine=types.MappingProxyType({"engine-label": ("a=b",)}),
    )
    assert m.inspect()["HostOptions"]["EngineOptions"]["Labels"] == ["a=b"]
    with pytest.raises(TypeError):
        store.create("n", driver="none", options=[("url", "tcp://127.0.0.1:2376")])


def test_engine_flags_are_recorded(store):
    m = store.create(
        "m",
        driver="none",
        options={"url": "tcp://127.0.0.1:2376"},
        engine={
            "engine-opt": ["log-level=debug", "bridge=none"],
            "engine-label": ["env=test"],
            "engine-env": ["HTTP_PROXY=http://proxy:3128"],
            "engine-insecure-registry": ["registry.local:5000"],
            "engine-registry-mirror": "https://mirror.local",
            "engine-install-url": "none",
            "engine-storage-driver": "vfs",
            "tls-san": ["docker.example.org"],
        },
    )
    host = m.inspect()["HostOptions"]
    eng = host["EngineOptions"]
    assert eng["ArbitraryFlags"] == ["log-level=debug", "bridge=none"]
    assert eng["Labels"] == ["env=test"]
    assert eng["Env"] == ["HTTP_PROXY=http://proxy:3128"]
    assert eng["InsecureRegistry"] == ["registry.local:5000"]
    assert eng["RegistryMirror"] == ["https://mirror.local"]
    assert eng["InstallURL"] == "none"
    assert eng["StorageDriver"] == "vfs"
    assert host["AuthOptions"]["ServerCertSANs"] == ["docker.example.org"]
    # the same file as config.json on disk
    with open(os.path.join(store.path, "machines", "m", "config.json")) as f:
        assert json.load(f) == m.inspect()


def test_unsupported_operations(store):
    m = none_machine(store)
    for op in (m.start, m.stop, m.restart, m.kill):
        with pytest.raises(NotSupportedError) as ei:
            op()
        assert ei.value.code == "NotSupported"
        assert ei.value.machine == "local"
        assert isinstance(ei.value, NotImplementedError)
    with pytest.raises(SshError) as ei:
        m.ssh("true")
    assert "no SSH access" in str(ei.value)


def test_io_error_chains_the_os_error(store, tmp_path):
    m = none_machine(store)
    with pytest.raises(IoError) as ei:
        m.copy_to(tmp_path / "does-not-exist", "/tmp/x")
    e = ei.value
    assert e.code == "Io" and e.machine == "local"
    assert isinstance(e, OSError)
    assert isinstance(e.__cause__, FileNotFoundError)
    assert "does-not-exist" in str(e)


def test_remove_force_forgets_a_broken_machine(store):
    none_machine(store, name="broken")
    cfg = os.path.join(store.path, "machines", "broken", "config.json")
    with open(cfg, "w") as f:
        f.write("{ not json")
    with pytest.raises(MachineError) as ei:
        store.get("broken")
    assert ei.value.code == "Store"
    assert isinstance(ei.value, docker_machine.StoreError)
    with pytest.raises(MachineError):
        store.remove("broken")
    store.remove("broken", force=True)
    assert store.names() == []


def test_engine_options_are_the_clis():
    import subprocess

    opts = {o.flag: o for o in docker_machine.engine_options()}
    assert {"engine-install-url", "engine-opt", "engine-env", "engine-label", "tls-san"} <= set(opts)
    assert opts["engine-opt"].kind == "list"
    assert opts["engine-install-url"].env_var == "MACHINE_DOCKER_INSTALL_URL"
    binary = REPO / "target" / "debug" / "machine"
    if not binary.exists():
        pytest.skip("the machine CLI is not built (cargo build -p machine-cli)")
    helptext = subprocess.run([binary, "create", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in opts:
        assert f"--{flag} " in helptext, flag
