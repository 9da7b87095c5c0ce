"""Fixtures shared by the test modules."""

import os
import socket
from pathlib import Path

import pytest

import docker_machine

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty store in a temporary directory (driver options are not read from the environment)."""
    for var in ("GENERIC_IP_ADDRESS", "GENERIC_SSH_USER", "GENERIC_SSH_KEY", "GENERIC_SSH_PORT", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return docker_machine.Store(tmp_path / "store")


@pytest.fixture
def silent_port():
    """A loopback port that accepts TCP connections and never answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def none_machine(store, name="local", port=2376):
    """A machine of the `none` driver: no network is used to create it."""
    return store.create(name, driver="none", options={"url": f"tcp://127.0.0.1:{port}"})
