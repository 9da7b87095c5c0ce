"""The amazonec2 driver from Python, options keyed by the CLI's flag names,
against the EC2 emulator moto on loopback.

The create fails on purpose after the key pair and the security group exist
(a user-data file that is not there), so that nothing ever connects to an
address moto hands out; the machine stays in state Error and remove cleans up.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest

import docker_machine
from _testhosts import ci_is_set


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
