"""End-to-end: the generic driver, the README's generic example and the
Python example driver against a real host of scripts/testhosts.sh (a network
namespace with its own sshd, Debian's docker.io installed, no daemon running
until provisioning starts one).

The hosts are announced by MT_HOSTS (addresses), MT_KEY (client key) and
MT_SUDO_USER, as printed by `scripts/testhosts.sh env`, and read by
_testhosts.py. Suite "python" owns the host at index 6 of MT_HOSTS
(test-support/hosts.json; the others belong to other suites); its tests run
one at a time. Without it they are skipped, or fail when CI is set.
"""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import docker_machine
from _testhosts import for_suite
from conftest import REPO

HOST_INDEX = 6  # the suite's one host (test-support/hosts.json)
# The hosts share this machine's kernel: no bridge or iptables for their daemons,
# and Docker is installed already.
TEST_HOST_ENGINE = {
    "engine-opt": ["bridge=none", "iptables=false", "ip6tables=false"],
    "engine-install-url": "none",
}


@pytest.fixture(scope="module")
def host():
    hosts = for_suite("python")
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is needed (scripts/testhosts.sh install)")
    return {
        "ip": hosts.addr(HOST_INDEX),
        "key": hosts.key,
        "sudo_user": hosts.sudo_user,
    }


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A busybox root file system for `docker import` (no registry is reachable)."""
    tar = tmp_path_factory.mktemp("image") / "busybox.tar"
    subprocess.run(["bash", str(REPO / "scripts" / "make-test-image.sh"), str(tar)], check=True)
    return tar


def docker(machine, tmp_path, *args, check=True):
    """The real docker CLI, configured only by the machine's env_vars()."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(machine.env_vars())
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    out = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, f"docker {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def test_generic_create_ssh_run_container_regenerate_remove(host, image, tmp_path):
    store = docker_machine.Store(tmp_path / "store")
    steps = []
    m = store.create(
        "py-e2e",
        driver="generic",
        options={
            "generic-ip-address": host["ip"],
            "generic-ssh-key": host["key"],
            "generic-ssh-user": "root",
        },
        engine={**TEST_HOST_ENGINE, "engine-label": ["suite=python"]},
        progress=steps.append,
    )
    assert steps[-1] == "Docker is up and running!"
    assert "Connecting over SSH" in steps
    assert m.state() == "Running"
    assert m.url() == f"tcp://{host['ip']}:2376"
    assert m.inspect()["Driver"]["IPAddress"] == host["ip"]

    # ssh: output, errors and exit status
    out = m.ssh("hostname; echo oops >&2; exit 3")
    assert out.stdout.strip() == "py-e2e"
    assert out.stderr.strip() == "oops"
    assert out.exit_status == 3
    assert m.ssh("stat -c %a /etc/docker/server-key.pem").stdout.strip() == "600"

    # the docker CLI with env_vars(): import an image and run a container
    docker(m, tmp_path, "import", str(image), "mt-busybox:py")
    said = docker(m, tmp_path, "run", "--rm", "--network", "none", "mt-busybox:py", "echo", "hello-from-python")
    assert said.strip() == "hello-from-python"
    labels = docker(m, tmp_path, "info", "--format", "{{json .Labels}}")
    assert "provider=generic" in labels and "suite=python" in labels

    # config(): separate arguments for the docker CLI, no shell in between
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    clean["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    out = subprocess.run(
        ["docker", *m.config(), "version", "--format", "{{.Server.Os}}"],
        env=clean, capture_output=True, text=True, timeout=120,
    )
    assert (out.returncode, out.stdout.strip()) == (0, "linux"), out.stderr

    (row,) = store.list(timeout=10)
    assert (row.name, row.state, row.error) == ("py-e2e", "Running", "")
    assert row.docker_version.startswith("v")

    # regenerate-certs: a new server certificate, on the machine, and the daemon still answers
    cert = Path(store.path, "machines", "py-e2e", "server.pem")
    before = cert.read_bytes()
    regen_steps = []
    m.regenerate_certs(progress=regen_steps.append)
    after = cert.read_bytes()
    assert after != before
    assert regen_steps
    assert m.ssh("cat /etc/docker/server.pem").stdout_bytes == after
    docker(m, tmp_path, "version")

    # with client_certs, the store's CA is made anew too, and the docker CLI follows
    ca = Path(store.path, "certs", "ca.pem")
    old_ca = ca.read_bytes()
    m.regenerate_certs(client_certs=True)
    assert ca.read_bytes() != old_ca
    assert Path(store.path, "machines", "py-e2e", "ca.pem").read_bytes() == ca.read_bytes()
    docker(m, tmp_path, "version")

    # provision and upgrade (install method "none": the installed Docker is kept)
    prov_steps = []
    m.provision(progress=prov_steps.append)
    assert "Waiting for the Docker daemon to answer over TLS" in prov_steps
    m.upgrade()
    assert docker(m, tmp_path, "run", "--rm", "--network", "none", "mt-busybox:py", "true") == ""

    # copies both ways
    up = tmp_path / "up.txt"
    up.write_text("payload\n")
    m.copy_to(up, "/tmp/py-up.txt")
    down = tmp_path / "down.txt"
    m.copy_from("/tmp/py-up.txt", down)
    assert down.read_text() == "payload\n"

    # a host key other than the one pinned at create time is refused
    pin = Path(store.path, "machines", "py-e2e", "known_hosts")
    real_pin = pin.read_text()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other_pub = (tmp_path / "other.pub").read_text().split()[:2]
    pin.write_text(f"{real_pin.split()[0]} {' '.join(other_pub)}\n")
    with pytest.raises(docker_machine.HostKeyMismatchError) as ei:
        m.ssh("true")
    assert ei.value.code == "HostKeyMismatch" and ei.value.machine == "py-e2e"
    assert isinstance(ei.value, docker_machine.SshError)
    pin.write_text(real_pin)
    assert m.ssh("true").exit_status == 0

    # start/stop are not the generic driver's to do
    with pytest.raises(docker_machine.NotSupportedError):
        m.stop()

    # the same daemon adopted from another store with the machine's certificates
    mdir = Path(store.path, "machines", "py-e2e")
    other = docker_machine.Store(tmp_path / "adopting-store")
    tls = {f"tls-{k}": str(mdir / f) for k, f in (("ca-cert", "ca.pem"), ("client-cert", "cert.pem"), ("client-key", "key.pem"))}
    url = {"url": m.url()}
    with pytest.raises(docker_machine.InvalidOptionError):
        other.create("half", driver="none", options=url, engine={"tls-ca-cert": tls["tls-ca-cert"]})
    adopted = other.create("adopted", driver="none", options=url, engine=tls)
    version = m.docker_version()
    assert version["api_version"] and version["os"] == "linux"
    assert adopted.docker_version() == version
    assert adopted.status() == {"name": "adopted", "state": "Running", "error": ""}
    # a CA that did not sign the daemon's certificate: refused, nothing added
    wrong = dict(tls, **{"tls-ca-cert": str(Path(other.path, "certs", "ca.pem"))})
    with pytest.raises(docker_machine.EngineError):
        other.create("wrong", driver="none", options=url, engine=wrong)
    assert other.names() == ["adopted"]

    store.remove("py-e2e")
    assert store.names() == []


def test_readme_generic_example(host, tmp_path, monkeypatch, capsys):
    """The README's generic-driver block, with the test host's address and key
    and the engine options the test hosts need filled in."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    import re

    (code,) = [b for b in re.findall(r"^```python\n(.*?)^```", readme, flags=re.S | re.M) if "192.0.2.10" in b]
    for old, new in [
        ('"192.0.2.10"', json.dumps(host["ip"])),
        ('"/home/me/.ssh/id_ed25519"', json.dumps(host["key"])),
        ('engine={"engine-label": ["env=staging"]}', f'engine={{"engine-label": ["env=staging"], **{TEST_HOST_ENGINE!r}}}'),
    ]:
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.setenv("MACHINE_STORAGE_PATH", str(tmp_path / "machines"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    for var in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    exec(compile(code, "README.md generic example", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "0 Linux" in out  # exit status and `uname -sr`
    assert docker_machine.Store().names() == []


def test_python_example_driver_provisions_a_machine(host, tmp_path, capsys):
    """examples/python_custom_driver.py: a driver written in Python, through the
    whole create sequence (provisioning over SSH as a sudo user)."""
    spec = importlib.util.spec_from_file_location("python_custom_driver", REPO / "examples" / "python_custom_driver.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"py-inv": {"address": host["ip"], "user": host["sudo_user"], "key": host["key"]}}))
    store_dir = tmp_path / "store"
    argv = [str(store_dir), str(inventory), "py-inv", "--engine-install-url", "none"]
    for opt in TEST_HOST_ENGINE["engine-opt"]:
        argv += ["--engine-opt", opt]
    assert example.main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"tcp://{host['ip']}:2376"
    assert "export DOCKER_HOST=" in out

    # loaded again from config.json through the driver's save()
    store = docker_machine.Store(store_dir)
    store.register_driver("inventory", example.InventoryDriver)
    m = store.get("py-inv")
    assert m.driver_name == "inventory"
    assert m.inspect()["Driver"]["entry"]["address"] == host["ip"]
    assert m.ssh("id -un").stdout.strip() == host["sudo_user"]
    docker(m, tmp_path, "version")
    with pytest.raises(docker_machine.NotSupportedError):
        m.start()

    # a name that is not in the inventory: refused by the pre-create check
    with pytest.raises(docker_machine.PreCreateCheckError) as ei:
        store.create("elsewhere", driver="inventory", options={"inventory-file": str(inventory)})
    assert "elsewhere" in str(ei.value)

    store.remove("py-inv")
    assert store.names() == []
