"""Blocking calls release the GIL while they wait, and can be interrupted."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import docker_machine as dm
from conftest import none_machine


class Counter(threading.Thread):
    """Counts while it gets the GIL."""

    def __init__(self):
        super().__init__(daemon=True)
        self.n = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.n += 1
            sum(range(100))  # pure bytecode: needs the GIL

    def __enter__(self):
        self.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join()


def test_waiting_in_rust_releases_the_gil(store, silent_port):
    """list() waits on a daemon that never answers: Rust code only."""
    none_machine(store, port=silent_port)
    with Counter() as c:
        before = c.n
        started = time.monotonic()
        store.list(timeout=1)
        elapsed = time.monotonic() - started
        during = c.n - before
    assert elapsed >= 0.9
    assert during > 1000, f"the other thread ran only {during} loops in {elapsed:.1f} s"


def test_python_driver_runs_while_the_caller_waits(store):
    """state() of a Python driver sleeps 1 s on a runtime thread while list() waits."""
    seen_threads = []

    class Slow:
        options = [dm.DriverOption("slow-url", required=True)]
        needs_provisioning = False

        def __init__(self, context, options):
            self.url_ = options["slow-url"]

        def create(self):
            pass

        def remove(self):
            pass

        def state(self):
            seen_threads.append(threading.get_ident())
            time.sleep(1)
            return "Running"

        def ip(self):
            return "127.0.0.1"

        def url(self):
            return self.url_

    store.register_driver("slow", Slow)
    store.create("s1", driver="slow", options={"slow-url": "tcp://127.0.0.1:1"})
    store.create("s2", driver="slow", options={"slow-url": "tcp://127.0.0.1:1"})
    seen_threads.clear()
    with Counter() as c:
        before = c.n
        started = time.monotonic()
        rows = store.list(timeout=5)
        elapsed = time.monotonic() - started
        during = c.n - before
    assert [r.state for r in rows] == ["Running", "Running"]
    assert during > 1000
    assert threading.get_ident() not in seen_threads
    assert elapsed < 1.9, f"both machines are queried at once ({elapsed:.1f} s)"


def test_ctrl_c_interrupts_a_blocking_call(tmp_path, silent_port):
    script = textwrap.dedent(
        f"""
        import signal, sys, docker_machine as dm
        # a launcher without job control starts background jobs with SIGINT
        # ignored, and Python then keeps it so: give the child its default
        signal.signal(signal.SIGINT, signal.default_int_handler)
        s = dm.Store({str(tmp_path / 'store')!r})
        s.create("m", driver="none", options={{"url": "tcp://127.0.0.1:{silent_port}"}})
        print("ready", flush=True)
        try:
            s.list(timeout=60)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(0)
        print("not interrupted", flush=True)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        started = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=20)
        assert out.strip() == "interrupted"
        assert time.monotonic() - started < 5
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
