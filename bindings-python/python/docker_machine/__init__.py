"""Docker Machine as a library.

A :class:`Store` holds machines (``~/.docker/machine`` by default, in the
original docker-machine's layout). ``Store.create`` makes a machine with a
driver (``generic`` for any Linux machine reachable over SSH, ``none`` for an
existing daemon, or a driver written in Python) and provisions Docker on it
with TLS; the :class:`Host` it returns runs the other operations.

Blocking methods release the GIL; :mod:`docker_machine.aio` offers the same
operations as coroutines.
"""

from typing import Protocol

from ._native import (
    AlreadyExistsError,
    CertCheckError,
    CertError,
    DriverContext,
    DriverError,
    DriverOption,
    EngineError,
    HostKeyMismatchError,
    InvalidNameError,
    InvalidOptionError,
    IoError,
    ListEntry,
    Host,
    MachineError,
    MachineTimeoutError,
    NotFoundError,
    NotRunningError,
    NotSupportedError,
    PreCreateCheckError,
    ProvisionError,
    SshError,
    SshOutput,
    SshTarget,
    Store,
    StoreError,
    SwarmError,
    SwarmMembers,
    SwarmNode,
    engine_options,
    swarm_options,
    UnknownDriverError,
    __version__,
)


class Driver(Protocol):
    """What a driver written in Python provides; no base class is needed.

    Register the driver's factory (usually its class) with
    ``Store.register_driver(name, factory)``; it is called as
    ``factory(context, options)``. Required: ``create``, ``remove``, ``state``
    and ``ip``. Optional: ``ssh_target``, ``url``, ``pre_create_check``,
    ``start``, ``stop``, ``restart``, ``kill``, ``save``, and the attributes
    ``engine_port`` and ``needs_provisioning`` (see the stubs for each one).
    """

    def create(self) -> None: ...

    def remove(self) -> None: ...

    def state(self) -> str: ...

    def ip(self) -> str: ...


__all__ = [
    "Driver",
    "AlreadyExistsError",
    "CertCheckError",
    "CertError",
    "DriverContext",
    "DriverError",
    "DriverOption",
    "engine_options",
    "EngineError",
    "HostKeyMismatchError",
    "InvalidNameError",
    "InvalidOptionError",
    "IoError",
    "ListEntry",
    "Host",
    "MachineError",
    "MachineTimeoutError",
    "NotFoundError",
    "NotRunningError",
    "NotSupportedError",
    "PreCreateCheckError",
    "ProvisionError",
    "SshError",
    "SshOutput",
    "SshTarget",
    "Store",
    "StoreError",
    "SwarmError",
    "SwarmMembers",
    "SwarmNode",
    "swarm_options",
    "UnknownDriverError",
    "__version__",
]
