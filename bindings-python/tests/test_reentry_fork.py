"""The library from unusual places: a forked child, a progress callback, a
driver hook."""

import os
import time

import pytest

import docker_machine as dm


def _wait_child(pid, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def test_a_forked_child_gets_a_working_runtime(store, closed_port):
    store.create("n1", driver="none", options={"url": f"tcp://127.0.0.1:{closed_port}"})
    assert [r.name for r in store.list(timeout=1)] == ["n1"]  # runtime started in the parent
    pid = os.fork()
    if pid == 0:  # the child: the parent's runtime threads do not exist here
        code = 1
        try:
            rows = store.list(timeout=1)
            code = 0 if [r.name for r in rows] == ["n1"] else 2
        finally:
            os._exit(code)
    assert _wait_child(pid) == 0
    assert [r.name for r in store.list(timeout=1)] == ["n1"]  # and the parent still works


def test_a_progress_callback_can_call_the_library(store, closed_port):
    seen = []

    def progress(step):
        if step == "Running pre-create checks":
            seen.append([r.name for r in store.list(timeout=1)])

    store.create("n1", driver="none", options={"url": f"tcp://127.0.0.1:{closed_port}"})
    store.create("n2", driver="none", options={"url": f"tcp://127.0.0.1:{closed_port}"}, progress=progress)
    assert seen == [["n1"]]


class _Quiet:
    """A driver for a daemon that is not there; subclasses change one method."""

    options: list = []
    needs_provisioning = False
    port = 1

    def __init__(self, ctx, options):
        self.name = ctx.machine_name

    def create(self):
        pass

    def remove(self):
        pass

    def state(self):
        return "Running"

    def ip(self):
        return "127.0.0.1"

    def url(self):
        return f"tcp://127.0.0.1:{self.port}"


def test_a_driver_hook_can_call_the_library(store, closed_port):
    url = f"tcp://127.0.0.1:{closed_port}"
    seen = []

    class Nested(_Quiet):
        def create(self):
            seen.append(sorted(r.name for r in store.list(timeout=1)))

    store.register_driver("nested", Nested)
    store.create("n1", driver="none", options={"url": url})
    store.create("n2", driver="nested")
    assert seen == [["n1", "n2"]]


def test_list_is_bounded_by_its_timeout_even_while_a_driver_loads(store, closed_port):
    class SlowToLoad(_Quiet):
        port = closed_port

    store.register_driver("slowload", SlowToLoad)
    store.create("slow", driver="slowload")

    class Loading(SlowToLoad):
        def __init__(self, ctx, options):
            time.sleep(4)
            super().__init__(ctx, options)

    store.register_driver("slowload", Loading)
    started = time.monotonic()
    (row,) = store.list(timeout=1)
    took = time.monotonic() - started
    assert row.state == "Timeout", row
    assert "loading" in row.error, row
    assert took < 3.5, took
