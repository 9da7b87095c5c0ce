"""Drivers written in Python, registered with a store and used by create, list, get and remove."""

import json
import sys
import threading
import time
from urllib.parse import urlparse

import pytest

import docker_machine as dm

EVENTS = []


class LocalDriver:
    """An existing daemon at a URL, like the built-in `none` driver."""

    options = [
        dm.DriverOption("local-url", required=True, env_var="LOCAL_URL", help="daemon URL"),
        dm.DriverOption("local-delay", "int", default=0, help="seconds state() takes"),
        dm.DriverOption("local-labels", "list", help="labels"),
        dm.DriverOption("local-flag", "bool", default=False),
    ]
    needs_provisioning = False

    def __init__(self, context, options):
        self.context = context
        self.options = options
        self.url_ = options["local-url"]
        self.delay = options.get("local-delay", 0)
        EVENTS.append(("init", context.machine_name, dict(options), threading.get_ident()))

    def create(self):
        EVENTS.append(("create", self.context.machine_name))

    def remove(self):
        EVENTS.append(("remove", self.context.machine_name))

    def state(self):
        time.sleep(self.delay)
        return "Running"

    def ip(self):
        return urlparse(self.url_).hostname

    def url(self):
        return self.url_

    def restart(self):
        EVENTS.append(("restart", self.context.machine_name))

    def stop(self):
        raise NotImplementedError

    def kill(self):
        raise ValueError("the power switch is stuck")


@pytest.fixture(autouse=True)
def clear_events():
    EVENTS.clear()


@pytest.fixture
def local(store):
    store.register_driver("local", LocalDriver)
    return store


def test_register_create_list_get_remove(local, store, closed_port):
    assert "local" in store.drivers()
    url = f"tcp://127.0.0.1:{closed_port}"
    m = store.create("box", driver="local", options={"local-url": url, "local-labels": ["a", "b"]})
    assert (m.name, m.driver_name) == ("box", "local")
    assert m.url() == url and m.ip() == "127.0.0.1" and m.state() == "Running"

    init = EVENTS[0]
    assert init[:2] == ("init", "box")
    assert init[2] == {"local-url": url, "local-delay": 0, "local-labels": ["a", "b"], "local-flag": False}
    assert ("create", "box") in EVENTS
    ctx = m.inspect()
    # the driver object: the base fields first, then the driver's own (its create options by default)
    keys = list(ctx["Driver"])
    assert keys[:2] == ["IPAddress", "MachineName"]
    assert ctx["Driver"]["local-url"] == url
    assert ctx["Driver"]["MachineName"] == "box"

    (row,) = store.list(timeout=5)
    assert (row.name, row.driver_name, row.state, row.url) == ("box", "local", "Running", url)
    assert "not answering" in row.error

    EVENTS.clear()
    again = store.get("box")
    assert again.url() == url
    assert EVENTS[0][2] == {"local-url": url, "local-delay": 0, "local-labels": ["a", "b"], "local-flag": False}, "loaded from config.json"

    store.remove("box")
    assert ("remove", "box") in EVENTS
    assert store.names() == []


def test_context_is_the_machines_place_in_the_store(local, store):
    seen = {}

    class Spy(LocalDriver):
        def __init__(self, context, options):
            super().__init__(context, options)
            seen["ctx"] = context

    store.register_driver("spy", Spy)
    store.create("spied", driver="spy", options={"local-url": "tcp://127.0.0.1:2376"})
    ctx = seen["ctx"]
    assert ctx.machine_name == "spied"
    assert ctx.store_path == str(store.path)
    assert ctx.machine_dir == str(store.path / "machines" / "spied")
    assert "spied" in repr(ctx)


def test_options_are_resolved_and_checked(local, store, monkeypatch):
    with pytest.raises(dm.InvalidOptionError) as ei:
        store.create("a", driver="local")
    assert "local-url" in str(ei.value)
    with pytest.raises(dm.InvalidOptionError) as ei:
        store.create("a", driver="local", options={"local-url": "tcp://h:1", "local-delay": "soon"})
    assert "local-delay" in str(ei.value) and "soon" in str(ei.value)
    with pytest.raises(dm.InvalidOptionError) as ei:
        store.create("a", driver="local", options={"local-url": "tcp://h:1", "generic-ip-address": "x"})
    assert "generic-ip-address" in str(ei.value)
    # from the environment variable, with kinds converted
    monkeypatch.setenv("LOCAL_URL", "tcp://127.0.0.1:2376")
    store.create("a", driver="local", options={"local-delay": "0", "local-flag": "yes", "--local-labels": "x"})
    assert EVENTS[0][2] == {"local-url": "tcp://127.0.0.1:2376", "local-delay": 0, "local-flag": True, "local-labels": ["x"]}


def test_lifecycle_methods(local, store):
    m = store.create("box", driver="local", options={"local-url": "tcp://127.0.0.1:2376"})
    m.restart()
    assert EVENTS[-1] == ("restart", "box")
    with pytest.raises(dm.NotSupportedError) as ei:
        m.start()  # not defined
    assert "start" in str(ei.value) and ei.value.machine == "box"
    with pytest.raises(dm.NotSupportedError):
        m.stop()  # raises NotImplementedError
    with pytest.raises(dm.DriverError) as ei:
        m.kill()
    e = ei.value
    assert type(e) is dm.DriverError and e.code == "Driver" and e.machine == "box"
    assert isinstance(e.__cause__, ValueError)
    assert "the power switch is stuck" in str(e)
    with pytest.raises(dm.SshError):
        m.ssh("true")  # no ssh_target()


def test_failing_create_keeps_the_machine_for_remove(store):
    class Broken(LocalDriver):
        def create(self):
            raise RuntimeError("out of capacity")

    store.register_driver("broken", Broken)
    with pytest.raises(dm.DriverError) as ei:
        store.create("b", driver="broken", options={"local-url": "tcp://127.0.0.1:2376"})
    e = ei.value
    assert e.machine == "b"
    assert isinstance(e.__cause__, RuntimeError)
    assert str(e.__cause__) == "out of capacity"
    assert e.__cause__.__traceback__ is not None, "the driver's traceback is kept"
    assert "RuntimeError: out of capacity" in str(e)
    assert store.get("b").state() == "Error"
    (row,) = store.list()
    assert row.state == "Error" and "out of capacity" in row.error
    store.remove("b")
    assert store.names() == []


def test_pre_create_check_refuses(store):
    class Picky(LocalDriver):
        def pre_create_check(self):
            raise LookupError("no such rack")

    store.register_driver("picky", Picky)
    with pytest.raises(dm.PreCreateCheckError) as ei:
        store.create("p", driver="picky", options={"local-url": "tcp://127.0.0.1:2376"})
    assert "no such rack" in str(ei.value)
    assert ei.value.code == "PreCreateCheck"
    assert store.names() == []


def test_bad_state_name(store):
    class Confused(LocalDriver):
        def state(self):
            return "Exploded"

    store.register_driver("confused", Confused)
    with pytest.raises(dm.DriverError) as ei:
        store.create("c", driver="confused", options={"local-url": "tcp://127.0.0.1:2376"})
    assert "Exploded" in str(ei.value)


def test_save_and_load_round_trip(store):
    class Remembers(LocalDriver):
        def create(self):
            self.options = dict(self.options, **{"instance-id": "i-123"})

        def save(self):
            return dict(self.options)

    store.register_driver("remembers", Remembers)
    store.create("r", driver="remembers", options={"local-url": "tcp://127.0.0.1:2376"})
    with open(store.path / "machines" / "r" / "config.json") as f:
        assert json.load(f)["Driver"]["instance-id"] == "i-123"
    EVENTS.clear()
    store.get("r")
    assert EVENTS[0][2]["instance-id"] == "i-123"
    assert "MachineName" not in EVENTS[0][2], "the base fields are the store's, not the driver's"


def test_factory_function_with_options_given_at_registration(store):
    made = []

    def factory(context, options):
        made.append(options)
        return LocalDriver(context, {"local-url": options["endpoint"]})

    store.register_driver("fn", factory, options=[dm.DriverOption("endpoint", required=True)])
    m = store.create("f", driver="fn", options={"endpoint": "tcp://127.0.0.1:2376"})
    assert made == [{"endpoint": "tcp://127.0.0.1:2376"}]
    assert m.url() == "tcp://127.0.0.1:2376"


def test_registration_is_checked(store):
    with pytest.raises(TypeError):
        store.register_driver("x", 42)
    with pytest.raises(TypeError):
        store.register_driver("x", LocalDriver, options=["local-url"])
    assert "x" not in store.drivers()
    # a registration replaces the driver of that name, in this store only
    store.register_driver("none", LocalDriver)
    store.create("n", driver="none", options={"local-url": "tcp://127.0.0.1:2376"})
    assert dm.Store(store.path / "other").drivers() == ["amazonec2", "generic", "none", "qemu"]


def test_driver_option_declaration():
    o = dm.DriverOption("--x-port", "int", default=22, env_var="X_PORT", help="port", required=True)
    assert (o.flag, o.kind, o.default, o.env_var, o.help, o.required) == ("x-port", "int", "22", "X_PORT", "port", True)
    assert repr(o) == 'DriverOption("x-port", "int", required=True)'
    assert dm.DriverOption("x").kind == "string"
    assert dm.DriverOption("x", "bool", default=True).default == "true"
    with pytest.raises(ValueError):
        dm.DriverOption("x", "float")
    t = dm.SshTarget("192.0.2.1")
    assert (t.host, t.port, t.user, t.key_path) == ("192.0.2.1", 22, "root", None)


def test_progress_errors_are_unraisable_and_create_goes_on(store, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))

    def progress(step):
        raise KeyError(step)

    store.create("p", driver="none", options={"url": "tcp://127.0.0.1:2376"}, progress=progress)
    assert seen and isinstance(seen[0], KeyError)
    assert store.names() == ["p"]


def test_bad_ssh_target_is_unraisable_and_means_no_ssh(store, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))

    class Odd(LocalDriver):
        def ssh_target(self):
            return ("192.0.2.1", 22)

    store.register_driver("odd", Odd)
    m = store.create("o", driver="odd", options={"local-url": "tcp://127.0.0.1:2376"})
    with pytest.raises(dm.SshError):
        m.ssh("true")
    assert seen and isinstance(seen[0], TypeError)


def test_the_cores_rules_refuse_a_driver_object_up_front(store):
    """The rules every foreign driver follows (machine_core::foreign), the same in Node:
    the four methods must exist and engine_port must be a port, checked when the object is made."""

    class NoCreate(LocalDriver):
        create = None  # not a method

    class BadPort(LocalDriver):
        engine_port = 70000

    class BoolPort(LocalDriver):
        engine_port = True

    class BadFlag(LocalDriver):
        needs_provisioning = "yes"

    for name, cls, wanted in [
        ("nocreate", NoCreate, "no method create()"),
        ("badport", BadPort, "engine_port 70000 is not a port"),
        ("boolport", BoolPort, "engine_port true is not a port"),
        ("badflag", BadFlag, 'needs_provisioning "yes" is not true or false'),
    ]:
        store.register_driver(name, cls)
        with pytest.raises(dm.MachineError) as ei:
            store.create(name, driver=name, options={"local-url": "tcp://127.0.0.1:2376"})
        assert wanted in str(ei.value), str(ei.value)
        assert name not in store.names()
    # none of the refused objects was asked to create anything
    assert not [e for e in EVENTS if e[0] == "create"]
