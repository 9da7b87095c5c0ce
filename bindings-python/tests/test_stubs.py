"""The .pyi stubs match the compiled module, and typed code checks against them."""

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")


def mypy(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO)


def test_stubs_match_the_runtime():
    out = mypy("mypy.stubtest", "docker_machine")
    assert out.returncode == 0, out.stdout + out.stderr


def test_example_and_aio_type_check_strictly():
    for target in (["examples/python_custom_driver.py"], ["-p", "docker_machine"]):
        out = mypy("mypy", "--strict", "--no-incremental", *target)
        assert out.returncode == 0, out.stdout + out.stderr
