"""Swarm-mode options and operations against the `none` driver: what can be
checked without a daemon (the cluster itself is tested end to end by
machine-cli/tests/swarm_e2e.rs)."""

import pytest

import docker_machine
from docker_machine import InvalidOptionError, MachineError, SwarmError


def test_swarm_options_are_declared():
    opts = {o.flag: o for o in docker_machine.swarm_options()}
    assert {"swarm", "swarm-master", "swarm-discovery", "swarm-addr", "swarm-opt", "swarm-join-opt"} <= set(opts)
    assert opts["swarm-master"].kind == "bool"
    assert opts["swarm-opt"].kind == "list"
    assert opts["swarm-image"].env_var == "MACHINE_SWARM_IMAGE"


def test_joining_a_machine_not_in_the_store_is_refused_before_anything_is_made(store, closed_port):
    with pytest.raises(SwarmError) as e:
        store.create(
            "w",
            driver="none",
            options={"url": f"tcp://127.0.0.1:{closed_port}"},
            swarm={"swarm": True, "swarm-discovery": "machine://nope"},
        )
    assert e.value.code == "Swarm"
    assert 'names machine "nope", which is not in the store' in str(e.value)
    assert store.names() == []


def test_joining_a_machine_that_is_no_manager_is_refused(store, closed_port):
    store.create("plain", driver="none", options={"url": f"tcp://127.0.0.1:{closed_port}"})
    with pytest.raises(SwarmError, match="machine plain is not a swarm manager"):
        store.create(
            "w",
            driver="none",
            options={"url": f"tcp://127.0.0.1:{closed_port}"},
            swarm={"swarm": True, "swarm-discovery": "machine://plain"},
        )
    assert store.names() == ["plain"]
    plain = store.get("plain")
    with pytest.raises(SwarmError, match="machine plain is not in a swarm"):
        plain.swarm_nodes()
    with pytest.raises(SwarmError):
        plain.swarm_members()
    with pytest.raises(SwarmError):
        plain.swarm_leave()


@pytest.mark.parametrize(
    "swarm, flag",
    [
        ({"swarm": True}, "swarm-discovery"),
        ({"swarm": True, "swarm-discovery": "token://abc"}, "swarm-discovery"),
        ({"swarm-master": True, "swarm-opt": ["autolock=maybe"]}, "swarm-opt"),
        ({"swarm-color": "blue"}, "swarm-color"),
    ],
)
def test_bad_swarm_options_name_the_flag(store, swarm, flag):
    with pytest.raises(InvalidOptionError) as e:
        store.create("m", driver="none", options={"url": "tcp://127.0.0.1:2376"}, swarm=swarm)
    assert flag in str(e.value)
    assert store.names() == []


def test_a_manager_whose_daemon_does_not_answer_is_kept_with_its_cluster(store, closed_port):
    with pytest.raises(MachineError):
        store.create(
            "mgr",
            driver="none",
            options={"url": f"tcp://127.0.0.1:{closed_port}"},
            swarm={"swarm-master": True, "swarm-opt": ["dispatcher-heartbeat=2s"]},
        )
    mgr = store.get("mgr")
    assert mgr.state() == "Error"
    s = mgr.inspect()["HostOptions"]["SwarmOptions"]
    assert (s["IsSwarm"], s["Master"], s["Discovery"]) == (True, True, "machine://mgr")
    assert s["ArbitraryFlags"] == ["dispatcher-heartbeat=2s"]
    members = mgr.swarm_members()
    assert (members.cluster, members.managers, members.workers) == ("machine://mgr", ["mgr"], [])
    [row] = store.list(timeout=2)
    assert row.swarm == "mgr (master)"
    with pytest.raises(SwarmError, match="no manager of the swarm machine://mgr answers"):
        mgr.swarm_manager()
    # removal does not need the daemon
    store.remove("mgr")
    assert store.names() == []
