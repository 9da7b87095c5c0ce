"""The asyncio API."""

import asyncio
import threading
import time

import pytest

import docker_machine as dm
from docker_machine import aio


def run(coro):
    return asyncio.run(coro)


def test_create_get_list_env_remove(tmp_path, closed_port):
    async def main():
        store = aio.Store(tmp_path / "store")
        assert await store.names() == []
        steps = []
        loop_thread = threading.get_ident()
        threads = set()

        def progress(step):
            steps.append(step)
            threads.add(threading.get_ident())

        url = f"tcp://127.0.0.1:{closed_port}"
        m = await store.create("a", driver="none", options={"url": url}, progress=progress)
        assert isinstance(m, aio.Host) and isinstance(m.sync, dm.Host)
        assert steps[-1] == "Docker is up and running!"
        assert threads == {loop_thread}, "progress runs on the event loop's thread"
        assert (m.name, m.driver_name) == ("a", "none")
        assert await m.state() == "Running"
        assert await m.ip() == "127.0.0.1"
        assert await m.url() == url
        assert (await m.env_vars())["DOCKER_HOST"] == url
        assert "set -gx DOCKER_HOST" in await m.env(shell="fish")
        assert (await m.config())[-1] == f"-H={url}"
        assert (await m.inspect())["Name"] == "a"
        (row,) = await store.list(timeout=5)
        assert row.name == "a"
        got = await store.get("a")
        assert await got.url() == url
        assert store.path == tmp_path / "store"
        assert "generic" in store.drivers()
        await store.remove("a")
        assert await store.names() == []

    run(main())


def test_errors_are_the_same_exceptions(tmp_path):
    async def main():
        store = aio.Store(tmp_path / "store")
        with pytest.raises(dm.NotFoundError) as ei:
            await store.get("nope")
        assert ei.value.machine == "nope"
        with pytest.raises(dm.InvalidOptionError):
            await store.create("x", driver="none", options={})
        m = await store.create("x", driver="none", options={"url": "tcp://127.0.0.1:2376"})
        with pytest.raises(dm.NotSupportedError):
            await m.start()

    run(main())


def test_calls_run_concurrently_and_the_loop_stays_free(tmp_path, silent_port):
    async def main():
        store = aio.Store(tmp_path / "store")
        await store.create("m", driver="none", options={"url": f"tcp://127.0.0.1:{silent_port}"})
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        started = time.monotonic()
        results = await asyncio.gather(*(store.list(timeout=1) for _ in range(3)))
        elapsed = time.monotonic() - started
        t.cancel()
        assert all(len(r) == 1 for r in results)
        assert elapsed < 2.5, f"three 1 s listings took {elapsed:.1f} s"
        assert ticks > 30, "the event loop kept running"

    run(main())


def test_custom_driver_through_aio(tmp_path):
    class Local:
        options = [dm.DriverOption("local-url", required=True)]
        needs_provisioning = False

        def __init__(self, context, options):
            self.url_ = options["local-url"]

        def create(self):
            pass

        def remove(self):
            pass

        def state(self):
            return "Running"

        def ip(self):
            return "127.0.0.1"

        def url(self):
            return self.url_

    async def main():
        store = aio.Store(tmp_path / "store")
        store.register_driver("local", Local)
        m = await store.create("l", driver="local", options={"local-url": "tcp://127.0.0.1:2376"})
        assert await m.url() == "tcp://127.0.0.1:2376"
        await store.remove("l")

    run(main())
