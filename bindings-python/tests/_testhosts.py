"""Test hosts for the end-to-end tests (scripts/testhosts.sh).

The contract is the one of the Rust crate machine-test-support and of
bindings-node/test/testhosts.mjs (documented in scripts/README.md):

- the suites' host indices come from test-support/hosts.json;
- MT_HOSTS, MT_HOST_NAMES, MT_KEY, MT_STATE and MT_SUDO_USER (default
  mtuser) announce the hosts, as printed by `scripts/testhosts.sh env`;
- when a suite's hosts are missing its tests fail if CI is set, and are
  skipped otherwise; CI is set when the variable exists and its value,
  trimmed, is neither empty nor "0" nor "false" (any case).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

REPO = Path(__file__).resolve().parents[2]
ALLOCATION_PATH = REPO / "test-support" / "hosts.json"
DEFAULT_SUDO_USER = "mtuser"


def ci_is_set(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether CI is set: present, and not empty, "0" or "false" (any case) once trimmed."""
    value = environ.get("CI")
    if value is None:
        return False
    value = value.strip()
    return not (value == "" or value == "0" or value.lower() == "false")


def allocation() -> dict[str, Any]:
    """test-support/hosts.json: {"count": N, "suites": {name: {"test": path, "hosts": [i, ...]}}}."""
    with open(ALLOCATION_PATH, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def setup_hint() -> str:
    count = allocation()["count"]
    return f'run `bash scripts/testhosts.sh up {count}` and `eval "$(bash scripts/testhosts.sh env)"` (as root)'


class Invalid(Exception):
    """The variables contradict each other or one is missing: always a failure."""


class Missing(Exception):
    """Some of the suite's hosts are not up: a skip, or a failure when CI is set."""


@dataclass(frozen=True)
class Host:
    index: int
    addr: str
    name: Optional[str]


@dataclass(frozen=True)
class Hosts:
    """The hosts a suite owns, with the shared key, state directory and sudo user."""

    suite: str
    indices: tuple[int, ...]
    all: tuple[Host, ...]
    key: str
    state: str
    sudo_user: str

    def host(self, index: int) -> Host:
        """Host `index` of MT_HOSTS; an error when the suite does not own it."""
        if index not in self.indices:
            raise AssertionError(
                f"test host {index} is not allocated to suite {self.suite} "
                f"(it owns {list(self.indices)}; see test-support/hosts.json)"
            )
        return self.all[index]

    def addr(self, index: int) -> str:
        return self.host(index).addr


def lookup(suite: str, environ: Mapping[str, str] = os.environ) -> Hosts:
    """The hosts of `suite`, or Missing / Invalid (without applying the CI rule)."""
    entry = allocation()["suites"][suite]
    want = entry["hosts"]
    addrs = environ.get("MT_HOSTS", "").split()

    def missing(what: str) -> Missing:
        return Missing(
            f"suite {suite} ({entry['test']}) needs test host{'' if len(want) == 1 else 's'} {', '.join(map(str, want))} "
            f"of MT_HOSTS, {what}: {setup_hint()}"
        )

    if not addrs:
        raise missing("which is not set")
    names = environ.get("MT_HOST_NAMES", "").split() or None
    if names is not None and len(names) != len(addrs):
        raise Invalid(
            f"MT_HOSTS names {len(addrs)} hosts but MT_HOST_NAMES {len(names)}: "
            "eval the whole output of `bash scripts/testhosts.sh env`"
        )
    paths = {}
    for var in ("MT_KEY", "MT_STATE"):
        if not environ.get(var):
            raise Invalid(f"MT_HOSTS is set but {var} is not: eval the whole output of `bash scripts/testhosts.sh env`")
        paths[var] = environ[var]
    if any(i >= len(addrs) for i in want):
        raise missing(f"which names {len(addrs)}")
    hosts = tuple(Host(i, a, names[i] if names else None) for i, a in enumerate(addrs))
    return Hosts(
        suite=suite,
        indices=tuple(want),
        all=hosts,
        key=paths["MT_KEY"],
        state=paths["MT_STATE"],
        sudo_user=environ.get("MT_SUDO_USER") or DEFAULT_SUDO_USER,
    )


def for_suite(suite: str) -> Hosts:
    """The hosts of `suite`; when some are missing, pytest.fail if CI is set, else pytest.skip."""
    import pytest

    try:
        return lookup(suite)
    except Invalid as e:
        pytest.fail(str(e))
    except Missing as e:
        if ci_is_set():
            pytest.fail(f"test hosts are required when CI is set: {e}")
        pytest.skip(str(e))
