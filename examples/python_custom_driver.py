#!/usr/bin/env python3
"""A Docker Machine driver written in Python: machines listed in an inventory.

The inventory is a JSON file mapping machine names to SSH addresses, the same
format as the Rust example in src/inventory.rs:

    { "web1": { "address": "192.0.2.10", "user": "root", "port": 22, "key": "/home/me/.ssh/fleet" } }

``create NAME`` looks NAME up in the file given by ``inventory-file`` and goes
through the same create sequence as the built-in drivers: certificates, the
pre-create check, the driver's ``create``, waiting until it runs, and
provisioning Docker with TLS over SSH. The machines' power is not ours, so
start, stop and kill are left out (they raise NotSupportedError).

Run (needs `pip install ./bindings-python`):

    python examples/python_custom_driver.py STORE_DIR INVENTORY.json NAME [--engine-opt OPT ...]

It prints the progress, then the machine's URL and its ``docker`` environment.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any, Dict, List, Optional

import docker_machine


class InventoryDriver:
    """Machines taken from an inventory file."""

    # The create options, keyed by the flag names the CLI would use.
    options = [
        docker_machine.DriverOption(
            "inventory-file",
            env_var="MACHINE_INVENTORY_FILE",
            help="JSON file mapping machine names to SSH addresses",
            required=True,
        ),
    ]

    def __init__(self, context: docker_machine.DriverContext, options: Dict[str, Any]) -> None:
        # `options` holds the create options for a new machine, and what
        # `save()` returned for one loaded from the store.
        self.name = context.machine_name
        self.inventory_file: str = options["inventory-file"]
        self.entry: Optional[Dict[str, Any]] = options.get("entry")

    def _lookup(self) -> Dict[str, Any]:
        try:
            with open(self.inventory_file) as f:
                inventory = json.load(f)
        except OSError as e:
            raise ValueError(f"inventory-file {self.inventory_file}: {e}") from e
        if self.name not in inventory:
            raise LookupError(f"{self.name} is not in the inventory {self.inventory_file}")
        entry = dict(inventory[self.name])
        entry.setdefault("user", "root")
        entry.setdefault("port", 22)
        return entry

    def pre_create_check(self) -> None:
        self._lookup()

    def create(self) -> None:
        self.entry = self._lookup()

    def remove(self) -> None:
        # The machine is not ours to delete; forgetting it is all there is to do.
        pass

    def state(self) -> str:
        if self.entry is None:
            return "Error"
        try:
            with socket.create_connection((self.entry["address"], self.entry["port"]), timeout=5):
                return "Running"
        except OSError:
            return "Stopped"

    def ip(self) -> str:
        assert self.entry is not None, "create() has not run"
        return str(self.entry["address"])

    def ssh_target(self) -> Optional[docker_machine.SshTarget]:
        if self.entry is None:
            return None
        e = self.entry
        return docker_machine.SshTarget(e["address"], port=e["port"], user=e["user"], key_path=e.get("key"))

    def save(self) -> Dict[str, Any]:
        # Written into the machine's config.json and given back to __init__.
        return {"inventory-file": self.inventory_file, "entry": self.entry}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("store")
    p.add_argument("inventory")
    p.add_argument("name")
    p.add_argument("--engine-opt", action="append", default=[], help="daemon flag, e.g. log-level=debug")
    p.add_argument("--engine-install-url", default="https://get.docker.com", help='"none" to use the Docker already installed')
    args = p.parse_args(argv)

    store = docker_machine.Store(args.store)
    store.register_driver("inventory", InventoryDriver)
    try:
        machine = store.create(
            args.name,
            driver="inventory",
            options={"inventory-file": args.inventory},
            engine={"engine-opt": args.engine_opt, "engine-install-url": args.engine_install_url},
            progress=lambda step: print(step, file=sys.stderr),
        )
    except docker_machine.MachineError as e:
        print(f"error ({e.code}): {e}", file=sys.stderr)
        return 1
    print(machine.url())
    print(machine.env(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
