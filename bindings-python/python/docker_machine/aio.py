"""The docker_machine API as asyncio coroutines.

``aio.Store`` and ``aio.Host`` have the methods of ``docker_machine.Store``
and ``docker_machine.Host``, as coroutines. Each call runs the blocking
method in the event loop's default executor (a thread pool, see
``loop.set_default_executor``); the blocking method releases the GIL while it
waits, so the event loop and other calls go on meanwhile.

``progress`` callbacks are called on the event loop's thread, in order, before
the coroutine returns.

Cancelling a coroutine stops waiting for it, not the operation: the call
already running in its thread finishes there.
"""

from __future__ import annotations

import asyncio
import functools
import os
import pathlib
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar, Union

from . import DriverOption, ListEntry, SshOutput, SwarmMembers, SwarmNode
from . import Host as SyncHost
from . import Store as SyncStore

__all__ = ["Store", "Host"]

T = TypeVar("T")
Progress = Optional[Callable[[str], Any]]
OptionValue = Union[str, int, bool, List[str]]


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


def _on_loop(progress: Progress) -> Progress:
    """Forward each step to `progress` on the running loop's thread."""
    if progress is None:
        return None
    loop = asyncio.get_running_loop()
    return lambda step: loop.call_soon_threadsafe(progress, step)


class Host:
    """A machine; the coroutine twin of :class:`docker_machine.Host`."""

    def __init__(self, machine: SyncHost) -> None:
        self.sync = machine
        """The blocking :class:`docker_machine.Host` underneath."""

    @property
    def name(self) -> str:
        return self.sync.name

    @property
    def driver_name(self) -> str:
        return self.sync.driver_name

    def __repr__(self) -> str:
        return f"aio.{self.sync!r}"

    async def state(self) -> str:
        return await _run(self.sync.state)

    async def ip(self) -> str:
        return await _run(self.sync.ip)

    async def url(self) -> str:
        return await _run(self.sync.url)

    async def env(self, shell: str = "bash", unset: bool = False, no_proxy: bool = False) -> str:
        return await _run(self.sync.env, shell=shell, unset=unset, no_proxy=no_proxy)

    async def env_vars(self) -> Dict[str, str]:
        return await _run(self.sync.env_vars)

    async def config(self) -> List[str]:
        return await _run(self.sync.config)

    async def inspect(self) -> Dict[str, Any]:
        return await _run(self.sync.inspect)

    async def status(self) -> Dict[str, str]:
        return await _run(self.sync.status)

    async def docker_version(self, timeout: float = 20.0) -> Dict[str, str]:
        return await _run(self.sync.docker_version, timeout=timeout)

    async def ssh_config(self) -> str:
        return await _run(self.sync.ssh_config)

    async def docker_context(self) -> str:
        return await _run(self.sync.docker_context)

    async def remove_docker_context(self) -> bool:
        return await _run(self.sync.remove_docker_context)

    async def export_archive(self, with_ca_key: bool = False, passphrase: Optional[str] = None) -> bytes:
        return await _run(self.sync.export_archive, with_ca_key=with_ca_key, passphrase=passphrase)

    async def start(self) -> None:
        await _run(self.sync.start)

    async def stop(self) -> None:
        await _run(self.sync.stop)

    async def restart(self) -> None:
        await _run(self.sync.restart)

    async def kill(self) -> None:
        await _run(self.sync.kill)

    async def provision(self, progress: Progress = None) -> None:
        await _run(self.sync.provision, progress=_on_loop(progress))

    async def regenerate_certs(self, client_certs: bool = False, progress: Progress = None) -> None:
        await _run(self.sync.regenerate_certs, client_certs=client_certs, progress=_on_loop(progress))

    async def upgrade(self, progress: Progress = None) -> None:
        await _run(self.sync.upgrade, progress=_on_loop(progress))

    async def ssh(self, command: str) -> SshOutput:
        return await _run(self.sync.ssh, command)

    async def copy_to(self, local: Union[str, os.PathLike[str]], remote: str) -> None:
        await _run(self.sync.copy_to, local, remote)

    async def copy_from(self, remote: str, local: Union[str, os.PathLike[str]]) -> None:
        await _run(self.sync.copy_from, remote, local)

    async def swarm_init(self, progress: Progress = None) -> None:
        await _run(self.sync.swarm_init, progress=_on_loop(progress))

    async def swarm_join(self, manager: str, as_manager: bool = False, progress: Progress = None) -> None:
        await _run(self.sync.swarm_join, manager, as_manager=as_manager, progress=_on_loop(progress))

    async def swarm_leave(self, force: bool = False, progress: Progress = None) -> None:
        await _run(self.sync.swarm_leave, force=force, progress=_on_loop(progress))

    async def swarm_nodes(self) -> List[SwarmNode]:
        return await _run(self.sync.swarm_nodes)

    async def swarm_manager(self) -> "Host":
        return Host(await _run(self.sync.swarm_manager))

    async def swarm_members(self) -> SwarmMembers:
        return await _run(self.sync.swarm_members)


class Store:
    """A store of machines; the coroutine twin of :class:`docker_machine.Store`."""

    def __init__(self, path: Union[str, os.PathLike[str], None] = None) -> None:
        self.sync = SyncStore(path)
        """The blocking :class:`docker_machine.Store` underneath."""

    @property
    def path(self) -> pathlib.Path:
        return self.sync.path

    def __repr__(self) -> str:
        return f"aio.{self.sync!r}"

    def drivers(self) -> List[str]:
        return self.sync.drivers()

    def register_driver(self, name: str, factory: Any, options: Optional[List[DriverOption]] = None) -> None:
        """Register a driver written in Python (see :meth:`docker_machine.Store.register_driver`).

        Its methods are called from worker threads, as for the blocking API.
        """
        self.sync.register_driver(name, factory, options)

    async def names(self) -> List[str]:
        return await _run(self.sync.names)

    async def get(self, name: str) -> Host:
        return Host(await _run(self.sync.get, name))

    async def create(
        self,
        name: str,
        driver: str = "generic",
        options: Optional[Mapping[str, OptionValue]] = None,
        engine: Optional[Mapping[str, OptionValue]] = None,
        progress: Progress = None,
        swarm: Optional[Mapping[str, OptionValue]] = None,
    ) -> Host:
        m = await _run(
            self.sync.create,
            name,
            driver=driver,
            options=dict(options) if options is not None else None,
            engine=dict(engine) if engine is not None else None,
            progress=_on_loop(progress),
            swarm=dict(swarm) if swarm is not None else None,
        )
        return Host(m)

    async def ssh_config(self, names: Optional[List[str]] = None) -> str:
        return await _run(self.sync.ssh_config, names)

    async def import_archive(self, data: bytes, name: Optional[str] = None, passphrase: Optional[str] = None) -> Host:
        return Host(await _run(self.sync.import_archive, data, name=name, passphrase=passphrase))

    async def list(self, timeout: float = 10.0) -> List[ListEntry]:
        return await _run(self.sync.list, timeout=timeout)

    async def remove(self, name: str, force: bool = False) -> None:
        await _run(self.sync.remove, name, force=force)
