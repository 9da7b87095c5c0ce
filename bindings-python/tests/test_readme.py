"""The README's Python code blocks, run as written.

Each block runs in a fresh namespace with the store in a temporary directory
(MACHINE_STORAGE_PATH). The block that needs a real machine (the generic
driver at 192.0.2.10) runs in test_e2e.py instead.
"""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
E2E_MARK = "192.0.2.10"


def python_blocks():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def local_blocks():
    return [b for b in python_blocks() if E2E_MARK not in b]


def test_readme_has_the_examples():
    blocks = python_blocks()
    assert len(blocks) >= 5
    assert sum(E2E_MARK in b for b in blocks) == 1


@pytest.mark.parametrize("index", range(len(local_blocks())))
def test_readme_block_runs(index, tmp_path, monkeypatch, capsys):
    code = local_blocks()[index]
    monkeypatch.setenv("MACHINE_STORAGE_PATH", str(tmp_path / "machines"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert out.strip(), "the example prints what it shows"
    # every example cleans up after itself
    import docker_machine

    assert docker_machine.Store().names() == []


def test_readme_quick_start_prints_what_it_says(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MACHINE_STORAGE_PATH", str(tmp_path / "machines"))
    exec(compile(local_blocks()[0], "README.md quick start", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "local Running tcp://127.0.0.1:2376"
    assert out[1] == 'set -gx DOCKER_TLS_VERIFY "1";'
    assert out[-1] == "NotFound nope"
