"""ssh-config, docker contexts, export/import and the dict results of
status and docker_version, on machines of the `none` driver (no network;
the end-to-end runs with the real ssh and docker CLIs are in
machine-cli/tests/export_e2e.rs)."""

import hashlib
import json
import os
import stat

import pytest

import docker_machine
from docker_machine import AlreadyExistsError, EngineError, InvalidOptionError, SshError

from conftest import none_machine


def test_status_is_a_dict(store):
    m = none_machine(store, "n1")
    assert m.status() == {"name": "n1", "state": "Running", "error": ""}


def test_docker_version_of_a_daemon_that_is_not_there(store, closed_port):
    m = none_machine(store, "n1", port=closed_port)
    with pytest.raises(EngineError):
        m.docker_version(timeout=2)


def test_ssh_config_skips_and_names_machines_without_ssh(store):
    m = none_machine(store, "n1")
    assert store.ssh_config() == ""
    with pytest.raises(SshError):
        store.ssh_config(["n1"])
    with pytest.raises(SshError):
        m.ssh_config()


def test_docker_context_written_and_removed(store, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    m = none_machine(store, "n1")
    assert m.docker_context() == "n1"
    cid = hashlib.sha256(b"n1").hexdigest()
    meta = json.loads((tmp_path / "docker/contexts/meta" / cid / "meta.json").read_text())
    assert meta["Name"] == "n1"
    assert meta["Endpoints"]["docker"] == {"Host": "tcp://127.0.0.1:2376", "SkipTLSVerify": False}
    key = tmp_path / "docker/contexts/tls" / cid / "docker/key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert m.remove_docker_context() is True
    assert m.remove_docker_context() is False
    assert not key.exists()
    # a context of that name someone else made is left alone
    m.docker_context()
    other = docker_machine.Store(tmp_path / "other")
    twin = none_machine(other, "n1")
    with pytest.raises(AlreadyExistsError):
        twin.docker_context()
    with pytest.raises(AlreadyExistsError):
        twin.remove_docker_context()
    # rm of the machine removes its context
    store.remove("n1")
    assert not (tmp_path / "docker/contexts/meta" / cid).exists()


def test_export_and_import_into_another_store(store, tmp_path):
    m = none_machine(store, "n1")
    other = docker_machine.Store(tmp_path / "other")
    plain = m.export_archive()
    assert isinstance(plain, bytes) and not plain.startswith(b"age-encryption.org")
    imported = other.import_archive(plain)
    assert imported.name == "n1"
    cfg = imported.inspect()
    assert cfg["HostOptions"]["AuthOptions"]["StorePath"] == str(tmp_path / "other/machines/n1")
    assert str(tmp_path / "store") not in json.dumps(cfg)
    d = tmp_path / "other/machines/n1"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "key.pem").stat().st_mode) == 0o600
    with pytest.raises(AlreadyExistsError):
        other.import_archive(plain)

    secret = m.export_archive(passphrase="pw one")
    assert secret.startswith(b"age-encryption.org/v1\n")
    before = sorted(os.listdir(tmp_path / "other/machines"))
    with pytest.raises(InvalidOptionError):
        other.import_archive(secret, name="n2")
    with pytest.raises(InvalidOptionError):
        other.import_archive(secret, name="n2", passphrase="pw two")
    assert sorted(os.listdir(tmp_path / "other/machines")) == before
    n2 = other.import_archive(secret, name="n2", passphrase="pw one")
    assert n2.env_vars()["DOCKER_CERT_PATH"] == str(tmp_path / "other/machines/n2")
    assert other.names() == ["n1", "n2"]
