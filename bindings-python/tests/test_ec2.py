"""The amazonec2 driver from Python, options keyed by the CLI's flag names,
against the EC2 emulator moto on loopback.

The full create lands on the suite's test host (index 6, as in
test_e2e.py): the instance gets a private address from a subnet whose whole
CIDR the host answers for (`ip route add local CIDR dev lo` inside its
namespace, a route via the host outside), so SSH and Docker reach the host
and nothing else. The other create fails on purpose after the key pair and
the security group exist (a user-data file that is not there); the machine
stays in state Error and remove cleans up.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest

import docker_machine
from _testhosts import ci_is_set, for_suite
from conftest import REPO
from test_e2e import HOST_INDEX, TEST_HOST_ENGINE, docker

# moto's default VPC: unreachable while a test routes, so that an instance
# placed there could never send traffic out through the default route
MOTO_DEFAULT_VPC = "172.31.0.0/16"


def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def moto():
    exe = shutil.which("moto_server")
    if exe is None:
        why = "moto_server is not installed (python3 -m pip install 'moto[server]')"
        if ci_is_set():
            pytest.fail(why)
        pytest.skip(why)
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


@pytest.fixture
def routed_subnet():
    """(namespace host, CIDR) with the CIDR answered by the suite's host."""
    hosts = for_suite("python")
    if os.geteuid() != 0:
        why = "routes to the test host need root"
        if ci_is_set():
            pytest.fail(why)
        pytest.skip(why)
    host = hosts.host(HOST_INDEX)
    assert host.name, "MT_HOST_NAMES names the test hosts"
    third = host.addr.split(".")[2]
    cidr = f"10.{199 + HOST_INDEX}.{third}.0/24"
    _ip("route", "replace", "unreachable", MOTO_DEFAULT_VPC)
    _ip("netns", "exec", host.name, "ip", "route", "replace", "local", cidr, "dev", "lo")
    _ip("route", "replace", cidr, "via", host.addr)
    try:
        yield hosts, cidr
    finally:
        subprocess.run(["ip", "route", "del", cidr], check=False)
        subprocess.run(["ip", "netns", "exec", host.name, "ip", "route", "del", "local", cidr, "dev", "lo"], check=False)
        subprocess.run(["ip", "route", "del", "unreachable", MOTO_DEFAULT_VPC], check=False)


def test_full_create_runs_a_container_then_remove(store, moto, routed_subnet, tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    hosts, cidr = routed_subnet
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPYENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "py-env-secret")
    ec2 = boto3.client(
        "ec2",
        endpoint_url=f"http://{moto}",
        region_name="us-east-1",
        aws_access_key_id="AKIDPY",
        aws_secret_access_key="py-secret",
    )
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    with open(f"{hosts.key}.pub", "rb") as f:
        ec2.import_key_pair(KeyName="mt-key", PublicKeyMaterial=f.read())
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    steps: list[str] = []
    m = store.create(
        "py-ec2-full",
        driver="amazonec2",
        options={
            "amazonec2-endpoint": moto,
            "amazonec2-insecure-transport": True,
            "amazonec2-subnet-id": subnet,
            "amazonec2-ami": ami,
            "amazonec2-instance-type": "t3.small",
            "amazonec2-private-address-only": True,
            "amazonec2-keypair-name": "mt-key",
            "amazonec2-ssh-keypath": hosts.key,
            "amazonec2-ssh-user": "root",
            "amazonec2-tags": "suite,python",
            "amazonec2-metadata-token": "required",
        },
        engine=TEST_HOST_ENGINE,
        progress=steps.append,
    )
    assert steps[-1] == "Docker is up and running!"
    assert m.state() == "Running"
    saved = m.inspect()["Driver"]
    ip = saved["IPAddress"]
    assert ip.startswith(cidr.rsplit(".", 1)[0] + "."), ip
    assert saved["AccessKey"] == "AKIDPYENV"
    inst = ec2.describe_instances(InstanceIds=[saved["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert inst["InstanceType"] == "t3.small"
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert {"Key": "suite", "Value": "python"} in inst["Tags"]

    # the docker CLI, configured by the machine's env_vars() only
    tar = tmp_path / "busybox.tar"
    subprocess.run(["bash", str(REPO / "scripts" / "make-test-image.sh"), str(tar)], check=True)
    docker(m, tmp_path, "import", str(tar), "mt-busybox:latest")
    out = docker(m, tmp_path, "run", "--rm", "--network", "none", "mt-busybox:latest", "echo", "hello-from-py-ec2")
    assert out.strip() == "hello-from-py-ec2"

    store.remove("py-ec2-full")
    assert store.names() == []
    state = ec2.describe_instances(InstanceIds=[saved["InstanceId"]])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "terminated"
    assert "mt-key" in [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    left = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["docker-machine"]}])
    assert left["SecurityGroups"] == []


def test_create_with_flag_named_options_then_remove(store, moto, tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))
    ec2 = boto3.client(
        "ec2",
        endpoint_url=f"http://{moto}",
        region_name="us-east-1",
        aws_access_key_id="AKIDPY",
        aws_secret_access_key="py-secret",
    )
    vpc = ec2.create_vpc(CidrBlock="10.250.0.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.250.0.0/24", AvailabilityZone="us-east-1a")[
        "Subnet"
    ]["SubnetId"]
    missing = tmp_path / "no-such-user-data"
    with pytest.raises(docker_machine.MachineError) as failed:
        store.create(
            "py-ec2",
            driver="amazonec2",
            options={
                "amazonec2-endpoint": moto,
                "amazonec2-insecure-transport": True,
                "amazonec2-access-key": "AKIDPY",
                "amazonec2-secret-key": "py-secret",
                "amazonec2-subnet-id": subnet,
                "amazonec2-ami": "ami-12345678",
                "amazonec2-private-address-only": True,
                "amazonec2-open-port": ["8080", "53/udp"],
                "amazonec2-userdata": str(missing),
            },
        )
    assert "amazonec2-userdata" in str(failed.value)
    host = store.get("py-ec2")
    assert host.state() == "Error"
    saved = host.inspect()["Driver"]
    assert saved["KeyName"] == "py-ec2" and saved["VpcId"] == vpc and saved["PrivateIPOnly"] is True
    assert "py-ec2" in [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["docker-machine"]}])
    rules = {(p["FromPort"], p["IpProtocol"]) for p in groups["SecurityGroups"][0]["IpPermissions"]}
    assert rules == {(22, "tcp"), (2376, "tcp"), (8080, "tcp"), (53, "udp")}

    store.remove("py-ec2")
    assert store.names() == []
    assert "py-ec2" not in [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    left = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["docker-machine"]}])
    assert left["SecurityGroups"] == []
