"""Docker Machine as a library.

A :class:`Store` holds machines (``~/.docker/machine`` by default, in the
original docker-machine's layout). ``Store.create`` makes a machine with a
driver and provisions Docker on it with TLS; the :class:`Host` it returns
runs the other operations. Blocking methods release the GIL;
:mod:`docker_machine.aio` offers the same operations as coroutines.
"""

import os
import pathlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Union, final

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

__version__: str

_OptionValue = Union[str, int, bool, Sequence[str]]
"""A driver or engine option value: str, int, bool, or a list of str for list options."""

_Progress = Optional[Callable[[str], Any]]
"""Called with each step of a long operation (from the calling thread or a runtime thread).
Exceptions it raises are reported through ``sys.unraisablehook``; the operation goes on."""

_StrPath = Union[str, os.PathLike[str]]

@final
class Store:
    """The machines of one store directory, with the drivers that serve them.

    Each store has its own drivers: the built-in ``none``, ``generic`` and ``qemu``, and
    any registered with :meth:`register_driver`.
    """

    def __new__(cls, path: Optional[_StrPath] = None) -> Store:
        """The store at ``path``, or at ``$MACHINE_STORAGE_PATH``, or at ``~/.docker/machine``."""

    @property
    def path(self) -> pathlib.Path:
        """The store's root directory."""

    def names(self) -> List[str]:
        """The machines' names, sorted case-insensitively."""

    def drivers(self) -> List[str]:
        """Names of the drivers, sorted: the registered ones and the driver plugins (``docker-machine-driver-NAME``) on ``PATH``."""

    def get(self, name: str) -> Host:
        """Load the machine ``name``.

        Raises :class:`NotFoundError` when there is none.
        """

    def create(
        self,
        name: str,
        driver: str = ...,  # the default driver of the CLI: "qemu"
        options: Optional[Mapping[str, _OptionValue]] = None,
        engine: Optional[Mapping[str, _OptionValue]] = None,
        progress: _Progress = None,
        swarm: Optional[Mapping[str, _OptionValue]] = None,
    ) -> Host:
        """Create a machine and provision Docker on it.

        The steps: CA and client certificates, the driver's pre-create check,
        the name claimed in the store, the driver's create, waiting until the
        machine runs, then (for drivers that need it) provisioning over SSH and
        waiting until the daemon answers over TLS. When a step after the name
        claim fails, the machine stays in the store in state ``Error`` so that
        :meth:`remove` can clean it up.

        ``options`` are the driver's options keyed by CLI flag name, e.g.
        ``{"generic-ip-address": "192.0.2.10", "generic-ssh-key": "~/.ssh/id"}``;
        options not given are read from their environment variables (e.g.
        ``GENERIC_IP_ADDRESS``), then take their defaults.

        ``engine`` holds the engine flags by name: ``engine-opt``,
        ``engine-label``, ``engine-env``, ``engine-insecure-registry``,
        ``engine-registry-mirror``, ``tls-san`` (lists), ``engine-install-url``
        (``"none"`` keeps the Docker already installed),
        ``engine-storage-driver`` and ``tls-key-algorithm`` (``rsa``/``ecdsa``).
        With ``driver="none"``, ``tls-ca-cert``, ``tls-client-cert`` and
        ``tls-client-key`` (file paths, all three) adopt a daemon with its own
        TLS setup: checked by connecting, then copied into the machine's
        directory (:class:`EngineError` when the daemon refuses them).

        ``swarm`` holds the Swarm-mode flags by name (see :func:`swarm_options`):
        ``{"swarm-master": True}`` initializes a cluster once Docker runs;
        ``{"swarm": True, "swarm-discovery": "machine://m1"}`` joins the cluster
        of ``m1``, a manager machine of this store (add ``"swarm-master": True``
        to join as a manager); ``swarm-addr``, ``swarm-opt`` and
        ``swarm-join-opt`` (lists of ``KEY=VALUE``) tune it. A discovery naming
        no machine of the store, or one that is no manager, raises
        :class:`SwarmError` before anything is made.

        Raises :class:`InvalidOptionError` (naming the flag),
        :class:`AlreadyExistsError`, :class:`UnknownDriverError`,
        :class:`PreCreateCheckError`, and the errors of the steps.
        """

    def list(self, timeout: float = 10.0) -> List[ListEntry]:
        """Query every machine at once, each bounded by ``timeout`` seconds (like ``ls``)."""

    def remove(self, name: str, force: bool = False) -> None:
        """Remove the machine: the driver removes what it made, then the store entry goes.

        With ``force``, the store entry goes even when the driver fails. A
        machine in a swarm leaves it first (a manager is demoted first); the
        last manager ends the swarm, and its workers leave it.
        """

    def ssh_config(self, names: Optional[Sequence[str]] = None) -> str:
        """OpenSSH ``Host`` blocks for the machines ``names`` (default: every machine
        with SSH access), like ``ssh-config``: write them to a file and run
        ``ssh -F FILE NAME``. Each names the machine's key (``IdentitiesOnly yes``)
        and its pinned ``known_hosts`` with ``StrictHostKeyChecking yes``."""

    def import_archive(self, data: bytes, name: Optional[str] = None, passphrase: Optional[str] = None) -> Host:
        """Add a machine from an archive of :meth:`Host.export_archive`.

        The archive is checked completely before anything is written; every
        path is rewritten for this store. :class:`AlreadyExistsError` when the
        name is taken (give ``name``), :class:`InvalidOptionError` for a wrong
        passphrase or a changed or invalid archive.
        """

    def register_driver(
        self,
        name: str,
        factory: Callable[[DriverContext, Dict[str, Any]], Driver],
        options: Optional[Sequence[DriverOption]] = None,
    ) -> None:
        """Register a driver written in Python under ``name`` (replacing any of that name).

        ``factory`` is called as ``factory(context, options)`` for a new
        machine, with its resolved create options, and for a machine loaded from
        the store, with what its driver's ``save()`` returned (by default the
        create options). Usually it is the driver class itself. The options it
        accepts are ``options``, else the factory's ``options`` attribute.
        See :class:`Driver` for the methods the driver object has.
        """

@final
class ListEntry:
    """One row of :meth:`Store.list`: the same fields as ``ls``."""

    @property
    def name(self) -> str: ...
    @property
    def driver_name(self) -> str: ...
    @property
    def state(self) -> str:
        """``Running``, ``Stopped``, ``Error``, ``Timeout``, ...; ``""`` when unknown."""
    @property
    def url(self) -> str:
        """The daemon's URL (only for running machines)."""
    @property
    def swarm(self) -> str: ...
    @property
    def docker_version(self) -> str:
        """``v<version>``, or ``Unknown``."""
    @property
    def error(self) -> str:
        """Why the machine could not be queried, or the failure of its last create."""
    @property
    def response_time_ms(self) -> int:
        """How long querying this machine took, in milliseconds."""
    def to_dict(self) -> Dict[str, Any]:
        """The fields as a dict."""

@final
class Host:
    """A named machine: its driver plus engine, swarm and TLS options."""

    @property
    def name(self) -> str: ...
    @property
    def driver_name(self) -> str: ...
    def state(self) -> str:
        """The driver's state name (``Running``, ``Stopped``, ...), or ``Error`` when the last create or provision failed."""
    def ip(self) -> str:
        """The machine's IP address or host name."""
    def url(self) -> str:
        """The Docker daemon's URL, e.g. ``tcp://192.0.2.10:2376``."""
    def env(self, shell: str = "bash", unset: bool = False, no_proxy: bool = False) -> str:
        """The environment for ``docker`` as text for ``shell`` (like ``env``).

        Shells: ``bash`` (also sh, zsh, ksh, dash), ``fish``, ``powershell``
        (``pwsh``), ``cmd``, ``tcsh`` (``csh``), ``emacs``, ``json``, ``nu``.
        ``unset`` gives the lines that undo the settings; ``no_proxy`` adds the
        machine's address to ``no_proxy`` (or ``NO_PROXY``) from the process
        environment. The server certificate is checked first
        (:class:`CertCheckError` when it no longer fits the address).
        """
    def env_vars(self) -> Dict[str, str]:
        """The ``DOCKER_*`` variables for this machine, e.g. for ``subprocess.run(..., env=...)``."""
    def config(self) -> List[str]:
        """The ``docker`` client arguments for this machine, one per item and
        unquoted: ``subprocess.run(["docker", *m.config(), "ps"])``."""
    def inspect(self) -> Dict[str, Any]:
        """The saved configuration (``config.json``) as a dict (like ``inspect``)."""
    def status(self) -> Dict[str, str]:
        """``{"name", "state", "error"}``: the state with the failure of the last
        create or provision (``error`` empty when there was none)."""
    def docker_version(self, timeout: float = 20.0) -> Dict[str, str]:
        """The daemon's ``{"version", "api_version", "os", "arch"}``, asked over mutual TLS."""
    def ssh_config(self) -> str:
        """The OpenSSH ``Host`` block of this machine (like ``ssh-config NAME``)."""
    def docker_context(self) -> str:
        """Write (or refresh) the docker CLI context named after the machine in
        ``$DOCKER_CONFIG`` or ``~/.docker``; returns its name. A context of that
        name this store did not make raises :class:`AlreadyExistsError`."""
    def remove_docker_context(self) -> bool:
        """Remove the machine's docker CLI context if this store made it; False when there was none."""
    def export_archive(self, with_ca_key: bool = False, passphrase: Optional[str] = None) -> bytes:
        """The machine as one archive: configuration, certificates with the CA
        certificate, SSH key, pinned host key; the CA's private key only with
        ``with_ca_key``. Encrypted (age, scrypt) with ``passphrase`` when given."""
    def start(self) -> None:
        """Start the machine (:class:`NotSupportedError` if the driver cannot); returns once its Docker daemon answers (bounded by the store's engine timeout)."""
    def stop(self) -> None:
        """Stop the machine gracefully (:class:`NotSupportedError` if the driver cannot)."""
    def restart(self) -> None:
        """Restart the machine (:class:`NotSupportedError` if the driver cannot); returns once its Docker daemon answers."""
    def kill(self) -> None:
        """Stop the machine at once (:class:`NotSupportedError` if the driver cannot)."""
    def provision(self, progress: _Progress = None) -> None:
        """Provision again: install Docker if missing, rewrite its configuration with a fresh server certificate, restart it."""
    def regenerate_certs(self, client_certs: bool = False, progress: _Progress = None) -> None:
        """Make a new server certificate and restart the daemon with it.

        With ``client_certs``, the CA and client certificate are made anew
        first (every machine of the store must then be regenerated too).
        """
    def upgrade(self, progress: _Progress = None) -> None:
        """Upgrade Docker: run its install method again, then restart the daemon with our configuration."""
    def ssh(self, command: str) -> SshOutput:
        """Run ``command`` over SSH (the host key pinned at create time is checked)."""
    def copy_to(self, local: _StrPath, remote: str) -> None:
        """Copy a local file to the machine (mode taken from the local file)."""
    def copy_from(self, remote: str, local: _StrPath) -> None:
        """Copy a file from the machine to ``local``."""
    def swarm_init(self, progress: _Progress = None) -> None:
        """Initialize a new Swarm-mode cluster with this machine as its first manager.

        It advertises its ``swarm-addr`` or its IP, with its ``swarm-opt``
        settings; its ``SwarmOptions`` then name the cluster after it.
        """
    def swarm_join(self, manager: str, as_manager: bool = False, progress: _Progress = None) -> None:
        """Join the cluster that machine ``manager`` (of the same store) manages.

        :class:`SwarmError` when ``manager`` is not in the store, is no
        manager, or this machine is in another swarm.
        """
    def swarm_leave(self, force: bool = False, progress: _Progress = None) -> None:
        """Leave the cluster: a worker leaves and its node is removed from the list;
        a manager is demoted first. The last manager leaves only with ``force``
        while workers remain."""
    def swarm_nodes(self) -> List[SwarmNode]:
        """The nodes of this machine's cluster, as a manager of it lists them."""
    def swarm_manager(self) -> Host:
        """The manager machine of this machine's cluster that answers (this one if it is a manager)."""
    def swarm_members(self) -> SwarmMembers:
        """The machines of this machine's cluster, by the store's configurations (no network)."""

@final
class SwarmNode:
    """One node of a Swarm-mode cluster, as a manager lists it."""

    @property
    def id(self) -> str: ...
    @property
    def hostname(self) -> str:
        """The node's host name (the machine's name for provisioned machines)."""
    @property
    def role(self) -> str:
        """``manager`` or ``worker``."""
    @property
    def availability(self) -> str:
        """``active``, ``pause`` or ``drain``."""
    @property
    def state(self) -> str:
        """``ready``, ``down``, ``disconnected`` or ``unknown``."""
    @property
    def addr(self) -> str: ...
    @property
    def leader(self) -> bool: ...
    @property
    def reachability(self) -> str:
        """For managers: ``reachable``, ``unreachable`` or ``unknown``; ``""`` for workers."""
    @property
    def engine_version(self) -> str: ...

@final
class SwarmMembers:
    """The machines of a store in one Swarm-mode cluster."""

    @property
    def cluster(self) -> str:
        """The cluster's name: ``machine://FIRST_MANAGER``."""
    @property
    def managers(self) -> List[str]: ...
    @property
    def workers(self) -> List[str]: ...

@final
class SshOutput:
    """What a command run over SSH printed, and its exit status."""

    @property
    def stdout(self) -> str:
        """Standard output as text (invalid UTF-8 replaced)."""
    @property
    def stderr(self) -> str:
        """Standard error as text (invalid UTF-8 replaced)."""
    @property
    def stdout_bytes(self) -> bytes: ...
    @property
    def stderr_bytes(self) -> bytes: ...
    @property
    def exit_status(self) -> int: ...

def engine_options() -> List["DriverOption"]:
    """The engine and TLS options ``Store.create`` takes in ``engine=``, keyed by
    their CLI flag names (``engine-opt``, ``engine-label``, ``tls-san``, ...)."""
    ...

def swarm_options() -> List["DriverOption"]:
    """The Swarm-mode options ``Store.create`` takes in ``swarm=``, keyed by
    their CLI flag names (``swarm``, ``swarm-master``, ``swarm-discovery``, ...)."""
    ...

@final
class DriverOption:
    """A create option a driver declares, keyed by its CLI flag name."""

    def __new__(
        cls,
        flag: str,
        kind: str = "string",
        *,
        default: Optional[_OptionValue] = None,
        env_var: Optional[str] = None,
        help: str = "",
        required: bool = False,
    ) -> DriverOption:
        """``kind`` is ``string``, ``int``, ``bool`` or ``list``. A value is taken
        from ``options``, else from ``env_var``, else ``default``; a ``required``
        option without one fails the create with :class:`InvalidOptionError`."""
    @property
    def flag(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def default(self) -> Optional[str]: ...
    @property
    def env_var(self) -> Optional[str]: ...
    @property
    def help(self) -> str: ...
    @property
    def required(self) -> bool: ...

@final
class DriverContext:
    """Where a machine lives in the store, given to driver factories."""

    @property
    def machine_name(self) -> str: ...
    @property
    def store_path(self) -> str: ...
    @property
    def machine_dir(self) -> str:
        """The machine's directory, where the driver may keep files."""

@final
class SshTarget:
    """How to reach a machine over SSH; ``key_path`` None means the SSH agent."""

    def __new__(cls, host: str, port: int = 22, user: str = "root", key_path: Optional[_StrPath] = None) -> SshTarget: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def key_path(self) -> Optional[str]: ...

class Driver(Protocol):
    """What a driver written in Python provides; no base class is needed.

    Required: ``create``, ``remove``, ``state``, ``ip``. Optional, looked up
    by name:

    - ``ssh_target() -> SshTarget | None``: how to reach the machine over SSH
      (needed for provisioning, ``ssh`` and the copies).
    - ``url() -> str``: the daemon's URL (default ``tcp://<ip>:<engine_port>``).
    - ``pre_create_check()``: raise to refuse creating the machine
      (:class:`PreCreateCheckError`).
    - ``start()``, ``stop()``, ``restart()``, ``kill()``.
    - ``save() -> dict``: JSON-serializable state written to config.json and
      given back to the factory when the machine is loaded (default: the
      create options).
    - ``engine_port: int`` (default 2376), ``needs_provisioning: bool``
      (default True).

    A missing method, or one raising ``NotImplementedError``, means "not
    supported" (:class:`NotSupportedError`). Any other exception becomes a
    :class:`DriverError` whose ``__cause__`` is that exception.

    Methods are called with the GIL held, from the thread making the call or
    from a worker thread; with :mod:`docker_machine.aio`, never from the event
    loop's thread.
    """

    def create(self) -> None: ...
    def remove(self) -> None: ...
    def state(self) -> str:
        """A state name: ``Running``, ``Stopped``, ``Starting``, ``Error``, ..."""
    def ip(self) -> str: ...

class MachineError(Exception):
    """Base class of every error raised by docker_machine.

    ``str(e)`` is the whole chain of causes; ``__cause__`` is the Python
    exception underneath when there is one (raised by a Python driver, or an
    ``OSError``).
    """

    code: str
    """The stable error code (``NotFound``, ``InvalidOption``, ...), the same in every binding."""
    machine: Optional[str]
    """The machine the error is about, when there is one."""

class StoreError(MachineError):
    """The store failed: a configuration that cannot be read or written."""
class NotFoundError(StoreError, LookupError):
    """No machine of that name is in the store."""
class AlreadyExistsError(StoreError):
    """A machine of that name is already in the store."""
class InvalidNameError(StoreError, ValueError):
    """The machine name is not allowed."""
class DriverError(MachineError):
    """The machine's driver failed."""
class NotSupportedError(DriverError, NotImplementedError):
    """The driver does not support this operation."""
class UnknownDriverError(DriverError, LookupError):
    """No driver of that name is registered with the store."""
class PreCreateCheckError(DriverError):
    """The driver's pre-create check refused to create the machine."""
class InvalidOptionError(MachineError, ValueError):
    """A driver or engine option is unknown, missing or has a bad value; the message names the flag."""
class CertError(MachineError):
    """TLS certificates could not be made, loaded or checked."""
class CertCheckError(CertError):
    """The machine's server certificate is not valid for its address any more."""
class SshError(MachineError):
    """SSH to the machine failed, or its driver gives no SSH access."""
class HostKeyMismatchError(SshError):
    """The machine presented an SSH host key other than the one pinned at create time."""
class ProvisionError(MachineError):
    """Provisioning Docker on the machine failed."""
class EngineError(MachineError):
    """The Docker daemon did not answer over TLS; the message quotes its log when it could be read."""
class NotRunningError(MachineError):
    """The machine must be running for this operation."""
class MachineTimeoutError(MachineError, TimeoutError):
    """A waiting step ran out of time."""
class SwarmError(MachineError):
    """A Swarm-mode operation failed: the manager to join through is missing or
    no manager, the machine is in no swarm or in another one, or the Docker API
    call failed."""
class IoError(MachineError, OSError):
    """A local file operation failed."""
