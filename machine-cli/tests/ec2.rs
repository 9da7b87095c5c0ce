//! End-to-end: the `amazonec2` driver through the `machine` binary against
//! the EC2 emulator moto (`moto_server`, started on loopback by each test
//! and stopped with it).
//!
//! moto's instances get private addresses from their subnet, so each test
//! makes a subnet whose whole CIDR one test host answers for: inside the
//! host's network namespace `ip route add local CIDR dev lo`, outside a
//! route for the CIDR via the host's address. With
//! `--amazonec2-private-address-only` the driver then reaches the host over
//! SSH and provisions Docker on it. Hosts 15 and 16 of `MT_HOSTS` (suite
//! `ec2` of test-support/hosts.json): 15 for creates that provision (one at
//! a time), 16 for creates that fail after the instance exists.
//!
//! No test reaches any address but loopback and these hosts: credentials
//! are always given (the instance metadata service is disabled or served on
//! loopback), and every endpoint is moto's.

mod common;

use common::{bin, ok, repo, test_image, text};

use machine_drivers::amazonec2::api::{Ec2Client, Endpoint, Params, Xml};
use machine_drivers::amazonec2::creds::Credentials;
use machine_test_support::test_hosts::{for_suite, Hosts, Suite};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Creates that provision Docker on host 15 run one at a time.
static PROVISIONING: Mutex<()> = Mutex::new(());

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `moto_server` on loopback, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Moto> {
        Moto::start_with(&[])
    }

    /// With extra environment for moto (e.g. `INITIAL_NO_AUTH_ACTION_COUNT`).
    fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        if Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            machine_test_support::skip_or_fail(
                "moto_server (the EC2 emulator)",
                "install it with `python3 -m pip install 'moto[server]'` (scripts/test.sh does)",
            );
            return None;
        }
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn moto_server");
            let mut m = Moto { child, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(m);
                }
                if m.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = m.child.kill();
        }
        panic!("moto_server did not start");
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instance as moto describes it: id, state, tags.
type Described = (String, String, Vec<(String, String)>);

/// Calls to moto with this project's client (moto does not check signatures).
struct Ec2 {
    rt: tokio::runtime::Runtime,
    client: Ec2Client,
}

impl Ec2 {
    fn new(endpoint: &str) -> Ec2 {
        Ec2::with_keys(endpoint, "AKIDTEST", "test-secret")
    }

    fn with_keys(endpoint: &str, access: &str, secret: &str) -> Ec2 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let ep = Endpoint::resolve("us-east-1", endpoint, true).expect("endpoint");
        let creds = Credentials {
            access_key: access.into(),
            secret_key: secret.into(),
            session_token: None,
            source: "test".into(),
        };
        Ec2 {
            rt,
            client: Ec2Client::new(ep, creds, 0).expect("client"),
        }
    }

    fn call(&self, action: &str, params: &[(&str, &str)]) -> Xml {
        let mut p = Params::new();
        for (k, v) in params {
            p.add(*k, *v);
        }
        self.rt
            .block_on(self.client.call(action, &p))
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    /// Every instance: (id, state, tags).
    fn instances(&self) -> Vec<Described> {
        let x = self.call("DescribeInstances", &[]);
        x.items("reservationSet")
            .into_iter()
            .flat_map(|r| r.items("instancesSet"))
            .map(|i| {
                let tags = i
                    .items("tagSet")
                    .iter()
                    .map(|t| (t.text_at("key"), t.text_at("value")))
                    .collect();
                (
                    i.text_at("instanceId"),
                    i.text_at("instanceState/name"),
                    tags,
                )
            })
            .collect()
    }

    fn instance(&self, id: &str) -> Xml {
        let x = self.call("DescribeInstances", &[("InstanceId.1", id)]);
        x.items("reservationSet")
            .into_iter()
            .flat_map(|r| r.items("instancesSet"))
            .find(|i| i.text_at("instanceId") == id)
            .cloned()
            .unwrap_or_else(|| panic!("no instance {id}"))
    }

    fn key_names(&self) -> Vec<String> {
        self.call("DescribeKeyPairs", &[])
            .items("keySet")
            .iter()
            .map(|k| k.text_at("keyName"))
            .collect()
    }

    fn group_names(&self) -> Vec<String> {
        self.call("DescribeSecurityGroups", &[])
            .items("securityGroupInfo")
            .iter()
            .map(|g| g.text_at("groupName"))
            .collect()
    }
}

/// A VPC and subnet in moto whose CIDR lands on one test host.
struct Net {
    cidr: String,
    subnet: String,
    ami: String,
}

/// Routes for `cidr` to test host `name` (`addr`); removed when dropped.
struct Routes {
    cidr: String,
    ns: String,
}

/// The address range of moto's default VPC.
const MOTO_DEFAULT_VPC: &str = "172.31.0.0/16";

/// How many tests use each CIDR's routes: the first adds them, the last
/// removes them.
static ROUTE_USERS: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());

impl Routes {
    fn add(cidr: &str, ns: &str, addr: &str) -> Routes {
        let mut users = ROUTE_USERS.lock().unwrap_or_else(|e| e.into_inner());
        match users.iter_mut().find(|(c, _)| c == cidr) {
            Some((_, n)) => *n += 1,
            None => {
                let run = |args: &[&str]| {
                    let st = Command::new(args[0]).args(&args[1..]).status().expect("ip");
                    assert!(st.success(), "{args:?}");
                };
                if users.is_empty() {
                    // moto's default VPC: an instance placed there (a spot
                    // request moto puts outside its subnet) is unreachable
                    // here instead of going out through the default route
                    run(&["ip", "route", "replace", "unreachable", MOTO_DEFAULT_VPC]);
                }
                run(&[
                    "ip", "netns", "exec", ns, "ip", "route", "replace", "local", cidr, "dev", "lo",
                ]);
                run(&["ip", "route", "replace", cidr, "via", addr]);
                users.push((cidr.to_string(), 1));
            }
        }
        Routes {
            cidr: cidr.to_string(),
            ns: ns.to_string(),
        }
    }
}

impl Drop for Routes {
    fn drop(&mut self) {
        let mut users = ROUTE_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = users.iter().position(|(c, _)| *c == self.cidr) {
            users[i].1 -= 1;
            if users[i].1 > 0 {
                return;
            }
            users.remove(i);
            if users.is_empty() {
                let _ = Command::new("ip")
                    .args(["route", "del", "unreachable", MOTO_DEFAULT_VPC])
                    .status();
            }
        }
        let _ = Command::new("ip")
            .args(["route", "del", &self.cidr])
            .status();
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "ip", "route", "del", "local", &self.cidr, "dev", "lo",
            ])
            .status();
    }
}

/// The CIDR host `index` answers for: 10.(199+index).X.0/24, X the third
/// octet of the test hosts' network, so that two sets of hosts on one
/// machine do not collide.
fn cidr_for(hosts: &Hosts, index: usize) -> String {
    let third = hosts
        .addr(index)
        .split('.')
        .nth(2)
        .expect("an IPv4 test host")
        .to_string();
    format!("10.{}.{third}.0/24", 199 + index)
}

fn make_net(ec2: &Ec2, hosts: &Hosts, index: usize) -> (Net, Routes) {
    let cidr = cidr_for(hosts, index);
    let host = hosts.host(index);
    let ns = host.name.clone().expect("MT_HOST_NAMES names the host");
    let routes = Routes::add(&cidr, &ns, &host.addr);
    let vpc = ec2
        .call("CreateVpc", &[("CidrBlock", &cidr)])
        .text_at("vpc/vpcId");
    let subnet = ec2
        .call(
            "CreateSubnet",
            &[
                ("VpcId", &vpc),
                ("CidrBlock", &cidr),
                ("AvailabilityZone", "us-east-1a"),
            ],
        )
        .text_at("subnet/subnetId");
    let ami = ec2
        .call("DescribeImages", &[])
        .items("imagesSet")
        .first()
        .map(|i| i.text_at("imageId"))
        .expect("moto has images");
    (Net { cidr, subnet, ami }, routes)
}

struct Cli {
    store: PathBuf,
    home: PathBuf,
    env: Vec<(String, String)>,
}

impl Cli {
    fn new(dir: &Path) -> Cli {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("home");
        Cli {
            store: dir.join("store"),
            home,
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), "AKIDENV".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "env-secret".into()),
                ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ],
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("MACHINE_STORAGE_PATH", &self.store)
            .env("HOME", &self.home)
            .env("DOCKER_CONFIG", self.home.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("MACHINE_DRIVER");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = self.cmd().args(args).output().expect("run machine");
        eprintln!(
            "machine {} -> {:?} in {:?}",
            args.join(" "),
            out.status.code(),
            started.elapsed()
        );
        out
    }

    fn config(&self, name: &str) -> serde_json::Value {
        let p = self.store.join("machines").join(name).join("config.json");
        serde_json::from_str(&std::fs::read_to_string(p).expect("config.json")).expect("json")
    }
}

/// The create arguments every test uses: moto's endpoint, the test subnet,
/// private addresses, engine options for the test hosts.
fn create_args(endpoint: &str, net: &Net) -> Vec<String> {
    [
        "create",
        "-d",
        "amazonec2",
        "--amazonec2-endpoint",
        endpoint,
        "--amazonec2-insecure-transport",
        "--amazonec2-ami",
        &net.ami,
        "--amazonec2-subnet-id",
        &net.subnet,
        "--amazonec2-private-address-only=true",
        "--engine-opt",
        "bridge=none",
        "--engine-opt",
        "iptables=false",
        "--engine-opt",
        "ip6tables=false",
        "--engine-install-url",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Arguments that let SSH in: the test key, imported into moto as `mt-key`.
fn with_test_key(ec2: &Ec2, hosts: &Hosts, mut args: Vec<String>) -> Vec<String> {
    if !ec2.key_names().contains(&"mt-key".to_string()) {
        let public = std::fs::read(format!("{}.pub", hosts.key().display())).expect("MT_KEY.pub");
        let b64 = base64(&public);
        ec2.call(
            "ImportKeyPair",
            &[("KeyName", "mt-key"), ("PublicKeyMaterial", &b64)],
        );
    }
    args.extend(
        [
            "--amazonec2-keypair-name",
            "mt-key",
            "--amazonec2-ssh-keypath",
            &hosts.key().display().to_string(),
            "--amazonec2-ssh-user",
            "root",
        ]
        .map(String::from),
    );
    args
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                char::from(T[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// `docker run` of the test image on machine `name` through its `env`:
/// what the container printed.
fn run_container(cli: &Cli, name: &str, dir: &Path) -> String {
    let image = test_image(dir);
    let script = format!(
        "docker import {} mt-busybox:latest >/dev/null; \
         docker run --rm --network none mt-busybox:latest echo hello-from-ec2",
        image.display()
    );
    ok(&with_machine_env(cli, name, &script)).trim().to_string()
}

/// Run the bash `script` with machine `name`'s `env` evaluated first.
fn with_machine_env(cli: &Cli, name: &str, script: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("set -e; eval \"$(\"$M\" env {name})\"; {script}"))
        .env("M", bin())
        .env("MACHINE_STORAGE_PATH", &cli.store)
        .env("DOCKER_CONFIG", cli.home.join("docker-config"))
        .env("AWS_ACCESS_KEY_ID", "AKIDENV")
        .env("AWS_SECRET_ACCESS_KEY", "env-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("DOCKER_HOST")
        .output()
        .expect("bash")
}

/// After `rm` of a fleet machine: the fleet deleted (or forgotten) and the
/// launch template gone.
fn assert_fleet_and_template_gone(ec2: &Ec2, fleet: &str, template: &str) {
    let state = ec2
        .call("DescribeFleets", &[("FleetId.1", fleet)])
        .items("fleetSet")
        .first()
        .map(|f| f.text_at("fleetState"))
        .unwrap_or_default();
    assert!(
        state.is_empty() || state.starts_with("deleted"),
        "fleet {fleet} is {state}"
    );
    let templates: Vec<String> = ec2
        .call("DescribeLaunchTemplates", &[])
        .items("launchTemplates")
        .iter()
        .map(|t| t.text_at("launchTemplateId"))
        .collect();
    assert!(!templates.iter().any(|t| t == template), "{templates:?}");
}

/// `machine` once per name, all at once: their outputs, in order.
fn run_concurrently(
    cli: &Cli,
    names: &[String],
    argv: &dyn Fn(&str) -> Vec<String>,
) -> Vec<Output> {
    let children: Vec<Child> = names
        .iter()
        .map(|n| {
            cli.cmd()
                .args(argv(n))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect()
}

/// One IAM query call to moto, which reads the service from the
/// credential scope and checks no signature; panics unless it answers 200.
fn moto_iam(port: u16, body: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("moto");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{body}: {answer}");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// What of ours is left in moto: instances not terminated with our id
/// tag, key pairs and security groups named after the machine or ours.
fn assert_nothing_left(ec2: &Ec2, id: &str, key: &str) {
    let live: Vec<_> = ec2
        .instances()
        .into_iter()
        .filter(|(_, st, tags)| {
            st != "terminated"
                && tags
                    .iter()
                    .any(|(k, v)| k == "docker-machine-id" && v == id)
        })
        .collect();
    assert!(live.is_empty(), "instances left: {live:?}");
    assert!(
        !ec2.key_names().contains(&key.to_string()),
        "key pair {key} left"
    );
    assert!(
        !ec2.group_names().contains(&"docker-machine".to_string()),
        "group docker-machine left"
    );
}

fn setup(index: usize) -> Option<(Hosts, Moto, Ec2, Net, Routes, tempfile::TempDir)> {
    let hosts = for_suite(Suite::Ec2)?;
    let moto = Moto::start()?;
    let ec2 = Ec2::new(&moto.endpoint());
    let (net, routes) = make_net(&ec2, &hosts, index);
    let tmp = tempfile::tempdir().expect("tmp");
    Some((hosts, moto, ec2, net, routes, tmp))
}

#[test]
fn create_runs_a_container_and_flags_reach_the_api() {
    let Some((hosts, moto, ec2, net, _routes, tmp)) = setup(15) else {
        return;
    };
    let _one = PROVISIONING.lock().unwrap_or_else(|e| e.into_inner());
    let cli = Cli::new(tmp.path());
    let mut args = with_test_key(&ec2, &hosts, create_args(&moto.endpoint(), &net));
    args.extend(
        [
            "--amazonec2-tags",
            "team,ci,cost-center,42",
            "--amazonec2-open-port",
            "8080",
            "--amazonec2-open-port",
            "53/udp",
            "--amazonec2-root-size",
            "24",
            "--amazonec2-volume-type",
            "gp3",
            "--amazonec2-volume-encrypted",
            "--amazonec2-instance-type",
            "t3.small",
            "--amazonec2-metadata-token",
            "required",
            "--amazonec2-metadata-token-response-hop-limit",
            "2",
            "--amazonec2-monitoring",
            "ec2-full",
        ]
        .map(String::from),
    );
    let said = ok(&cli.run(&strs(&args)));
    assert!(said.contains("Docker is up and running!"), "{said}");

    let cfg = cli.config("ec2-full");
    let d = &cfg["Driver"];
    let id = d["InstanceId"].as_str().expect("InstanceId").to_string();
    let ip = d["IPAddress"].as_str().expect("ip").to_string();
    assert!(
        ip.starts_with(&net.cidr[..net.cidr.len() - 4]),
        "{ip} in {}",
        net.cidr
    );
    assert_eq!(d["KeyName"], "mt-key");
    assert_eq!(d["ExistingKey"], true);
    assert_eq!(d["PrivateIPOnly"], true);
    assert_eq!(
        d["SecurityGroupNames"],
        serde_json::json!(["docker-machine"])
    );
    // credentials from the environment are saved, as the original does
    assert_eq!(d["AccessKey"], "AKIDENV");

    let ls = ok(&cli.run(&["ls", "--format", "{{.Name}} {{.State}} {{.URL}}"]));
    assert_eq!(ls.trim(), format!("ec2-full Running tcp://{ip}:2376"));
    assert_eq!(ok(&cli.run(&["ip", "ec2-full"])).trim(), ip);

    // the docker CLI against the machine
    assert_eq!(
        run_container(&cli, "ec2-full", tmp.path()),
        "hello-from-ec2"
    );

    // what moto was told
    let inst = ec2.instance(&id);
    assert_eq!(inst.text_at("instanceType"), "t3.small");
    assert_eq!(inst.text_at("privateIpAddress"), ip);
    assert_eq!(inst.text_at("subnetId"), net.subnet);
    assert_eq!(inst.text_at("keyName"), "mt-key");
    assert_eq!(inst.text_at("monitoring/state"), "enabled");
    assert_eq!(inst.text_at("metadataOptions/httpTokens"), "required");
    assert_eq!(inst.text_at("metadataOptions/httpPutResponseHopLimit"), "2");
    let tags: Vec<(String, String)> = inst
        .items("tagSet")
        .iter()
        .map(|t| (t.text_at("key"), t.text_at("value")))
        .collect();
    for (k, v) in [("Name", "ec2-full"), ("team", "ci"), ("cost-center", "42")] {
        assert!(
            tags.contains(&(k.to_string(), v.to_string())),
            "{k}={v} in {tags:?}"
        );
    }
    assert!(tags
        .iter()
        .any(|(k, v)| k == "docker-machine-id" && v == d["Id"].as_str().unwrap_or("?")));
    let bdm = inst.items("blockDeviceMapping");
    let root = bdm
        .iter()
        .find(|b| b.text_at("deviceName") == "/dev/sda1")
        .expect("root device");
    let vol = ec2.call(
        "DescribeVolumes",
        &[("VolumeId.1", &root.text_at("ebs/volumeId"))],
    );
    let vol = vol.items("volumeSet");
    assert_eq!(vol[0].text_at("size"), "24");
    assert_eq!(vol[0].text_at("volumeType"), "gp3");
    assert_eq!(vol[0].text_at("encrypted"), "true");
    let groups = ec2.call(
        "DescribeSecurityGroups",
        &[
            ("Filter.1.Name", "group-name"),
            ("Filter.1.Value.1", "docker-machine"),
        ],
    );
    let g = &groups.items("securityGroupInfo")[0];
    let mut rules: Vec<String> = g
        .items("ipPermissions")
        .iter()
        .map(|r| format!("{}/{}", r.text_at("fromPort"), r.text_at("ipProtocol")))
        .collect();
    rules.sort();
    assert_eq!(rules, ["22/tcp", "2376/tcp", "53/udp", "8080/tcp"]);

    // lifecycle, states as EC2 reports them
    let state = |cli: &Cli| ok(&cli.run(&["status", "ec2-full"])).trim().to_string();
    ok(&cli.run(&["stop", "ec2-full"]));
    assert_eq!(state(&cli), "Stopped");
    ok(&cli.run(&["start", "ec2-full"]));
    assert_eq!(state(&cli), "Running");
    ok(&cli.run(&["kill", "ec2-full"]));
    assert_eq!(state(&cli), "Stopped");
    ok(&cli.run(&["start", "ec2-full"]));
    ok(&cli.run(&["restart", "ec2-full"]));
    assert_eq!(state(&cli), "Running");
    assert_eq!(
        ok(&cli.run(&["url", "ec2-full"])).trim(),
        format!("tcp://{}:2376", ok(&cli.run(&["ip", "ec2-full"])).trim())
    );

    ok(&cli.run(&["rm", "-y", "ec2-full"]));
    assert_eq!(
        ec2.instance(&id).text_at("instanceState/name"),
        "terminated"
    );
    // the group was ours and goes; the key pair was not and stays
    assert!(!ec2.group_names().contains(&"docker-machine".to_string()));
    assert!(ec2.key_names().contains(&"mt-key".to_string()));
}

#[test]
fn spot_request_reaches_the_api_and_rm_cancels_it() {
    let Some((hosts, moto, ec2, net, _routes, tmp)) = setup(15) else {
        return;
    };
    let _one = PROVISIONING.lock().unwrap_or_else(|e| e.into_inner());
    let cli = Cli::new(tmp.path());
    let proxy = Proxy::start(moto.port, 0);
    let mut args = with_test_key(&ec2, &hosts, create_args(&proxy.endpoint(), &net));
    args.extend(
        [
            "--amazonec2-request-spot-instance",
            "--amazonec2-spot-price",
            "0.07",
            "ec2-spot",
        ]
        .map(String::from),
    );
    ok(&cli.run(&strs(&args)));
    let d = cli.config("ec2-spot")["Driver"].clone();
    let req = d["SpotInstanceRequestId"]
        .as_str()
        .expect("request id")
        .to_string();
    let x = ec2.call(
        "DescribeSpotInstanceRequests",
        &[("SpotInstanceRequestId.1", &req)],
    );
    let r = &x.items("spotInstanceRequestSet")[0];
    assert_eq!(r.text_at("spotPrice").trim_end_matches('0'), "0.07");
    assert_eq!(
        r.text_at("instanceId"),
        d["InstanceId"].as_str().unwrap_or("?")
    );
    ok(&cli.run(&["rm", "-y", "ec2-spot"]));
    let x = ec2.call(
        "DescribeSpotInstanceRequests",
        &[("SpotInstanceRequestId.1", &req)],
    );
    // moto forgets a cancelled request; EC2 shows it as cancelled
    let left: Vec<String> = x
        .items("spotInstanceRequestSet")
        .iter()
        .map(|r| r.text_at("state"))
        .filter(|s| s != "cancelled")
        .collect();
    assert!(left.is_empty(), "spot request left: {left:?}");
    let id = d["InstanceId"].as_str().expect("id");
    assert_eq!(ec2.instance(id).text_at("instanceState/name"), "terminated");
}

/// A create that fails after RunInstances (our generated key is not
/// authorized on the host, so SSH refuses) keeps the machine in state
/// Error with its instance id; `rm` then leaves nothing of ours.
#[test]
fn failure_after_run_instances_is_error_and_rm_leaves_nothing() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    let cli = Cli::new(tmp.path());
    let mut args = create_args(&moto.endpoint(), &net);
    args.extend(["--amazonec2-ssh-user", "root", "ec2-fail"].map(String::from));
    let out = cli.run(&strs(&args));
    assert!(
        !out.status.success(),
        "create should fail: {}",
        text(&out.stdout)
    );
    let d = cli.config("ec2-fail")["Driver"].clone();
    let id = d["InstanceId"].as_str().expect("InstanceId").to_string();
    assert!(id.starts_with("i-"), "{d}");
    assert_eq!(d["KeyName"], "ec2-fail");
    assert_eq!(d["ExistingKey"], false);
    assert!(ec2.key_names().contains(&"ec2-fail".to_string()));
    let ls = ok(&cli.run(&["ls", "--format", "{{.Name}} {{.State}}"]));
    assert_eq!(ls.trim(), "ec2-fail Error");
    ok(&cli.run(&["rm", "-y", "ec2-fail"]));
    assert_nothing_left(&ec2, d["Id"].as_str().expect("Id"), "ec2-fail");
    assert!(!cli.store.join("machines/ec2-fail").exists());
}

/// `rm` succeeds when the instance, key pair and group are already gone,
/// and finds by its tag an instance whose id was never saved.
#[test]
fn rm_of_what_is_gone_and_of_an_unsaved_instance() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    let cli = Cli::new(tmp.path());
    for name in ["ec2-gone", "ec2-lost"] {
        let mut args = create_args(&moto.endpoint(), &net);
        args.extend(["--amazonec2-security-group", name, name].map(String::from));
        assert!(!cli.run(&strs(&args)).status.success());
    }
    // gone: terminate and delete behind the machine's back
    let gone = cli.config("ec2-gone")["Driver"].clone();
    let gone_id = gone["InstanceId"].as_str().expect("id").to_string();
    ec2.call("TerminateInstances", &[("InstanceId.1", &gone_id)]);
    ec2.call("DeleteKeyPair", &[("KeyName", "ec2-gone")]);
    let gid = gone["SecurityGroupIds"][0]
        .as_str()
        .expect("group")
        .to_string();
    ec2.call("DeleteSecurityGroup", &[("GroupId", &gid)]);
    ok(&cli.run(&["rm", "-y", "ec2-gone"]));

    // lost: as if the process died before the id was saved
    let path = cli.store.join("machines/ec2-lost/config.json");
    let mut cfg = cli.config("ec2-lost");
    let lost_id = cfg["Driver"]["InstanceId"]
        .as_str()
        .expect("id")
        .to_string();
    cfg["Driver"]["InstanceId"] = serde_json::json!("");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).expect("json")).expect("write");
    ok(&cli.run(&["rm", "-y", "ec2-lost"]));
    assert_eq!(
        ec2.instance(&lost_id).text_at("instanceState/name"),
        "terminated"
    );
    assert!(!ec2.key_names().contains(&"ec2-lost".to_string()));
    assert!(!ec2.group_names().contains(&"ec2-lost".to_string()));
}

/// Per moto port, an action the proxies in front of it hold for a minute
/// (then drop) instead of forwarding.
static HANG: Mutex<std::collections::BTreeMap<u16, &'static str>> =
    Mutex::new(std::collections::BTreeMap::new());

/// A loopback HTTP proxy in front of moto: records the access key of each
/// request's signature, and answers the first `throttle` requests with
/// RequestLimitExceeded.
struct Proxy {
    port: u16,
    keys: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<String>>>,
    throttled: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: u16, throttle: usize) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let keys = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let throttled = Arc::new(AtomicUsize::new(0));
        let (k, b, t) = (keys.clone(), bodies.clone(), throttled.clone());
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let (k, b, t) = (k.clone(), b.clone(), t.clone());
                std::thread::spawn(move || {
                    let _ = Proxy::serve(c, upstream, throttle, &k, &b, &t);
                });
            }
        });
        Proxy {
            port,
            keys,
            bodies,
            throttled,
        }
    }

    fn serve(
        client: TcpStream,
        upstream: u16,
        throttle: usize,
        keys: &Mutex<Vec<String>>,
        bodies: &Mutex<Vec<String>>,
        throttled: &AtomicUsize,
    ) -> std::io::Result<()> {
        let mut r = BufReader::new(client.try_clone()?);
        let mut head = Vec::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if let Some(v) = lower.strip_prefix("authorization:") {
                if let Some(rest) = v.split("credential=").nth(1) {
                    let ak = rest.split('/').next().unwrap_or_default();
                    // the header was lower-cased: take the original spelling
                    let at = line.to_ascii_lowercase().find(ak).unwrap_or(0);
                    keys.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line[at..at + ak.len()].to_string());
                }
            }
            if let Some(v) = lower.strip_prefix("x-amz-security-token:") {
                keys.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("token:{}", v.trim()));
            }
            if lower.starts_with("connection:") || lower.starts_with("content-length:") {
                continue;
            }
            if line == "\r\n" {
                break;
            }
            head.extend_from_slice(line.as_bytes());
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        // moto launches a spot request's instance in the subnet named by
        // LaunchSpecification.SubnetId only, where EC2 also takes the one
        // of the network interface the driver sends: name it both ways, so
        // that the instance lands on the test host and nowhere else.
        let form = String::from_utf8_lossy(&body).into_owned();
        bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(form.clone());
        if form.contains("Action=RequestSpotInstances") {
            let key = "LaunchSpecification.NetworkInterface.1.SubnetId=";
            if let Some(v) = form.split('&').find_map(|kv| kv.strip_prefix(key)) {
                body.extend_from_slice(format!("&LaunchSpecification.SubnetId={v}").as_bytes());
            }
        }
        head.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        let mut client = client;
        let hang = HANG
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&upstream)
            .copied();
        if let Some(action) = hang {
            if form.contains(&format!("Action={action}&")) {
                std::thread::sleep(Duration::from_secs(60));
                return Ok(());
            }
        }
        if throttled.fetch_add(1, Ordering::SeqCst) < throttle {
            let x = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>";
            write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{x}",
                x.len()
            )?;
            return Ok(());
        }
        throttled.fetch_sub(1, Ordering::SeqCst);
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        up.write_all(&head)?;
        up.write_all(&body)?;
        let mut answer = Vec::new();
        up.read_to_end(&mut answer)?;
        // one request per connection: say so
        if let Some(eol) = answer.windows(2).position(|w| w == b"\r\n") {
            client.write_all(&answer[..eol + 2])?;
            client.write_all(b"Connection: close\r\n")?;
            let rest: Vec<u8> = answer[eol + 2..].to_vec();
            let text = String::from_utf8_lossy(&rest).into_owned();
            let filtered: String = text
                .split_inclusive("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                .collect();
            client.write_all(filtered.as_bytes())?;
        }
        Ok(())
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A loopback instance metadata service (IMDSv2 only: no token, no answer).
fn imds() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut r = BufReader::new(match c.try_clone() {
                Ok(c) => c,
                Err(_) => continue,
            });
            let mut first = String::new();
            let mut token = false;
            let _ = r.read_line(&mut first);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line
                    .to_ascii_lowercase()
                    .starts_with("x-aws-ec2-metadata-token: tok-123")
                {
                    token = true;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = if first.starts_with("PUT") && path == "/latest/api/token" {
                (200, "tok-123".to_string())
            } else if !token {
                (401, String::new())
            } else if path == "/latest/meta-data/iam/security-credentials/" {
                (200, "ci-role\n".to_string())
            } else if path == "/latest/meta-data/iam/security-credentials/ci-role" {
                (
                    200,
                    r#"{"Code":"Success","AccessKeyId":"AKIDIMDS","SecretAccessKey":"imds-secret","Token":"imds-token","Expiration":"2099-01-01T00:00:00Z"}"#.to_string(),
                )
            } else {
                (404, String::new())
            };
            let mut c = c;
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Credentials from the environment, a shared credentials file with a
/// profile, and an instance role served on loopback, seen in the signature
/// of the requests; throttling answered by retry.
#[test]
fn credentials_sources_and_throttling() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    let create = |cli: &Cli, endpoint: &str, name: &str, extra: &[&str]| {
        let mut args = create_args(endpoint, &net);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(name.to_string());
        cli.run(&strs(&args))
    };
    // file + profile
    let proxy = Proxy::start(moto.port, 0);
    let mut cli = Cli::new(tmp.path());
    let creds = tmp.path().join("credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n[ci]\naws_access_key_id = AKIDFILE\naws_secret_access_key = f\n",
    )
    .expect("creds");
    cli.env = vec![
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            creds.display().to_string(),
        ),
        ("AWS_PROFILE".into(), "ci".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let out = create(&cli, &proxy.endpoint(), "ec2-file", &[]);
    assert!(!out.status.success());
    let keys = proxy.keys();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k == "AKIDFILE"),
        "{keys:?}"
    );
    assert_eq!(cli.config("ec2-file")["Driver"]["SecretKey"], "");

    // instance role over IMDSv2 on loopback
    let port = imds();
    cli.env = vec![(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT".into(),
        format!("http://127.0.0.1:{port}"),
    )];
    let proxy2 = Proxy::start(moto.port, 0);
    ok(&cli.run(&["rm", "-y", "ec2-file"]));
    let out = create(&cli, &proxy2.endpoint(), "ec2-role", &[]);
    assert!(!out.status.success());
    // every request signed with the role's key and carrying its session token
    let keys = proxy2.keys();
    let (tokens, ids): (Vec<&String>, Vec<&String>) =
        keys.iter().partition(|k| k.starts_with("token:"));
    assert!(
        !ids.is_empty() && ids.iter().all(|k| *k == "AKIDIMDS"),
        "{keys:?}"
    );
    assert_eq!(tokens.len(), ids.len(), "{keys:?}");
    assert!(tokens.iter().all(|t| *t == "token:imds-token"), "{keys:?}");
    ok(&cli.run(&["rm", "-y", "ec2-role"]));

    // nothing found: a clear error, no request
    cli.env = vec![("AWS_EC2_METADATA_DISABLED".into(), "true".into())];
    let out = create(&cli, &proxy2.endpoint(), "ec2-none", &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("AWS credentials"),
        "{}",
        text(&out.stderr)
    );

    // throttled twice, then answered: the create goes on to RunInstances
    let throttling = Proxy::start(moto.port, 2);
    let cli = Cli::new(&tmp.path().join("t"));
    let before = ec2.instances().len();
    let out = create(&cli, &throttling.endpoint(), "ec2-throttled", &[]);
    assert!(
        !text(&out.stderr).contains("RequestLimitExceeded"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(throttling.throttled.load(Ordering::SeqCst), 2);
    assert_eq!(ec2.instances().len(), before + 1);
    ok(&cli.run(&["rm", "-y", "ec2-throttled"]));
    // with retries disabled the throttling error is the answer
    let refusing = Proxy::start(moto.port, 1);
    let out = create(
        &cli,
        &refusing.endpoint(),
        "ec2-refused",
        &["--amazonec2-retries=-1"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("RequestLimitExceeded"),
        "{}",
        text(&out.stderr)
    );
}

/// GitLab Runner's docker+machine sequence (create with `--flag=true`
/// forms, inspect, config, url, docker over TLS, status, provision, stop,
/// rm) run by a script against `docker-machine` on PATH.
#[test]
fn gitlab_runner_command_sequence() {
    let Some((hosts, moto, ec2, net, _routes, tmp)) = setup(15) else {
        return;
    };
    let _one = PROVISIONING.lock().unwrap_or_else(|e| e.into_inner());
    let cli = Cli::new(tmp.path());
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bin");
    std::os::unix::fs::symlink(bin(), bin_dir.join("docker-machine")).expect("symlink");
    let proxy = Proxy::start(moto.port, 0);
    // what the runner's MachineOptions name must exist in the account
    moto_iam(
        moto.port,
        "Action=CreateInstanceProfile&InstanceProfileName=gitlab-runner&Version=2010-05-08",
    );
    let userdata = tmp.path().join("cloud-init");
    std::fs::write(&userdata, "#cloud-config\nruncmd: [touch /tmp/runner]\n").expect("userdata");
    let vpc = ec2
        .call("DescribeSubnets", &[("SubnetId.1", &net.subnet)])
        .items("subnetSet")[0]
        .text_at("vpcId");
    let key = hosts.key().display().to_string();
    let _ = with_test_key(&ec2, &hosts, Vec::new());
    // the MachineOptions the widely used Terraform module for GitLab Runner
    // on AWS writes, passed the runner's way (`--name=value`), then what the
    // test hosts need
    let mut args: Vec<String> = [
        format!("--amazonec2-endpoint={}", proxy.endpoint()),
        "--amazonec2-insecure-transport=true".into(),
        "--amazonec2-instance-type=m5.large".into(),
        "--amazonec2-region=us-east-1".into(),
        "--amazonec2-zone=a".into(),
        format!("--amazonec2-vpc-id={vpc}"),
        format!("--amazonec2-subnet-id={}", net.subnet),
        "--amazonec2-private-address-only=true".into(),
        "--amazonec2-use-private-address=true".into(),
        "--amazonec2-request-spot-instance=true".into(),
        "--amazonec2-spot-price=".into(),
        "--amazonec2-security-group=runner-docker-machine".into(),
        "--amazonec2-tags=runner-token,abc,gitlab,true".into(),
        "--amazonec2-use-ebs-optimized-instance=true".into(),
        "--amazonec2-monitoring=false".into(),
        "--amazonec2-iam-instance-profile=gitlab-runner".into(),
        "--amazonec2-root-size=8".into(),
        "--amazonec2-volume-type=gp3".into(),
        format!("--amazonec2-userdata={}", userdata.display()),
        format!("--amazonec2-ami={}", net.ami),
        "--amazonec2-metadata-token=required".into(),
        "--amazonec2-metadata-token-response-hop-limit=2".into(),
        "--amazonec2-encrypt-ebs-volume=true".into(),
        "--amazonec2-keypair-name=mt-key".into(),
        format!("--amazonec2-ssh-keypath={key}"),
        "--amazonec2-ssh-user=root".into(),
    ]
    .into();
    args.extend(
        [
            "--engine-opt=bridge=none",
            "--engine-opt=iptables=false",
            "--engine-opt=ip6tables=false",
            "--engine-install-url=none",
        ]
        .map(String::from),
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = cli.cmd();
    // the script, not the binary: bash with the same environment
    cmd.env("PATH", path);
    let mut script = Command::new("bash");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let out = script
        .arg(repo().join("machine-cli/tests/scripts/gitlab-runner-sequence.sh"))
        .arg("runner-1")
        .args(&args)
        .output()
        .expect("script");
    let said = ok(&out);
    assert!(said.contains("step: finished"), "{said}");
    // every MachineOption reached the API
    let (id, _, tags) = ec2
        .instances()
        .into_iter()
        .find(|(_, _, tags)| tags.contains(&("Name".into(), "runner-1".into())))
        .expect("the runner's instance");
    for (k, v) in [("runner-token", "abc"), ("gitlab", "true")] {
        assert!(tags.contains(&(k.into(), v.into())), "{k}={v} in {tags:?}");
    }
    let inst = ec2.instance(&id);
    assert_eq!(inst.text_at("instanceType"), "m5.large");
    assert_eq!(inst.text_at("placement/availabilityZone"), "us-east-1a");
    assert_eq!(inst.text_at("vpcId"), vpc);
    assert_eq!(inst.text_at("subnetId"), net.subnet);
    assert_eq!(inst.text_at("imageId"), net.ami);
    assert_eq!(inst.text_at("instanceLifecycle"), "spot");
    assert_eq!(inst.text_at("metadataOptions/httpTokens"), "required");
    assert_eq!(inst.text_at("metadataOptions/httpPutResponseHopLimit"), "2");
    let user_data = ec2.call(
        "DescribeInstanceAttribute",
        &[("InstanceId", &id), ("Attribute", "userData")],
    );
    assert_eq!(
        user_data.text_at("userData/value"),
        base64(&std::fs::read(&userdata).expect("userdata"))
    );
    // the runner's group was made in the VPC with SSH and Docker open, and
    // went with the machine
    assert!(!ec2
        .group_names()
        .contains(&"runner-docker-machine".to_string()));
    let bodies = proxy.bodies();
    let group = bodies
        .iter()
        .find(|b| b.contains("Action=AuthorizeSecurityGroupIngress"))
        .expect("the group's rules were set");
    for port in ["22", "2376"] {
        assert!(group.contains(&format!("FromPort={port}")), "{group}");
    }
    // the spot request carried the root volume, EBS optimization and the
    // instance profile (moto does not pass these two on to a spot instance),
    // and no price (the on-demand cap)
    let spot = bodies
        .iter()
        .find(|b| b.contains("Action=RequestSpotInstances"))
        .expect("RequestSpotInstances went through the proxy");
    for part in [
        "LaunchSpecification.BlockDeviceMapping.1.Ebs.VolumeSize=8",
        "LaunchSpecification.BlockDeviceMapping.1.Ebs.VolumeType=gp3",
        "LaunchSpecification.BlockDeviceMapping.1.Ebs.Encrypted=true",
        "LaunchSpecification.Monitoring.Enabled=false",
        "LaunchSpecification.EbsOptimized=true",
        "LaunchSpecification.IamInstanceProfile.Name=gitlab-runner",
    ] {
        assert!(spot.contains(part), "{part} in {spot}");
    }
    assert!(!spot.contains("SpotPrice="), "{spot}");
    let live: Vec<_> = ec2
        .instances()
        .into_iter()
        .filter(|(_, st, _)| st != "terminated")
        .collect();
    assert!(live.is_empty(), "{live:?}");
}

/// Ten creates at once (each fails after RunInstances: our generated keys
/// are not authorized on the host), then ten removes at once: the shared
/// security group is made once, and nothing of ours is left.
#[test]
fn ten_concurrent_creates_and_removes() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    let cli = Cli::new(tmp.path());
    let names: Vec<String> = (0..10).map(|i| format!("ec2-many-{i}")).collect();
    let run_all = |argv: &dyn Fn(&str) -> Vec<String>| run_concurrently(&cli, &names, argv);
    let endpoint = moto.endpoint();
    let started = Instant::now();
    let outs = run_all(&|n: &str| {
        let mut a = create_args(&endpoint, &net);
        a.push(n.to_string());
        a
    });
    eprintln!("10 creates in {:?}", started.elapsed());
    for (n, o) in names.iter().zip(&outs) {
        assert!(!o.status.success(), "{n} should fail at SSH");
        let d = cli.config(n)["Driver"].clone();
        assert!(
            d["InstanceId"]
                .as_str()
                .is_some_and(|i| i.starts_with("i-")),
            "{n}: {d}\n{}",
            text(&o.stderr)
        );
    }
    let groups = ec2.group_names();
    assert_eq!(
        groups.iter().filter(|g| *g == "docker-machine").count(),
        1,
        "{groups:?}"
    );
    let ids: Vec<String> = names
        .iter()
        .map(|n| {
            cli.config(n)["Driver"]["Id"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    let started = Instant::now();
    let outs = run_all(&|n: &str| vec!["rm".into(), "-y".into(), n.to_string()]);
    eprintln!("10 removes in {:?}", started.elapsed());
    for (n, o) in names.iter().zip(&outs) {
        assert!(o.status.success(), "rm {n}: {}", text(&o.stderr));
    }
    for (n, id) in names.iter().zip(&ids) {
        let live: Vec<_> = ec2
            .instances()
            .into_iter()
            .filter(|(_, st, tags)| {
                st != "terminated"
                    && tags
                        .iter()
                        .any(|(k, v)| k == "docker-machine-id" && v == id)
            })
            .collect();
        assert!(live.is_empty(), "{n}: {live:?}");
        assert!(!ec2.key_names().contains(n), "key pair {n} left");
    }
}

/// moto checks signatures once its first actions are spent
/// (`INITIAL_NO_AUTH_ACTION_COUNT`): an IAM user made then signs every
/// request of a create and a remove, with values that need escaping; a
/// wrong secret is refused before anything is made.
#[test]
fn moto_verifies_every_signature_of_create_and_rm() {
    let Some(hosts) = for_suite(Suite::Ec2) else {
        return;
    };
    let Some(moto) = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]) else {
        return;
    };
    // the three unauthenticated actions: an IAM user, its key, a policy
    let setup = Command::new("python3")
        .arg("-c")
        .arg(
            "import boto3, json, sys\n\
             iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1', \
               aws_access_key_id='x', aws_secret_access_key='x')\n\
             iam.create_user(UserName='ci')\n\
             k = iam.create_access_key(UserName='ci')['AccessKey']\n\
             iam.put_user_policy(UserName='ci', PolicyName='all', PolicyDocument=json.dumps(\
               {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])",
        )
        .arg(format!("http://{}", moto.endpoint()))
        .output()
        .expect("python3");
    let keys = ok(&setup);
    let mut keys = keys.split_whitespace();
    let (ak, sk) = (
        keys.next().expect("key id").to_string(),
        keys.next().expect("secret").to_string(),
    );
    let ec2 = Ec2::with_keys(&moto.endpoint(), &ak, &sk);
    let (net, _routes) = make_net(&ec2, &hosts, 16);
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cli = Cli::new(tmp.path());
    cli.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), ak.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), "not-the-secret".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let mut args = create_args(&moto.endpoint(), &net);
    args.push("ec2-signed".into());
    let out = cli.run(&strs(&args));
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("AuthFailure"),
        "{err}"
    );
    assert!(!cli.store.join("machines/ec2-signed").exists());

    cli.env[1].1 = sk;
    args.pop();
    args.extend(
        [
            "--amazonec2-tags",
            "owner,Jane Doe/ops+ci=1,path,a/b c~d",
            "--amazonec2-open-port",
            "8443",
            "ec2-signed",
        ]
        .map(String::from),
    );
    let out = cli.run(&strs(&args));
    let err = text(&out.stderr);
    assert!(!out.status.success(), "fails at SSH only");
    assert!(
        !err.contains("AuthFailure") && !err.contains("Signature"),
        "{err}"
    );
    let d = cli.config("ec2-signed")["Driver"].clone();
    let id = d["InstanceId"].as_str().expect("InstanceId").to_string();
    let inst = ec2.instance(&id);
    let tags: Vec<(String, String)> = inst
        .items("tagSet")
        .iter()
        .map(|t| (t.text_at("key"), t.text_at("value")))
        .collect();
    assert!(
        tags.contains(&("owner".into(), "Jane Doe/ops+ci=1".into())),
        "{tags:?}"
    );
    ok(&cli.run(&["rm", "-y", "ec2-signed"]));
    assert_nothing_left(&ec2, d["Id"].as_str().expect("Id"), "ec2-signed");
}

/// The instance id is in config.json as soon as RunInstances answers: a
/// create killed (SIGKILL) while it waits for the instance leaves a machine
/// that `rm` removes completely.
#[test]
fn a_create_killed_after_run_instances_has_saved_the_instance() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    HANG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(moto.port, "DescribeInstances");
    let proxy = Proxy::start(moto.port, 0);
    let cli = Cli::new(tmp.path());
    let mut args = create_args(&proxy.endpoint(), &net);
    args.push("ec2-killed".into());
    let mut child = cli
        .cmd()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy
        .bodies()
        .iter()
        .any(|b| b.contains("Action=DescribeInstances&"))
    {
        assert!(
            Instant::now() < deadline,
            "create never waited for the instance"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill the create");
    let _ = child.wait();
    HANG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&moto.port);
    let d = cli.config("ec2-killed")["Driver"].clone();
    let id = d["InstanceId"].as_str().expect("InstanceId").to_string();
    assert!(id.starts_with("i-"), "{d}");
    assert_eq!(d["KeyName"], "ec2-killed");
    assert_eq!(
        d["CreatedSecurityGroupIds"].as_array().map(Vec::len),
        Some(1)
    );
    let out = cli.run(&["rm", "-y", "ec2-killed"]);
    ok(&out);
    assert_eq!(
        ec2.instance(&id).text_at("instanceState/name"),
        "terminated"
    );
    assert_nothing_left(&ec2, d["Id"].as_str().expect("Id"), "ec2-killed");
}

/// Named groups that exist are used as they are with
/// `--amazonec2-security-group-readonly`, and `rm` leaves them.
#[test]
fn existing_read_only_groups_are_used_and_kept() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    let vpc = ec2
        .call("DescribeSubnets", &[("SubnetId.1", &net.subnet)])
        .items("subnetSet")[0]
        .text_at("vpcId");
    let gid = ec2
        .call(
            "CreateSecurityGroup",
            &[
                ("GroupName", "ops-managed"),
                ("GroupDescription", "made by the operators"),
                ("VpcId", &vpc),
            ],
        )
        .text_at("groupId");
    let cli = Cli::new(tmp.path());
    let mut args = create_args(&moto.endpoint(), &net);
    args.extend(
        [
            "--amazonec2-security-group",
            "ops-managed",
            "--amazonec2-security-group-readonly=true",
            "ec2-ro",
        ]
        .map(String::from),
    );
    assert!(!cli.run(&strs(&args)).status.success(), "fails at SSH only");
    let d = cli.config("ec2-ro")["Driver"].clone();
    assert_eq!(d["SecurityGroupIds"], serde_json::json!([gid]));
    assert_eq!(d["CreatedSecurityGroupIds"], serde_json::json!([]));
    let inst = ec2.instance(d["InstanceId"].as_str().expect("id"));
    let groups: Vec<String> = inst
        .items("networkInterfaceSet")
        .iter()
        .flat_map(|n| n.items("groupSet"))
        .chain(inst.items("groupSet"))
        .map(|g| g.text_at("groupId"))
        .collect();
    assert!(groups.contains(&gid), "{groups:?}");
    let rules = |ec2: &Ec2| {
        ec2.call("DescribeSecurityGroups", &[("GroupId.1", &gid)])
            .items("securityGroupInfo")[0]
            .items("ipPermissions")
            .len()
    };
    assert_eq!(rules(&ec2), 0, "read-only: no rules added");
    ok(&cli.run(&["rm", "-y", "ec2-ro"]));
    assert!(ec2.group_names().contains(&"ops-managed".to_string()));
    assert_eq!(rules(&ec2), 0);
}

/// A fleet create (the fleet-enabled fork's flags): two instance types and
/// two subnets as candidates for one spot instance, launched through an
/// instant EC2 Fleet from a launch template of ours; the machine is
/// provisioned and runs a container; `rm` deletes the fleet, its spot
/// request, the launch template and the instance.
#[test]
fn fleet_create_with_two_types_and_two_subnets() {
    let Some((hosts, moto, ec2, net, _routes, tmp)) = setup(15) else {
        return;
    };
    let _one = PROVISIONING.lock().unwrap_or_else(|e| e.into_inner());
    let cli = Cli::new(tmp.path());
    // a second VPC with the host's CIDR in two halves
    let vpc = ec2
        .call("CreateVpc", &[("CidrBlock", &net.cidr)])
        .text_at("vpc/vpcId");
    let prefix = net.cidr.trim_end_matches("0/24");
    let subnets: Vec<String> = [("0/25", "us-east-1a"), ("128/25", "us-east-1b")]
        .iter()
        .map(|(half, zone)| {
            ec2.call(
                "CreateSubnet",
                &[
                    ("VpcId", &vpc),
                    ("CidrBlock", &format!("{prefix}{half}")),
                    ("AvailabilityZone", zone),
                ],
            )
            .text_at("subnet/subnetId")
        })
        .collect();
    let mut args = with_test_key(&ec2, &hosts, create_args(&moto.endpoint(), &net));
    // the first subnet comes from create_args; the second is repeated
    let at = args
        .iter()
        .position(|a| a == &net.subnet)
        .expect("subnet arg");
    args[at] = subnets[0].clone();
    args.extend(
        [
            "--amazonec2-use-fleet=true",
            "--amazonec2-subnet-id",
            &subnets[1],
            "--amazonec2-instance-type",
            "m5.large",
            "--amazonec2-instance-type",
            "c5.large",
            "--amazonec2-request-spot-instance",
            "--amazonec2-spot-price",
            "0.09",
            "--amazonec2-volume-encrypted",
            "--amazonec2-volume-kms-key",
            "alias/runner",
            "--amazonec2-metadata-token",
            "required",
            "ec2-fleet",
        ]
        .map(String::from),
    );
    let said = ok(&cli.run(&strs(&args)));
    assert!(said.contains("Docker is up and running!"), "{said}");

    let d = cli.config("ec2-fleet")["Driver"].clone();
    let fleet = d["FleetId"].as_str().expect("FleetId").to_string();
    let template = d["LaunchTemplateId"]
        .as_str()
        .expect("LaunchTemplateId")
        .to_string();
    let id = d["InstanceId"].as_str().expect("InstanceId").to_string();
    assert!(fleet.starts_with("fleet-"), "{d}");
    assert!(template.starts_with("lt-"), "{d}");
    assert_eq!(d["UseFleet"], true);
    assert_eq!(d["CreatedLaunchTemplate"], true);
    assert_eq!(
        d["InstanceTypes"],
        serde_json::json!(["m5.large", "c5.large"])
    );
    assert_eq!(d["SubnetIds"], serde_json::json!(subnets));
    let chosen_type = d["InstanceType"].as_str().unwrap_or("?").to_string();
    let chosen_subnet = d["SubnetId"].as_str().unwrap_or("?").to_string();
    assert!(
        ["m5.large", "c5.large"].contains(&chosen_type.as_str()),
        "{d}"
    );
    assert!(subnets.contains(&chosen_subnet), "{d}");

    // the fleet: instant, spot, one instance, every type with every subnet
    let x = ec2.call("DescribeFleets", &[("FleetId.1", &fleet)]);
    let f = &x.items("fleetSet")[0];
    assert_eq!(f.text_at("type"), "instant");
    assert_eq!(
        f.text_at("targetCapacitySpecification/defaultTargetCapacityType"),
        "spot"
    );
    assert_eq!(
        f.text_at("targetCapacitySpecification/totalTargetCapacity"),
        "1"
    );
    let config = &f.items("launchTemplateConfigs")[0];
    assert_eq!(
        config.text_at("launchTemplateSpecification/launchTemplateId"),
        template
    );
    let mut overrides: Vec<(String, String, String)> = config
        .items("overrides")
        .iter()
        .map(|o| {
            (
                o.text_at("instanceType"),
                o.text_at("subnetId"),
                o.text_at("maxPrice"),
            )
        })
        .collect();
    overrides.sort();
    let mut wanted = Vec::new();
    for t in ["c5.large", "m5.large"] {
        for s in &subnets {
            wanted.push((t.to_string(), s.clone(), "0.09".to_string()));
        }
    }
    wanted.sort();
    assert_eq!(overrides, wanted);

    // the launch template carries the machine's settings
    let v = ec2.call(
        "DescribeLaunchTemplateVersions",
        &[("LaunchTemplateId", &template)],
    );
    let data = v.items("launchTemplateVersionSet")[0]
        .at("launchTemplateData")
        .expect("launchTemplateData")
        .clone();
    assert_eq!(data.text_at("imageId"), net.ami);
    assert_eq!(data.text_at("keyName"), "mt-key");
    assert_eq!(data.text_at("metadataOptions/httpTokens"), "required");
    let root = &data.items("blockDeviceMappingSet")[0];
    assert_eq!(root.text_at("ebs/encrypted"), "true");
    assert_eq!(root.text_at("ebs/kmsKeyId"), "alias/runner");

    // the instance: the chosen candidate, tagged as ours, on the host
    let inst = ec2.instance(&id);
    assert_eq!(inst.text_at("instanceType"), chosen_type);
    assert_eq!(inst.text_at("subnetId"), chosen_subnet);
    assert!(inst
        .items("tagSet")
        .iter()
        .any(|t| t.text_at("key") == "Name" && t.text_at("value") == "ec2-fleet"));
    assert_eq!(
        run_container(&cli, "ec2-fleet", tmp.path()),
        "hello-from-ec2"
    );

    ok(&cli.run(&["rm", "-y", "ec2-fleet"]));
    assert_fleet_and_template_gone(&ec2, &fleet, &template);
    assert_eq!(
        ec2.instance(&id).text_at("instanceState/name"),
        "terminated"
    );
    let open: Vec<String> = ec2
        .call("DescribeSpotInstanceRequests", &[])
        .items("spotInstanceRequestSet")
        .iter()
        .filter(|r| r.text_at("instanceId") == id)
        .map(|r| r.text_at("state"))
        .filter(|s| s != "cancelled" && s != "closed")
        .collect();
    assert!(open.is_empty(), "spot requests left: {open:?}");
    assert!(!ec2.group_names().contains(&"docker-machine".to_string()));
}

/// Candidates without a fleet, and a template without the key pair it
/// needs, are refused before anything is made.
#[test]
fn fleet_flags_are_checked() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    let cli = Cli::new(tmp.path());
    let base = create_args(&moto.endpoint(), &net);
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--amazonec2-instance-type",
                "m5.large",
                "--amazonec2-instance-type",
                "c5.large",
            ],
            "--amazonec2-use-fleet",
        ),
        (
            &["--amazonec2-launch-template", "runners"],
            "--amazonec2-use-fleet",
        ),
        (
            &[
                "--amazonec2-use-fleet",
                "--amazonec2-launch-template",
                "runners",
            ],
            "--amazonec2-keypair-name",
        ),
    ];
    for (extra, wanted) in cases {
        let mut args = base.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("ec2-refused".into());
        let out = cli.run(&strs(&args));
        assert!(!out.status.success(), "{extra:?} should be refused");
        let err = text(&out.stderr);
        assert!(err.contains(wanted), "{extra:?}: {err}");
        assert!(!cli.store.join("machines/ec2-refused").exists());
    }
    assert!(ec2.key_names().is_empty(), "nothing was made in EC2");
}

/// Ten creates at once, each provisioned end to end on a host of its own
/// (ten subnets, each CIDR answered by one test host), each daemon
/// answering the docker CLI; then ten removes at once, nothing left.
#[test]
fn ten_concurrent_creates_provision_ten_hosts_then_ten_removes() {
    let Some(hosts) = for_suite(Suite::Ec2) else {
        return;
    };
    let _one = PROVISIONING.lock().unwrap_or_else(|e| e.into_inner());
    let Some(moto) = Moto::start() else {
        return;
    };
    let ec2 = Ec2::new(&moto.endpoint());
    let tmp = tempfile::tempdir().expect("tmp");
    let cli = Cli::new(tmp.path());
    let indices = [15, 16, 22, 23, 24, 25, 26, 27, 28, 29];
    let nets: Vec<(Net, Routes)> = indices.iter().map(|&i| make_net(&ec2, &hosts, i)).collect();
    let names: Vec<String> = (0..nets.len()).map(|i| format!("ec2-ten-{i}")).collect();
    let endpoint = moto.endpoint();
    let started = Instant::now();
    let outs = run_concurrently(&cli, &names, &|n: &str| {
        let i: usize = n.trim_start_matches("ec2-ten-").parse().expect("index");
        let mut a = with_test_key(&ec2, &hosts, create_args(&endpoint, &nets[i].0));
        a.push(n.to_string());
        a
    });
    eprintln!("10 provisioned creates in {:?}", started.elapsed());
    for (n, o) in names.iter().zip(&outs) {
        assert!(
            o.status.success() && text(&o.stdout).contains("Docker is up and running!"),
            "create {n}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    // every machine on its own host, every daemon answering with its TLS
    let mut seen = Vec::new();
    for (n, (net, _)) in names.iter().zip(&nets) {
        let ip = ok(&cli.run(&["ip", n])).trim().to_string();
        assert!(
            ip.starts_with(net.cidr.trim_end_matches("0/24")),
            "{n}: {ip} in {}",
            net.cidr
        );
        let out = with_machine_env(&cli, n, "docker version --format '{{.Server.Os}}'");
        assert_eq!(ok(&out).trim(), "linux", "{n}");
        seen.push(ip);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), names.len(), "ten distinct addresses: {seen:?}");
    let ids: Vec<String> = names
        .iter()
        .map(|n| {
            cli.config(n)["Driver"]["Id"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();

    let started = Instant::now();
    let outs = run_concurrently(&cli, &names, &|n: &str| {
        vec!["rm".into(), "-y".into(), n.to_string()]
    });
    eprintln!("10 removes in {:?}", started.elapsed());
    for (n, o) in names.iter().zip(&outs) {
        assert!(o.status.success(), "rm {n}: {}", text(&o.stderr));
    }
    let live: Vec<_> = ec2
        .instances()
        .into_iter()
        .filter(|(_, st, tags)| {
            st != "terminated"
                && tags
                    .iter()
                    .any(|(k, v)| k == "docker-machine-id" && ids.contains(v))
        })
        .collect();
    assert!(live.is_empty(), "instances left: {live:?}");
    assert!(
        !ec2.group_names().contains(&"docker-machine".to_string()),
        "a docker-machine group is left"
    );
    let left: Vec<String> = std::fs::read_dir(cli.store.join("machines"))
        .expect("machines dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        // the per-machine lock files stay by design (machine-core's store)
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "machines left in the store: {left:?}");
}

/// A fleet create that fails after the fleet launched (our generated key is
/// not authorized on the host, so SSH refuses) leaves the machine in state
/// Error with the fleet, template and instance recorded; `rm` then deletes
/// the fleet, the launch template, the instance, the key pair and the group.
#[test]
fn a_failed_fleet_create_is_error_and_rm_leaves_nothing() {
    let Some((_hosts, moto, ec2, net, _routes, tmp)) = setup(16) else {
        return;
    };
    let cli = Cli::new(tmp.path());
    let mut args = create_args(&moto.endpoint(), &net);
    args.extend(
        [
            "--amazonec2-use-fleet",
            "--amazonec2-instance-type",
            "t3.micro",
            "--amazonec2-instance-type",
            "t3a.micro",
            "--amazonec2-ssh-user",
            "root",
            "ec2-fleet-fail",
        ]
        .map(String::from),
    );
    let out = cli.run(&strs(&args));
    assert!(!out.status.success(), "create should fail at SSH");
    let d = cli.config("ec2-fleet-fail")["Driver"].clone();
    let fleet = d["FleetId"].as_str().unwrap_or_default().to_string();
    let template = d["LaunchTemplateId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = d["InstanceId"].as_str().unwrap_or_default().to_string();
    assert!(
        fleet.starts_with("fleet-") && template.starts_with("lt-") && id.starts_with("i-"),
        "{d}"
    );
    let ls = ok(&cli.run(&["ls", "--format", "{{.Name}} {{.State}}"]));
    assert_eq!(ls.trim(), "ec2-fleet-fail Error");

    ok(&cli.run(&["rm", "-y", "ec2-fleet-fail"]));
    assert_nothing_left(&ec2, d["Id"].as_str().expect("Id"), "ec2-fleet-fail");
    assert_eq!(
        ec2.instance(&id).text_at("instanceState/name"),
        "terminated"
    );
    assert_fleet_and_template_gone(&ec2, &fleet, &template);
    assert!(!cli.store.join("machines/ec2-fleet-fail").exists());
}
