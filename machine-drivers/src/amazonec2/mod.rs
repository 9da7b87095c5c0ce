//! The `amazonec2` driver: an EC2 instance, provisioned over SSH.
//!
//! Flags, defaults, environment variables and the config.json field names
//! are docker-machine 0.16's, so stores move both ways; added are the
//! instance metadata options (`--amazonec2-metadata-token`,
//! `--amazonec2-metadata-token-response-hop-limit`) and an encrypted root
//! volume (`--amazonec2-volume-encrypted`, `--amazonec2-volume-kms-key`).
//!
//! Create never leaks: every instance is tagged with the machine's name and
//! its random `Id` (tag [`ID_TAG`]), and its id is saved in config.json as
//! soon as `RunInstances` answers (through the store's [`Checkpoint`]). A
//! create that fails later leaves the machine in state Error; `rm`
//! terminates the instance (found by its tag when its id was never saved),
//! cancels the spot request, and deletes the key pair and the security
//! groups only when this machine created them. What is already gone counts
//! as removed.

pub mod api;
pub mod creds;

use api::{Ec2Client, Ec2Error, Endpoint, Params, Xml};
use async_trait::async_trait;
use machine_core::config::BaseDriver;
use machine_core::driver::{
    Checkpoint, Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions,
    OptionKind, SshTarget,
};
use machine_core::State;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Driver name.
pub const NAME: &str = "amazonec2";
/// The tag holding the machine's random `Id` on everything it creates.
pub const ID_TAG: &str = "docker-machine-id";
/// The security group created when none is named.
pub const DEFAULT_SECURITY_GROUP: &str = "docker-machine";
/// The daemon's port, opened in the security groups.
pub const DOCKER_PORT: u16 = 2376;
/// How long create waits for the instance to run, then for SSH to answer.
pub const RUNNING_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `rm` waits for an instance to terminate before deleting groups.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Ubuntu 16.04 images of the original's table, by region.
pub const REGION_AMIS: &[(&str, &str)] = &[
    ("ap-northeast-1", "ami-bcb7f6da"),
    ("ap-northeast-2", "ami-5073de3e"),
    ("ap-southeast-1", "ami-41e4af3d"),
    ("ap-southeast-2", "ami-c1498fa3"),
    ("ap-south-1", "ami-1083dc7f"),
    ("ca-central-1", "ami-8d9e19e9"),
    ("cn-north-1", "ami-cc4499a1"),
    ("cn-northwest-1", "ami-fd0e1a9f"),
    ("eu-north-1", "ami-017ff17f"),
    ("eu-central-1", "ami-bc4925d3"),
    ("eu-west-1", "ami-0b541372"),
    ("eu-west-2", "ami-ff46a298"),
    ("eu-west-3", "ami-9465d3e9"),
    ("sa-east-1", "ami-b5501bd9"),
    ("us-east-1", "ami-927185ef"),
    ("us-east-2", "ami-b9daeddc"),
    ("us-west-1", "ami-264c4646"),
    ("us-west-2", "ami-78a22900"),
    ("us-gov-west-1", "ami-2561ea44"),
];

fn null_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// The driver's own fields of config.json, named as the original names them
/// (then the metadata and encryption options, then what `rm` needs).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Own {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "AccessKey")]
    access_key: String,
    #[serde(rename = "SecretKey")]
    secret_key: String,
    #[serde(rename = "SessionToken")]
    session_token: String,
    #[serde(rename = "Region")]
    region: String,
    #[serde(rename = "AMI")]
    ami: String,
    #[serde(rename = "SSHKeyID")]
    ssh_key_id: i64,
    #[serde(rename = "ExistingKey")]
    existing_key: bool,
    #[serde(rename = "KeyName")]
    key_name: String,
    #[serde(rename = "InstanceId")]
    instance_id: String,
    #[serde(rename = "InstanceType")]
    instance_type: String,
    #[serde(rename = "PrivateIPAddress")]
    private_ip_address: String,
    #[serde(rename = "SecurityGroupId")]
    security_group_id: String,
    #[serde(rename = "SecurityGroupIds", deserialize_with = "null_vec")]
    security_group_ids: Vec<String>,
    #[serde(rename = "SecurityGroupName")]
    security_group_name: String,
    #[serde(rename = "SecurityGroupNames", deserialize_with = "null_vec")]
    security_group_names: Vec<String>,
    #[serde(rename = "SecurityGroupReadOnly")]
    security_group_read_only: bool,
    #[serde(rename = "OpenPorts", deserialize_with = "null_vec")]
    open_ports: Vec<String>,
    #[serde(rename = "Tags")]
    tags: String,
    #[serde(rename = "ReservationId")]
    reservation_id: String,
    #[serde(rename = "DeviceName")]
    device_name: String,
    #[serde(rename = "RootSize")]
    root_size: i64,
    #[serde(rename = "VolumeType")]
    volume_type: String,
    #[serde(rename = "IamInstanceProfile")]
    iam_instance_profile: String,
    #[serde(rename = "VpcId")]
    vpc_id: String,
    #[serde(rename = "SubnetId")]
    subnet_id: String,
    #[serde(rename = "Zone")]
    zone: String,
    #[serde(rename = "RequestSpotInstance")]
    request_spot_instance: bool,
    #[serde(rename = "SpotPrice")]
    spot_price: String,
    #[serde(rename = "BlockDurationMinutes")]
    block_duration_minutes: i64,
    #[serde(rename = "PrivateIPOnly")]
    private_ip_only: bool,
    #[serde(rename = "UsePrivateIP")]
    use_private_ip: bool,
    #[serde(rename = "UseEbsOptimizedInstance")]
    use_ebs_optimized_instance: bool,
    #[serde(rename = "Monitoring")]
    monitoring: bool,
    #[serde(rename = "SSHPrivateKeyPath")]
    ssh_private_key_path: String,
    #[serde(rename = "RetryCount")]
    retry_count: i64,
    #[serde(rename = "Endpoint")]
    endpoint: String,
    #[serde(rename = "DisableSSL")]
    disable_ssl: bool,
    #[serde(rename = "UserDataFile")]
    user_data_file: String,
    #[serde(rename = "MetadataToken")]
    metadata_token: String,
    #[serde(rename = "MetadataTokenResponseHopLimit")]
    metadata_token_response_hop_limit: i64,
    #[serde(rename = "EncryptEbsVolume")]
    encrypt_ebs_volume: bool,
    #[serde(rename = "KmsKeyId")]
    kms_key_id: String,
    #[serde(rename = "SpotInstanceRequestId")]
    spot_instance_request_id: String,
    #[serde(rename = "CreatedSecurityGroupIds", deserialize_with = "null_vec")]
    created_security_group_ids: Vec<String>,
    #[serde(rename = "UseFleet")]
    use_fleet: bool,
    #[serde(rename = "InstanceTypes", deserialize_with = "null_vec")]
    instance_types: Vec<String>,
    #[serde(rename = "SubnetIds", deserialize_with = "null_vec")]
    subnet_ids: Vec<String>,
    #[serde(rename = "LaunchTemplate")]
    launch_template: String,
    #[serde(rename = "LaunchTemplateId")]
    launch_template_id: String,
    #[serde(rename = "CreatedLaunchTemplate")]
    created_launch_template: bool,
    #[serde(rename = "FleetId")]
    fleet_id: String,
}

impl std::fmt::Debug for Own {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Own")
            .field("id", &self.id)
            .field("region", &self.region)
            .field("instance_id", &self.instance_id)
            .field("key_name", &self.key_name)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Builds [`Ec2Driver`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ec2Factory;

/// A machine on an EC2 instance.
#[derive(Debug)]
pub struct Ec2Driver {
    base: BaseDriver,
    own: Own,
    machine_dir: PathBuf,
    checkpoint: Option<Checkpoint>,
    client: OnceCell<Ec2Client>,
}

fn opt(flag: &str, kind: OptionKind, help: &str) -> DriverOption {
    DriverOption::new(flag, kind, help)
}

impl DriverFactory for Ec2Factory {
    fn name(&self) -> &str {
        NAME
    }

    fn options(&self) -> Vec<DriverOption> {
        use OptionKind::{Bool, Int, String as Str, StringList};
        vec![
            opt("amazonec2-access-key", Str, "AWS Access Key").env("AWS_ACCESS_KEY_ID"),
            opt("amazonec2-secret-key", Str, "AWS Secret Key").env("AWS_SECRET_ACCESS_KEY"),
            opt("amazonec2-session-token", Str, "AWS Session Token").env("AWS_SESSION_TOKEN"),
            opt("amazonec2-ami", Str, "AWS machine image").env("AWS_AMI"),
            opt("amazonec2-region", Str, "AWS region")
                .default_value("us-east-1")
                .env("AWS_DEFAULT_REGION"),
            opt("amazonec2-vpc-id", Str, "AWS VPC id").env("AWS_VPC_ID"),
            opt(
                "amazonec2-zone",
                Str,
                "AWS zone for instance (i.e. a,b,c,d,e)",
            )
            .default_value("a")
            .env("AWS_ZONE"),
            opt(
                "amazonec2-subnet-id",
                StringList,
                "AWS VPC subnet id (repeat with --amazonec2-use-fleet: candidates for one instance)",
            )
            .env("AWS_SUBNET_ID"),
            opt(
                "amazonec2-security-group-readonly",
                Bool,
                "Skip adding default rules to security groups",
            )
            .env("AWS_SECURITY_GROUP_READONLY"),
            opt(
                "amazonec2-security-group",
                StringList,
                "AWS VPC security group",
            )
            .default_value(DEFAULT_SECURITY_GROUP)
            .env("AWS_SECURITY_GROUP"),
            opt(
                "amazonec2-open-port",
                StringList,
                "Make the specified port number accessible from the Internet",
            ),
            opt(
                "amazonec2-tags",
                Str,
                "AWS Tags (e.g. key1,value1,key2,value2)",
            )
            .env("AWS_TAGS"),
            opt(
                "amazonec2-instance-type",
                StringList,
                "AWS instance type (repeat with --amazonec2-use-fleet: candidates for one instance)",
            )
            .default_value("t2.micro")
            .env("AWS_INSTANCE_TYPE"),
            opt("amazonec2-device-name", Str, "AWS root device name")
                .default_value("/dev/sda1")
                .env("AWS_DEVICE_NAME"),
            opt("amazonec2-root-size", Int, "AWS root disk size (in GB)")
                .default_value("16")
                .env("AWS_ROOT_SIZE"),
            opt("amazonec2-volume-type", Str, "Amazon EBS volume type")
                .default_value("gp2")
                .env("AWS_VOLUME_TYPE"),
            opt(
                "amazonec2-iam-instance-profile",
                Str,
                "AWS IAM Instance Profile",
            )
            .env("AWS_INSTANCE_PROFILE"),
            opt("amazonec2-ssh-port", Int, "SSH port")
                .default_value("22")
                .env("AWS_SSH_PORT"),
            opt("amazonec2-ssh-user", Str, "SSH username")
                .default_value("ubuntu")
                .env("AWS_SSH_USER"),
            opt(
                "amazonec2-request-spot-instance",
                Bool,
                "Set this flag to request spot instance",
            ),
            opt(
                "amazonec2-spot-price",
                Str,
                "AWS spot instance bid price (in dollar)",
            )
            .default_value("0.50"),
            opt(
                "amazonec2-block-duration-minutes",
                Int,
                "AWS spot instance duration in minutes (60, 120, 180, 240, 300, or 360)",
            )
            .default_value("0"),
            opt(
                "amazonec2-private-address-only",
                Bool,
                "Only use a private IP address",
            ),
            opt(
                "amazonec2-use-private-address",
                Bool,
                "Force the usage of private IP address",
            ),
            opt(
                "amazonec2-monitoring",
                Bool,
                "Set this flag to enable CloudWatch monitoring",
            ),
            opt(
                "amazonec2-use-ebs-optimized-instance",
                Bool,
                "Create an EBS optimized instance",
            ),
            opt("amazonec2-ssh-keypath", Str, "SSH Key for Instance").env("AWS_SSH_KEYPATH"),
            opt(
                "amazonec2-keypair-name",
                Str,
                "AWS keypair to use; requires --amazonec2-ssh-keypath",
            )
            .env("AWS_KEYPAIR_NAME"),
            opt(
                "amazonec2-retries",
                Int,
                "Set retry count for recoverable failures (use -1 to disable)",
            )
            .default_value("5"),
            opt(
                "amazonec2-endpoint",
                Str,
                "Optional endpoint URL (hostname only or fully qualified URI)",
            )
            .env("AWS_ENDPOINT"),
            opt(
                "amazonec2-insecure-transport",
                Bool,
                "Disable SSL when sending requests",
            )
            .env("AWS_INSECURE_TRANSPORT"),
            opt(
                "amazonec2-userdata",
                Str,
                "path to file with cloud-init user data",
            )
            .env("AWS_USERDATA"),
            opt(
                "amazonec2-metadata-token",
                Str,
                "Whether the metadata token is required or optional (IMDSv2: required)",
            )
            .default_value("optional"),
            opt(
                "amazonec2-metadata-token-response-hop-limit",
                Int,
                "The number of network hops the metadata token can travel",
            )
            .default_value("1"),
            opt(
                "amazonec2-volume-encrypted",
                Bool,
                "Encrypt the root EBS volume",
            ),
            opt(
                "amazonec2-volume-kms-key",
                Str,
                "KMS key for the encrypted root volume (default: the account's EBS key)",
            ),
            opt(
                "amazonec2-use-fleet",
                Bool,
                "Launch through an EC2 Fleet (type instant) choosing among the given instance types and subnets",
            ),
            opt(
                "amazonec2-launch-template",
                Str,
                "Name or id (lt-...) of an existing launch template for the fleet (with --amazonec2-use-fleet)",
            ),
            // the same two under the names GitLab's and Rancher's forks use
            opt(
                "amazonec2-encrypt-ebs-volume",
                Bool,
                "Encrypt the EBS volume using the AWS Managed CMK (same as --amazonec2-volume-encrypted)",
            )
            .env("AWS_ENCRYPT_EBS_VOLUME"),
            opt(
                "amazonec2-kms-key",
                Str,
                "Custom KMS key for the encrypted EBS volume (same as --amazonec2-volume-kms-key)",
            )
            .env("AWS_KMS_KEY"),
        ]
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        o: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let invalid = |flag: &str, value: &str, reason: &str| DriverError::InvalidOption {
            driver: NAME.into(),
            flag: flag.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let endpoint = o.string("amazonec2-endpoint");
        let region = o.string("amazonec2-region");
        let known = REGION_AMIS.iter().find(|(r, _)| *r == region);
        if known.is_none() && endpoint.is_empty() {
            return Err(invalid(
                "amazonec2-region",
                &region,
                "Invalid region specified",
            ));
        }
        let mut ami = o.string("amazonec2-ami");
        if ami.is_empty() {
            ami = known.map(|(_, a)| a.to_string()).unwrap_or_default();
        }
        if ami.is_empty() {
            return Err(DriverError::MissingOption {
                driver: NAME.into(),
                flag: "amazonec2-ami".into(),
            });
        }
        let disable_ssl = o.bool("amazonec2-insecure-transport");
        Endpoint::resolve(&region, &endpoint, disable_ssl)
            .map_err(|e| invalid("amazonec2-endpoint", &endpoint, &e.to_string()))?;
        let key_name = o.string("amazonec2-keypair-name");
        let key_path = o.string("amazonec2-ssh-keypath");
        if !key_name.is_empty() && key_path.is_empty() {
            return Err(invalid(
                "amazonec2-keypair-name",
                &key_name,
                "using --amazonec2-keypair-name also requires --amazonec2-ssh-keypath",
            ));
        }
        let token = o.string("amazonec2-metadata-token");
        if token != "optional" && token != "required" {
            return Err(invalid(
                "amazonec2-metadata-token",
                &token,
                "expected optional or required",
            ));
        }
        let hops = o
            .int("amazonec2-metadata-token-response-hop-limit")
            .unwrap_or(1);
        if !(1..=64).contains(&hops) {
            return Err(invalid(
                "amazonec2-metadata-token-response-hop-limit",
                &hops.to_string(),
                "expected 1 to 64",
            ));
        }
        let use_fleet = o.bool("amazonec2-use-fleet");
        let types = o.list("amazonec2-instance-type");
        let subnets = o.list("amazonec2-subnet-id");
        let template = o.string("amazonec2-launch-template");
        if !use_fleet {
            for (flag, given) in [
                ("amazonec2-instance-type", &types),
                ("amazonec2-subnet-id", &subnets),
            ] {
                if given.len() > 1 {
                    return Err(invalid(
                        flag,
                        &given.join(","),
                        "several values need --amazonec2-use-fleet",
                    ));
                }
            }
            if !template.is_empty() {
                return Err(invalid(
                    "amazonec2-launch-template",
                    &template,
                    "a launch template is used by a fleet: add --amazonec2-use-fleet",
                ));
            }
        } else {
            if !template.is_empty() {
                check_template_name(&template)
                    .map_err(|r| invalid("amazonec2-launch-template", &template, &r))?;
                if key_name.is_empty() {
                    return Err(invalid(
                        "amazonec2-launch-template",
                        &template,
                        "a fleet cannot replace the template's key pair: name it with --amazonec2-keypair-name and --amazonec2-ssh-keypath",
                    ));
                }
            }
            if o.int("amazonec2-block-duration-minutes").unwrap_or(0) != 0 {
                return Err(invalid(
                    "amazonec2-block-duration-minutes",
                    &o.string("amazonec2-block-duration-minutes"),
                    "spot blocks are not available through a fleet",
                ));
            }
        }
        let user = o.string("amazonec2-ssh-user");
        machine_core::ssh::check_user(&user)
            .map_err(|e| invalid("amazonec2-ssh-user", &user, &e.to_string()))?;
        for p in o.list("amazonec2-open-port") {
            split_port(&p).map_err(|r| invalid("amazonec2-open-port", &p, &r))?;
        }
        let mut base = ctx.base();
        base.ssh_user = user;
        base.ssh_port = o.port("amazonec2-ssh-port")?.unwrap_or(22);
        base.ssh_key_path = ctx
            .machine_dir
            .join("id_rsa")
            .to_string_lossy()
            .into_owned();
        let own = Own {
            id: random_id(),
            access_key: o.string("amazonec2-access-key"),
            secret_key: o.string("amazonec2-secret-key"),
            session_token: o.string("amazonec2-session-token"),
            region,
            ami,
            existing_key: !key_name.is_empty(),
            key_name,
            instance_type: types.first().cloned().unwrap_or_default(),
            security_group_names: o.list("amazonec2-security-group"),
            security_group_read_only: o.bool("amazonec2-security-group-readonly"),
            open_ports: o.list("amazonec2-open-port"),
            tags: o.string("amazonec2-tags"),
            device_name: o.string("amazonec2-device-name"),
            root_size: o.int("amazonec2-root-size").unwrap_or(16),
            volume_type: o.string("amazonec2-volume-type"),
            iam_instance_profile: o.string("amazonec2-iam-instance-profile"),
            vpc_id: o.string("amazonec2-vpc-id"),
            subnet_id: subnets.first().cloned().unwrap_or_default(),
            zone: o.string("amazonec2-zone"),
            request_spot_instance: o.bool("amazonec2-request-spot-instance"),
            spot_price: o.string("amazonec2-spot-price"),
            block_duration_minutes: o.int("amazonec2-block-duration-minutes").unwrap_or(0),
            private_ip_only: o.bool("amazonec2-private-address-only"),
            use_private_ip: o.bool("amazonec2-use-private-address"),
            use_ebs_optimized_instance: o.bool("amazonec2-use-ebs-optimized-instance"),
            monitoring: o.bool("amazonec2-monitoring"),
            ssh_private_key_path: key_path,
            retry_count: o.int("amazonec2-retries").unwrap_or(5),
            endpoint,
            disable_ssl,
            user_data_file: o.string("amazonec2-userdata"),
            metadata_token: token,
            metadata_token_response_hop_limit: hops,
            encrypt_ebs_volume: o.bool("amazonec2-volume-encrypted")
                || o.bool("amazonec2-encrypt-ebs-volume"),
            kms_key_id: Some(o.string("amazonec2-volume-kms-key"))
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| o.string("amazonec2-kms-key")),
            use_fleet,
            instance_types: if use_fleet { types } else { Vec::new() },
            subnet_ids: if use_fleet { subnets } else { Vec::new() },
            launch_template: template,
            ..Own::default()
        };
        Ok(Box::new(Ec2Driver {
            base,
            own,
            machine_dir: ctx.machine_dir.clone(),
            checkpoint: None,
            client: OnceCell::new(),
        }))
    }

    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, own) = machine_core::driver::load_driver_object(NAME, saved)?;
        Ok(Box::new(Ec2Driver {
            base,
            own,
            machine_dir: ctx.machine_dir.clone(),
            checkpoint: None,
            client: OnceCell::new(),
        }))
    }
}

/// 32 random hex digits (the original's `Id` is an MD5 in hex: same shape).
fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// A launch template's name (3 to 128 of `A-Za-z0-9()./_-`) or id (`lt-` and hex).
fn check_template_name(t: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "()./_-".contains(c);
    if !(3..=128).contains(&t.len()) || !t.chars().all(ok_char) {
        return Err(
            "expected a launch template name (3 to 128 letters, digits or ()./_-) or id (lt-...)"
                .into(),
        );
    }
    Ok(())
}

/// `80`, `80/tcp`, `53/udp` into (port, protocol).
fn split_port(p: &str) -> Result<(u16, String), String> {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("invalid port number {port}"))?;
    let proto = proto.trim().to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp") {
        return Err(format!("invalid protocol {proto}"));
    }
    Ok((port, proto))
}

fn failed(operation: &str, message: impl std::fmt::Display) -> DriverError {
    DriverError::Failed {
        driver: NAME.into(),
        operation: operation.into(),
        message: message.to_string(),
    }
}

fn api_err(operation: &str, e: Ec2Error) -> DriverError {
    DriverError::Source {
        driver: NAME.into(),
        operation: operation.into(),
        source: Box::new(e),
    }
}

/// An instance as DescribeInstances tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Instance {
    id: String,
    state: String,
    private_ip: String,
    public_ip: String,
    subnet_id: String,
    instance_type: String,
}

fn instances_of(x: &Xml) -> Vec<Instance> {
    x.items("reservationSet")
        .into_iter()
        .flat_map(|r| r.items("instancesSet"))
        .map(|i| Instance {
            id: i.text_at("instanceId"),
            state: i.text_at("instanceState/name"),
            private_ip: i.text_at("privateIpAddress"),
            public_ip: i.text_at("ipAddress"),
            subnet_id: i.text_at("subnetId"),
            instance_type: i.text_at("instanceType"),
        })
        .collect()
}

/// EC2 instance states as machine states (the original's mapping).
fn map_state(s: &str) -> State {
    match s {
        "pending" => State::Starting,
        "running" => State::Running,
        "stopping" | "shutting-down" => State::Stopping,
        "stopped" => State::Stopped,
        _ => State::Error,
    }
}

impl Ec2Driver {
    async fn client(&self) -> Result<&Ec2Client, DriverError> {
        self.client
            .get_or_try_init(|| async {
                let env = |k: &str| std::env::var(k).ok();
                let creds = creds::resolve(
                    &self.own.access_key,
                    &self.own.secret_key,
                    &self.own.session_token,
                    &env,
                )
                .await
                .map_err(|e| DriverError::Source {
                    driver: NAME.into(),
                    operation: "find AWS credentials".into(),
                    source: Box::new(e),
                })?;
                tracing::debug!(source = %creds.source, "AWS credentials found");
                let endpoint =
                    Endpoint::resolve(&self.own.region, &self.own.endpoint, self.own.disable_ssl)
                        .map_err(|e| api_err("configure the EC2 client", e))?;
                Ec2Client::new(endpoint, creds, self.own.retry_count)
                    .map_err(|e| api_err("configure the EC2 client", e))
            })
            .await
    }

    async fn call(&self, action: &str, p: &Params) -> Result<Xml, DriverError> {
        self.client()
            .await?
            .call(action, p)
            .await
            .map_err(|e| api_err(action, e))
    }

    /// Like [`call`](Self::call), with the EC2 error kept apart.
    async fn try_call(
        &self,
        action: &str,
        p: &Params,
    ) -> Result<Result<Xml, Ec2Error>, DriverError> {
        Ok(self.client().await?.call(action, p).await)
    }

    fn persist(&self) -> Result<(), DriverError> {
        match &self.checkpoint {
            Some(c) => c.save(self),
            None => Ok(()),
        }
    }

    fn region_zone(&self) -> String {
        let z = &self.own.zone;
        if z.len() == 1 {
            format!("{}{z}", self.own.region)
        } else {
            z.clone()
        }
    }

    fn group_ids(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.own.security_group_id.is_empty() {
            v.push(self.own.security_group_id.clone());
        }
        v.extend(self.own.security_group_ids.iter().cloned());
        v
    }

    fn group_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.own.security_group_name.is_empty() {
            v.push(self.own.security_group_name.clone());
        }
        v.extend(self.own.security_group_names.iter().cloned());
        v
    }

    async fn describe(&self, id: &str) -> Result<Option<Instance>, DriverError> {
        let mut p = Params::new();
        p.add("InstanceId.1", id);
        match self.try_call("DescribeInstances", &p).await? {
            Ok(x) => Ok(instances_of(&x).into_iter().find(|i| i.id == id)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(api_err("DescribeInstances", e)),
        }
    }

    async fn instance(&self) -> Result<Instance, DriverError> {
        if self.own.instance_id.is_empty() {
            return Err(failed("find the instance", "no instance id recorded"));
        }
        self.describe(&self.own.instance_id).await?.ok_or_else(|| {
            failed(
                "find the instance",
                format!("instance {} does not exist", self.own.instance_id),
            )
        })
    }

    fn address_of(&self, i: &Instance) -> Result<String, DriverError> {
        let ip = if self.own.private_ip_only || self.own.use_private_ip {
            &i.private_ip
        } else {
            &i.public_ip
        };
        if ip.is_empty() {
            return Err(failed(
                "find the address",
                format!("no IP for instance {}", i.id),
            ));
        }
        // it becomes an SSH host and a certificate name: an address only
        ip.parse::<std::net::IpAddr>().map_err(|_| {
            failed(
                "find the address",
                format!(
                    "instance {}: {:?} is not an IP address",
                    i.id,
                    machine_core::host::printable(ip)
                ),
            )
        })?;
        Ok(ip.clone())
    }

    /// The default VPC's id (DescribeAccountAttributes).
    async fn default_vpc(&self) -> Result<String, DriverError> {
        let mut p = Params::new();
        p.add("AttributeName.1", "default-vpc");
        let x = self.call("DescribeAccountAttributes", &p).await?;
        for a in x.items("accountAttributeSet") {
            if a.text_at("attributeName") == "default-vpc" {
                let v = a
                    .items("attributeValueSet")
                    .first()
                    .map(|v| v.text_at("attributeValue"))
                    .unwrap_or_default();
                if !v.is_empty() && v != "none" {
                    return Ok(v);
                }
            }
        }
        Err(failed("find the network", "amazonec2 driver requires either the --amazonec2-subnet-id or --amazonec2-vpc-id option or an AWS Account with a default vpc-id"))
    }

    /// The subnets an instance may land in: the fleet's candidates, else the one.
    fn subnet_candidates(&self) -> Vec<String> {
        if self.own.subnet_ids.is_empty() {
            vec![self.own.subnet_id.clone()]
        } else {
            self.own.subnet_ids.clone()
        }
    }

    async fn resolve_network(&mut self) -> Result<(), DriverError> {
        if !self.own.subnet_id.is_empty() {
            // every candidate in the one VPC the security group belongs to
            for subnet in self.subnet_candidates() {
                let mut p = Params::new();
                p.add("SubnetId.1", subnet.clone());
                let x = self.call("DescribeSubnets", &p).await?;
                let found = x.items("subnetSet").first().map(|s| s.text_at("vpcId"));
                let Some(vpc) = found else {
                    return Err(failed(
                        "find the subnet",
                        format!("subnet {subnet} not found in this region"),
                    ));
                };
                if self.own.vpc_id.is_empty() {
                    self.own.vpc_id = vpc;
                } else if vpc != self.own.vpc_id {
                    return Err(failed(
                        "find the subnet",
                        format!(
                            "SubnetId: {subnet} does not belong to VpcId: {}",
                            self.own.vpc_id
                        ),
                    ));
                }
            }
            return Ok(());
        }
        if self.own.vpc_id.is_empty() {
            self.own.vpc_id = self.default_vpc().await?;
        }
        let zone = self.region_zone();
        let mut p = Params::new();
        p.filter(1, "availability-zone", std::slice::from_ref(&zone))
            .filter(2, "vpc-id", std::slice::from_ref(&self.own.vpc_id));
        let x = self.call("DescribeSubnets", &p).await?;
        let subnets = x.items("subnetSet");
        let chosen = subnets
            .iter()
            .find(|s| s.text_at("defaultForAz") == "true")
            .or(subnets.first())
            .map(|s| s.text_at("subnetId"));
        self.own.subnet_id = chosen.ok_or_else(|| {
            failed(
                "find the subnet",
                format!(
                    "unable to find a subnet that is both in the zone {zone} and belonging to VPC ID {}",
                    self.own.vpc_id
                ),
            )
        })?;
        Ok(())
    }

    /// Copy or make the SSH key, import its public half unless an existing
    /// key pair is named.
    async fn key_pair(&mut self) -> Result<(), DriverError> {
        let dst = self.machine_dir.join("id_rsa");
        let public = if self.own.ssh_private_key_path.is_empty() {
            machine_core::ssh::client::generate_key(&dst)
                .map_err(|e| failed("make an SSH key", e))?;
            read_text(&pub_path(&dst))?
        } else {
            let src = PathBuf::from(&self.own.ssh_private_key_path);
            let key = std::fs::read(&src).map_err(|e| DriverError::InvalidOption {
                driver: NAME.into(),
                flag: "amazonec2-ssh-keypath".into(),
                value: src.display().to_string(),
                reason: e.to_string(),
            })?;
            machine_core::fsutil::write_atomic(&dst, &key, 0o600)
                .map_err(|e| failed("copy the SSH key", e))?;
            let public = std::fs::read_to_string(pub_path(&src)).ok();
            if let Some(p) = &public {
                machine_core::fsutil::write_atomic(&pub_path(&dst), p.as_bytes(), 0o644)
                    .map_err(|e| failed("copy the SSH key", e))?;
            }
            if self.own.existing_key {
                return Ok(());
            }
            public.ok_or_else(|| {
                failed(
                    "import the SSH key",
                    format!("{} has no .pub beside it", src.display()),
                )
            })?
        };
        let name = self.base.machine_name.clone();
        let mut p = Params::new();
        p.add("KeyName", name.clone())
            .add("PublicKeyMaterial", base64_encode(public.trim().as_bytes()));
        self.call("ImportKeyPair", &p).await?;
        self.own.key_name = name;
        self.own.existing_key = false;
        self.persist()
    }

    async fn security_groups(&mut self) -> Result<(), DriverError> {
        let names = self.group_names();
        if names.is_empty() {
            return Ok(());
        }
        self.own.security_group_ids.clear();
        self.own.security_group_id.clear();
        for name in names {
            let (id, rules) = match self.find_group(&name).await? {
                Some(found) => found,
                None => {
                    let mut p = Params::new();
                    p.add("GroupName", name.clone())
                        .add("GroupDescription", "Docker Machine")
                        .add("VpcId", self.own.vpc_id.clone());
                    match self.try_call("CreateSecurityGroup", &p).await? {
                        Ok(x) => {
                            let id = x.text_at("groupId");
                            self.own.created_security_group_ids.push(id.clone());
                            self.persist()?;
                            (id, Vec::new())
                        }
                        // made meanwhile by a concurrent create: use it
                        Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
                            self.find_group(&name).await?.ok_or_else(|| {
                                failed("find the security group", format!("{name} vanished"))
                            })?
                        }
                        Err(e) => return Err(api_err("CreateSecurityGroup", e)),
                    }
                }
            };
            self.own.security_group_ids.push(id.clone());
            if !self.own.security_group_read_only {
                self.authorize(&id, &rules).await?;
            }
        }
        self.persist()
    }

    /// A group by name in our VPC: its id and the `port/proto` it opens.
    async fn find_group(&self, name: &str) -> Result<Option<(String, Vec<String>)>, DriverError> {
        let mut p = Params::new();
        p.filter(1, "group-name", &[name.to_string()]).filter(
            2,
            "vpc-id",
            std::slice::from_ref(&self.own.vpc_id),
        );
        let x = self.call("DescribeSecurityGroups", &p).await?;
        Ok(x.items("securityGroupInfo")
            .into_iter()
            .find(|g| g.text_at("groupName") == name)
            .map(|g| {
                let rules = g
                    .items("ipPermissions")
                    .iter()
                    .map(|r| format!("{}/{}", r.text_at("fromPort"), r.text_at("ipProtocol")))
                    .collect();
                (g.text_at("groupId"), rules)
            }))
    }

    async fn authorize(&self, group: &str, has: &[String]) -> Result<(), DriverError> {
        let mut wanted: Vec<(u16, String)> = vec![
            (self.base.ssh_port, "tcp".into()),
            (DOCKER_PORT, "tcp".into()),
        ];
        for p in &self.own.open_ports {
            wanted.push(split_port(p).map_err(|r| failed("open a port", r))?);
        }
        let mut p = Params::new();
        p.add("GroupId", group);
        let mut n = 0;
        for (port, proto) in wanted {
            let key = format!("{port}/{proto}");
            if has.contains(&key) {
                continue;
            }
            n += 1;
            let pre = format!("IpPermissions.{n}");
            p.add(format!("{pre}.IpProtocol"), proto)
                .add(format!("{pre}.FromPort"), port.to_string())
                .add(format!("{pre}.ToPort"), port.to_string())
                .add(format!("{pre}.IpRanges.1.CidrIp"), "0.0.0.0/0");
        }
        if n == 0 {
            return Ok(());
        }
        match self.try_call("AuthorizeSecurityGroupIngress", &p).await? {
            Ok(_) => Ok(()),
            // a concurrent create added the same rules
            Err(e) if e.code() == Some("InvalidPermission.Duplicate") => Ok(()),
            Err(e) => Err(api_err("AuthorizeSecurityGroupIngress", e)),
        }
    }

    fn tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![
            ("Name".to_string(), self.base.machine_name.clone()),
            (ID_TAG.to_string(), self.own.id.clone()),
        ];
        let parts: Vec<&str> = self.own.tags.split(',').collect();
        if !self.own.tags.is_empty() {
            if !parts.len().is_multiple_of(2) {
                tracing::warn!(
                    count = parts.len(),
                    "Tags are not key value in pairs; the last one is ignored"
                );
            }
            for kv in parts.chunks_exact(2) {
                tags.push((kv[0].to_string(), kv[1].to_string()));
            }
        }
        tags
    }

    /// The launch settings shared by RunInstances and RequestSpotInstances,
    /// each name prefixed with `pre`.
    fn launch_params(&self, p: &mut Params, pre: &str) -> Result<(), DriverError> {
        p.add(
            format!("{pre}Placement.AvailabilityZone"),
            self.region_zone(),
        );
        let ni = format!("{pre}NetworkInterface.1");
        p.add(format!("{ni}.DeviceIndex"), "0")
            .add(format!("{ni}.SubnetId"), self.own.subnet_id.clone())
            .add(
                format!("{ni}.AssociatePublicIpAddress"),
                (!self.own.private_ip_only).to_string(),
            )
            .list(&format!("{ni}.SecurityGroupId"), &self.group_ids());
        self.instance_params(p, pre)
    }

    /// What RunInstances, RequestSpotInstances and a launch template's data
    /// share: image, type, key, profile, monitoring, root volume, user data.
    fn instance_params(&self, p: &mut Params, pre: &str) -> Result<(), DriverError> {
        p.add(format!("{pre}ImageId"), self.own.ami.clone())
            .add(format!("{pre}InstanceType"), self.own.instance_type.clone())
            .add(
                format!("{pre}Monitoring.Enabled"),
                self.own.monitoring.to_string(),
            )
            .add(
                format!("{pre}EbsOptimized"),
                self.own.use_ebs_optimized_instance.to_string(),
            );
        if !self.own.key_name.is_empty() {
            p.add(format!("{pre}KeyName"), self.own.key_name.clone());
        }
        if !self.own.iam_instance_profile.is_empty() {
            p.add(
                format!("{pre}IamInstanceProfile.Name"),
                self.own.iam_instance_profile.clone(),
            );
        }
        let bd = format!("{pre}BlockDeviceMapping.1");
        p.add(format!("{bd}.DeviceName"), self.own.device_name.clone())
            .add(
                format!("{bd}.Ebs.VolumeSize"),
                self.own.root_size.to_string(),
            )
            .add(format!("{bd}.Ebs.VolumeType"), self.own.volume_type.clone())
            .add(format!("{bd}.Ebs.DeleteOnTermination"), "true");
        if self.own.encrypt_ebs_volume {
            p.add(format!("{bd}.Ebs.Encrypted"), "true");
            if !self.own.kms_key_id.is_empty() {
                p.add(format!("{bd}.Ebs.KmsKeyId"), self.own.kms_key_id.clone());
            }
        }
        if !self.own.user_data_file.is_empty() {
            let data = std::fs::read(&self.own.user_data_file).map_err(|e| {
                DriverError::InvalidOption {
                    driver: NAME.into(),
                    flag: "amazonec2-userdata".into(),
                    value: self.own.user_data_file.clone(),
                    reason: format!("unable to read --amazonec2-userdata file: {e}"),
                }
            })?;
            p.add(format!("{pre}UserData"), base64_encode(&data));
        }
        Ok(())
    }

    fn tag_spec(&self, p: &mut Params, n: usize, resource: &str) {
        self.tag_spec_at(p, "", n, resource)
    }

    fn tag_spec_at(&self, p: &mut Params, prefix: &str, n: usize, resource: &str) {
        let pre = format!("{prefix}TagSpecification.{n}");
        p.add(format!("{pre}.ResourceType"), resource);
        for (i, (k, v)) in self.tags().into_iter().enumerate() {
            p.add(format!("{pre}.Tag.{}.Key", i + 1), k)
                .add(format!("{pre}.Tag.{}.Value", i + 1), v);
        }
    }

    async fn run_instance(&mut self) -> Result<(), DriverError> {
        let mut p = Params::new();
        p.add("MinCount", "1")
            .add("MaxCount", "1")
            .add("ClientToken", self.own.id.clone());
        self.launch_params(&mut p, "")?;
        self.metadata_params(&mut p, "");
        self.tag_spec(&mut p, 1, "instance");
        let x = self.call("RunInstances", &p).await?;
        self.own.reservation_id = x.text_at("reservationId");
        let first = x
            .items("instancesSet")
            .first()
            .map(|i| i.text_at("instanceId"));
        self.own.instance_id = first
            .filter(|i| !i.is_empty())
            .ok_or_else(|| failed("launch the instance", "RunInstances named no instance"))?;
        self.persist()
    }

    /// The instance metadata service's settings (IMDSv2 flags).
    fn metadata_options(&self) -> [(&'static str, String); 3] {
        [
            ("HttpEndpoint", "enabled".to_string()),
            ("HttpTokens", self.own.metadata_token.clone()),
            (
                "HttpPutResponseHopLimit",
                self.own.metadata_token_response_hop_limit.to_string(),
            ),
        ]
    }

    fn metadata_params(&self, p: &mut Params, pre: &str) {
        for (k, v) in self.metadata_options() {
            p.add(format!("{pre}MetadataOptions.{k}"), v);
        }
    }

    /// The launch template a fleet of ours launches from: named after the
    /// machine's id, so `rm` finds it even when its id was never saved.
    fn own_template_name(&self) -> String {
        format!("docker-machine-{}", self.own.id)
    }

    async fn create_launch_template(&mut self) -> Result<(), DriverError> {
        let mut p = Params::new();
        p.add("LaunchTemplateName", self.own_template_name())
            .add("ClientToken", self.own.id.clone());
        let pre = "LaunchTemplateData.";
        self.instance_params(&mut p, pre)?;
        self.metadata_params(&mut p, pre);
        p.list(&format!("{pre}SecurityGroupId"), &self.group_ids());
        self.tag_spec_at(&mut p, pre, 1, "instance");
        self.tag_spec(&mut p, 1, "launch-template");
        let x = self.call("CreateLaunchTemplate", &p).await?;
        self.own.launch_template_id = x.text_at("launchTemplate/launchTemplateId");
        self.own.created_launch_template = true;
        self.persist()?;
        if self.own.launch_template_id.is_empty() {
            return Err(failed(
                "make the launch template",
                "CreateLaunchTemplate named no template",
            ));
        }
        Ok(())
    }

    /// One instance through an instant EC2 Fleet: every instance type with
    /// every subnet as candidates, spot or on-demand.
    async fn create_fleet(&mut self) -> Result<(), DriverError> {
        let spec = "LaunchTemplateConfigs.1.LaunchTemplateSpecification";
        let mut p = Params::new();
        if self.own.launch_template.is_empty() {
            self.create_launch_template().await?;
            p.add(
                format!("{spec}.LaunchTemplateId"),
                self.own.launch_template_id.clone(),
            )
            .add(format!("{spec}.Version"), "$Latest");
        } else {
            let t = self.own.launch_template.clone();
            let key = if t.starts_with("lt-") {
                "LaunchTemplateId"
            } else {
                "LaunchTemplateName"
            };
            p.add(format!("{spec}.{key}"), t)
                .add(format!("{spec}.Version"), "$Default");
        }
        let spot = self.own.request_spot_instance;
        p.add("Type", "instant")
            .add("ClientToken", self.own.id.clone())
            .add("TargetCapacitySpecification.TotalTargetCapacity", "1")
            .add(
                "TargetCapacitySpecification.DefaultTargetCapacityType",
                if spot { "spot" } else { "on-demand" },
            );
        let types = if self.own.instance_types.is_empty() {
            vec![self.own.instance_type.clone()]
        } else {
            self.own.instance_types.clone()
        };
        let mut n = 0;
        for t in &types {
            for s in self.subnet_candidates() {
                n += 1;
                let o = format!("LaunchTemplateConfigs.1.Overrides.{n}");
                p.add(format!("{o}.InstanceType"), t.clone())
                    .add(format!("{o}.SubnetId"), s);
                if spot && !self.own.spot_price.is_empty() {
                    p.add(format!("{o}.MaxPrice"), self.own.spot_price.clone());
                }
            }
        }
        self.tag_spec(&mut p, 1, "instance");
        self.tag_spec(&mut p, 2, "fleet");
        let x = self.call("CreateFleet", &p).await?;
        self.own.fleet_id = x.text_at("fleetId");
        let launched = x
            .items("fleetInstanceSet")
            .into_iter()
            .flat_map(|i| i.items("instanceIds"))
            .map(|i| i.text.clone())
            .find(|i| !i.is_empty());
        if let Some(id) = &launched {
            self.own.instance_id = id.clone();
        }
        self.persist()?;
        if launched.is_none() {
            let why: Vec<String> = x
                .items("errorSet")
                .iter()
                .map(|e| format!("{}: {}", e.text_at("errorCode"), e.text_at("errorMessage")))
                .collect();
            return Err(failed(
                "launch through the fleet",
                if why.is_empty() {
                    "the fleet launched no instance".to_string()
                } else {
                    why.join("; ")
                },
            ));
        }
        Ok(())
    }

    async fn request_spot(&mut self) -> Result<(), DriverError> {
        let mut p = Params::new();
        // no price: capped at the on-demand price, as EC2 does when unset
        if !self.own.spot_price.is_empty() {
            p.add("SpotPrice", self.own.spot_price.clone());
        }
        p.add("InstanceCount", "1")
            .add("ClientToken", self.own.id.clone());
        if self.own.block_duration_minutes != 0 {
            p.add(
                "BlockDurationMinutes",
                self.own.block_duration_minutes.to_string(),
            );
        }
        self.launch_params(&mut p, "LaunchSpecification.")?;
        self.tag_spec(&mut p, 1, "spot-instances-request");
        let x = self.call("RequestSpotInstances", &p).await?;
        self.own.spot_instance_request_id = x
            .items("spotInstanceRequestSet")
            .first()
            .map(|r| r.text_at("spotInstanceRequestId"))
            .filter(|i| !i.is_empty())
            .ok_or_else(|| failed("request a spot instance", "no request id in the answer"))?;
        self.persist()?;
        let deadline = tokio::time::Instant::now() + RUNNING_TIMEOUT;
        loop {
            let mut q = Params::new();
            q.add(
                "SpotInstanceRequestId.1",
                self.own.spot_instance_request_id.clone(),
            );
            match self.try_call("DescribeSpotInstanceRequests", &q).await? {
                Ok(x) => {
                    let r = x.items("spotInstanceRequestSet");
                    let id = r
                        .first()
                        .map(|r| r.text_at("instanceId"))
                        .unwrap_or_default();
                    if !id.is_empty() {
                        self.own.instance_id = id;
                        self.persist()?;
                        break;
                    }
                    let state = r.first().map(|r| r.text_at("state")).unwrap_or_default();
                    if matches!(state.as_str(), "cancelled" | "failed" | "closed") {
                        return Err(failed(
                            "request a spot instance",
                            format!("the spot request is {state}"),
                        ));
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(api_err("DescribeSpotInstanceRequests", e)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(
                    "request a spot instance",
                    "the spot request was not fulfilled within 600 s",
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        // a spot request's tags do not pass to its instance
        let mut t = Params::new();
        t.add("ResourceId.1", self.own.instance_id.clone());
        for (i, (k, v)) in self.tags().into_iter().enumerate() {
            t.add(format!("Tag.{}.Key", i + 1), k)
                .add(format!("Tag.{}.Value", i + 1), v);
        }
        self.call("CreateTags", &t).await?;
        // nor does a spot launch specification take metadata options: set
        // them on the instance when they differ from EC2's defaults
        if self.own.metadata_token != "optional" || self.own.metadata_token_response_hop_limit != 1
        {
            let mut m = Params::new();
            m.add("InstanceId", self.own.instance_id.clone());
            for (k, v) in self.metadata_options() {
                m.add(k, v);
            }
            self.call("ModifyInstanceMetadataOptions", &m).await?;
        }
        Ok(())
    }

    async fn wait_running(&mut self) -> Result<Instance, DriverError> {
        let deadline = tokio::time::Instant::now() + RUNNING_TIMEOUT;
        loop {
            if let Some(i) = self.describe(&self.own.instance_id).await? {
                match i.state.as_str() {
                    "running" if self.address_of(&i).is_ok() => return Ok(i),
                    "terminated" | "shutting-down" => {
                        return Err(failed(
                            "wait for the instance",
                            format!("instance {} is {}", i.id, i.state),
                        ))
                    }
                    _ => {}
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(
                    "wait for the instance",
                    format!(
                        "instance {} did not run within {} s",
                        self.own.instance_id,
                        RUNNING_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn wait_ssh(&self) -> Result<(), DriverError> {
        let deadline = tokio::time::Instant::now() + RUNNING_TIMEOUT;
        let (host, port) = (self.base.ip_address.clone(), self.base.ssh_port);
        loop {
            let st =
                machine_core::driver::tcp_probe_state(&host, port, Duration::from_secs(5)).await;
            if st == State::Running {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(
                    "wait for SSH",
                    format!(
                        "{host}:{port} did not answer within {} s",
                        RUNNING_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn adopt(&mut self, i: &Instance) -> Result<(), DriverError> {
        self.base.ip_address = self.address_of(i)?;
        self.own.private_ip_address = i.private_ip.clone();
        // what the fleet chose among the candidates
        if !i.subnet_id.is_empty() {
            self.own.subnet_id = i.subnet_id.clone();
        }
        if !i.instance_type.is_empty() {
            self.own.instance_type = i.instance_type.clone();
        }
        self.persist()
    }

    /// One call of `rm`'s cleanup: its answer, or `None` when what it names
    /// is already gone (done) or the call failed (noted in `errors`).
    async fn cleanup(
        &self,
        action: &str,
        p: &Params,
        errors: &mut Vec<String>,
    ) -> Result<Option<Xml>, DriverError> {
        match self.try_call(action, p).await? {
            Ok(x) => Ok(Some(x)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => {
                errors.push(e.to_string());
                Ok(None)
            }
        }
    }

    /// Instances carrying our id tag that are not terminated.
    async fn tagged_instances(&self) -> Result<Vec<String>, DriverError> {
        let mut p = Params::new();
        p.filter(
            1,
            &format!("tag:{ID_TAG}"),
            std::slice::from_ref(&self.own.id),
        )
        .filter(
            2,
            "instance-state-name",
            &["pending", "running", "stopping", "stopped", "shutting-down"].map(String::from),
        );
        let x = self.call("DescribeInstances", &p).await?;
        Ok(instances_of(&x).into_iter().map(|i| i.id).collect())
    }

    async fn tagged_spot_requests(&self) -> Result<Vec<String>, DriverError> {
        let mut p = Params::new();
        p.filter(
            1,
            &format!("tag:{ID_TAG}"),
            std::slice::from_ref(&self.own.id),
        );
        let x = self.call("DescribeSpotInstanceRequests", &p).await?;
        Ok(x.items("spotInstanceRequestSet")
            .iter()
            .filter(|r| !matches!(r.text_at("state").as_str(), "cancelled" | "closed"))
            .map(|r| r.text_at("spotInstanceRequestId"))
            .collect())
    }

    /// Wait until none of `ids` is left but terminated (bounded).
    async fn wait_terminated(&self, ids: &[String]) -> Result<(), DriverError> {
        let deadline = tokio::time::Instant::now() + TERMINATE_TIMEOUT;
        loop {
            let mut p = Params::new();
            p.list("InstanceId", ids);
            let left = match self.try_call("DescribeInstances", &p).await? {
                Ok(x) => instances_of(&x)
                    .into_iter()
                    .filter(|i| i.state != "terminated")
                    .count(),
                Err(e) if e.is_not_found() => 0,
                Err(e) => return Err(api_err("DescribeInstances", e)),
            };
            if left == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(
                    "remove",
                    format!(
                        "instances {ids:?} did not terminate within {} s",
                        TERMINATE_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// An error and its sources, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn pub_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn read_text(p: &Path) -> Result<String, DriverError> {
    std::fs::read_to_string(p)
        .map_err(|e| failed("read the SSH key", format!("{}: {e}", p.display())))
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[async_trait]
impl Driver for Ec2Driver {
    fn driver_name(&self) -> &str {
        NAME
    }

    fn set_checkpoint(&mut self, checkpoint: Checkpoint) {
        self.checkpoint = Some(checkpoint);
    }

    /// Credentials can be found, and the key pair the machine will use
    /// exists (a named one) or does not yet (ours, named after the machine).
    async fn pre_create_check(&self) -> Result<(), DriverError> {
        let refuse = |reason: String| DriverError::PreCreateCheck {
            driver: NAME.into(),
            reason,
        };
        self.client().await.map_err(|e| refuse(chain(&e)))?;
        let (name, should_exist) = if self.own.existing_key {
            (self.own.key_name.clone(), true)
        } else {
            (self.base.machine_name.clone(), false)
        };
        let mut p = Params::new();
        p.add("KeyName.1", name.clone());
        let exists = match self.try_call("DescribeKeyPairs", &p).await? {
            Ok(x) => !x.items("keySet").is_empty(),
            Err(e) if e.code() == Some("InvalidKeyPair.NotFound") => false,
            Err(e) => return Err(refuse(chain(&e))),
        };
        match (exists, should_exist) {
            (false, true) => Err(refuse(format!("There is no keypair with the name {name}. Please verify the key name provided."))),
            (true, false) => Err(refuse(format!("There is already a keypair with the name {name}.  Please either remove that keypair or use a different machine name."))),
            _ => Ok(()),
        }
    }

    async fn create(&mut self) -> Result<(), DriverError> {
        self.resolve_network().await?;
        self.persist()?;
        self.key_pair().await?;
        self.security_groups().await?;
        let report = machine_core::progress::report;
        if self.own.use_fleet {
            report("Launching the instance through an EC2 Fleet");
            self.create_fleet().await?;
        } else if self.own.request_spot_instance {
            report("Requesting a spot instance");
            self.request_spot().await?;
        } else {
            report("Launching the instance");
            self.run_instance().await?;
        }
        report(&format!(
            "Waiting for instance {} to run",
            machine_core::host::printable(&self.own.instance_id).replace('\n', " ")
        ));
        let i = self.wait_running().await?;
        self.adopt(&i).await?;
        report(&format!(
            "Waiting for SSH on {}:{}",
            self.base.ip_address, self.base.ssh_port
        ));
        self.wait_ssh().await
    }

    async fn remove(&mut self) -> Result<(), DriverError> {
        let mut errors = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        if !self.own.instance_id.is_empty() {
            ids.push(self.own.instance_id.clone());
        }
        // an instance launched but never recorded (a crash right after
        // RunInstances) carries our id tag
        if !self.own.id.is_empty() {
            match self.tagged_instances().await {
                Ok(found) => {
                    for f in found {
                        if !ids.contains(&f) {
                            ids.push(f);
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let mut spot: Vec<String> = Vec::new();
        if !self.own.spot_instance_request_id.is_empty() {
            spot.push(self.own.spot_instance_request_id.clone());
        }
        if self.own.request_spot_instance && !self.own.id.is_empty() {
            match self.tagged_spot_requests().await {
                Ok(found) => spot.extend(
                    found
                        .into_iter()
                        .filter(|f| !spot.contains(f))
                        .collect::<Vec<_>>(),
                ),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !spot.is_empty() {
            // a request fulfilled after its id was saved but before the
            // instance's was: its instance carries no tag yet
            let mut p = Params::new();
            p.list("SpotInstanceRequestId", &spot);
            let found = self
                .cleanup("DescribeSpotInstanceRequests", &p, &mut errors)
                .await?;
            for r in found.iter().flat_map(|x| x.items("spotInstanceRequestSet")) {
                let i = r.text_at("instanceId");
                if !i.is_empty() && !ids.contains(&i) {
                    ids.push(i);
                }
            }
            self.cleanup("CancelSpotInstanceRequests", &p, &mut errors)
                .await?;
        }
        if !self.own.fleet_id.is_empty() {
            let mut p = Params::new();
            p.add("FleetId.1", self.own.fleet_id.clone())
                .add("TerminateInstances", "true");
            let answer = self.cleanup("DeleteFleets", &p, &mut errors).await?;
            for u in answer
                .iter()
                .flat_map(|x| x.items("unsuccessfulFleetDeletionSet"))
            {
                let code = u.text_at("error/code");
                if code != "fleetIdDoesNotExist" {
                    errors.push(format!(
                        "DeleteFleets {}: {code}: {}",
                        self.own.fleet_id,
                        u.text_at("error/message")
                    ));
                }
            }
        }
        if self.own.use_fleet && !ids.is_empty() {
            // a fleet's spot capacity comes with requests of its own
            let mut p = Params::new();
            p.filter(1, "instance-id", &ids);
            let found = self
                .cleanup("DescribeSpotInstanceRequests", &p, &mut errors)
                .await?;
            let open: Vec<String> = found
                .iter()
                .flat_map(|x| x.items("spotInstanceRequestSet"))
                .filter(|r| !matches!(r.text_at("state").as_str(), "cancelled" | "closed"))
                .map(|r| r.text_at("spotInstanceRequestId"))
                .collect();
            if !open.is_empty() {
                let mut c = Params::new();
                c.list("SpotInstanceRequestId", &open);
                self.cleanup("CancelSpotInstanceRequests", &c, &mut errors)
                    .await?;
            }
        }
        let mut terminated = Vec::new();
        for id in &ids {
            let mut p = Params::new();
            p.add("InstanceId.1", id.clone());
            match self.try_call("TerminateInstances", &p).await? {
                Ok(_) => terminated.push(id.clone()),
                Err(e) if e.is_not_found() => {
                    tracing::warn!(instance = %id, "Remote instance does not exist, proceeding with removing local reference");
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        // ours by name, so also when a crash came before its id was saved
        if self.own.created_launch_template
            || (self.own.use_fleet
                && self.own.launch_template.is_empty()
                && !self.own.id.is_empty())
        {
            let mut p = Params::new();
            p.add("LaunchTemplateName", self.own_template_name());
            self.cleanup("DeleteLaunchTemplate", &p, &mut errors)
                .await?;
        }
        if !self.own.existing_key && !self.own.key_name.is_empty() {
            let mut p = Params::new();
            p.add("KeyName", self.own.key_name.clone());
            self.cleanup("DeleteKeyPair", &p, &mut errors).await?;
        }
        if !self.own.created_security_group_ids.is_empty() {
            if !terminated.is_empty() {
                if let Err(e) = self.wait_terminated(&terminated).await {
                    errors.push(e.to_string());
                }
            }
            for g in self.own.created_security_group_ids.clone() {
                let mut p = Params::new();
                p.add("GroupId", g.clone());
                match self.try_call("DeleteSecurityGroup", &p).await? {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    // another machine uses the group now: it stays
                    Err(e)
                        if e.code() == Some("DependencyViolation")
                            || e.code() == Some("InvalidGroup.InUse") =>
                    {
                        tracing::warn!(group = %g, "security group still in use by another instance; kept");
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(failed("remove", errors.join("; ")))
        }
    }

    async fn state(&self) -> Result<State, DriverError> {
        if self.own.instance_id.is_empty() {
            return Ok(State::Error);
        }
        Ok(match self.describe(&self.own.instance_id).await? {
            Some(i) => map_state(&i.state),
            None => State::Error,
        })
    }

    async fn ip(&self) -> Result<String, DriverError> {
        let i = self.instance().await?;
        self.address_of(&i)
    }

    fn ssh_target(&self) -> Option<SshTarget> {
        Some(self.base.ssh_target())
    }

    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        machine_core::driver::save_driver_object(NAME, &self.base, &self.own)
    }

    async fn start(&mut self) -> Result<(), DriverError> {
        let mut p = Params::new();
        p.add("InstanceId.1", self.own.instance_id.clone());
        self.call("StartInstances", &p).await?;
        let i = self.wait_running().await?;
        // the public address changes with every start
        self.base.ip_address = self.address_of(&i)?;
        self.own.private_ip_address = i.private_ip;
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), DriverError> {
        let mut p = Params::new();
        p.add("InstanceId.1", self.own.instance_id.clone())
            .add("Force", "false");
        self.call("StopInstances", &p).await.map(|_| ())
    }

    async fn restart(&mut self) -> Result<(), DriverError> {
        let mut p = Params::new();
        p.add("InstanceId.1", self.own.instance_id.clone());
        self.call("RebootInstances", &p).await.map(|_| ())
    }

    async fn kill(&mut self) -> Result<(), DriverError> {
        let mut p = Params::new();
        p.add("InstanceId.1", self.own.instance_id.clone())
            .add("Force", "true");
        self.call("StopInstances", &p).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path) -> DriverContext {
        crate::test_util::ctx(dir, "m1")
    }

    fn opts(given: &[(&str, &str)]) -> Result<DriverOptions, DriverError> {
        crate::test_util::opts(&Ec2Factory, given)
    }

    #[test]
    fn defaults_are_the_originals() {
        let o = opts(&[]).expect("opts");
        assert_eq!(o.string("amazonec2-region"), "us-east-1");
        assert_eq!(o.string("amazonec2-zone"), "a");
        assert_eq!(o.list("amazonec2-security-group"), ["docker-machine"]);
        assert_eq!(o.list("amazonec2-instance-type"), ["t2.micro"]);
        assert_eq!(o.string("amazonec2-device-name"), "/dev/sda1");
        assert_eq!(o.int("amazonec2-root-size"), Some(16));
        assert_eq!(o.string("amazonec2-volume-type"), "gp2");
        assert_eq!(o.int("amazonec2-ssh-port"), Some(22));
        assert_eq!(o.string("amazonec2-ssh-user"), "ubuntu");
        assert_eq!(o.string("amazonec2-spot-price"), "0.50");
        assert_eq!(o.int("amazonec2-retries"), Some(5));
        let names: Vec<String> = Ec2Factory.options().into_iter().map(|o| o.flag).collect();
        assert_eq!(names.len(), 40);
    }

    #[test]
    fn saved_state_uses_the_original_field_names_and_loads_back() {
        let d = tempfile::tempdir().expect("tmp");
        let o = opts(&[
            ("amazonec2-region", "eu-west-1"),
            ("amazonec2-secret-key", "s3cr3t"),
        ])
        .expect("opts");
        let drv = Ec2Factory.new_driver(&ctx(d.path()), &o).expect("driver");
        let saved = drv.saved_state().expect("saved");
        let keys: Vec<&str> = saved.keys().map(String::as_str).collect();
        assert_eq!(keys[..9], machine_core::config::BASE_DRIVER_FIELDS);
        assert_eq!(
            keys[9..13],
            ["Id", "AccessKey", "SecretKey", "SessionToken"]
        );
        for k in [
            "InstanceId",
            "KeyName",
            "SecurityGroupIds",
            "SecurityGroupNames",
            "PrivateIPOnly",
            "DisableSSL",
            "UserDataFile",
        ] {
            assert!(saved.contains_key(k), "{k}");
        }
        assert_eq!(saved["AMI"], "ami-0b541372");
        assert_eq!(saved["SSHUser"], "ubuntu");
        assert!(!format!("{drv:?}").contains("s3cr3t"));
        let back = Ec2Factory
            .load_driver(&ctx(d.path()), &saved)
            .expect("load");
        assert_eq!(back.saved_state().expect("saved"), saved);
        // a file of the original with null lists loads
        let mut old = saved.clone();
        old.insert("SecurityGroupIds".into(), Value::Null);
        old.insert("OpenPorts".into(), Value::Null);
        old.remove("MetadataToken");
        Ec2Factory
            .load_driver(&ctx(d.path()), &old)
            .expect("load null");
    }

    #[test]
    fn flags_are_checked() {
        let d = tempfile::tempdir().expect("tmp");
        let bad = |given: &[(&str, &str)], flag: &str| {
            let o = opts(given).expect("opts");
            let e = Ec2Factory.new_driver(&ctx(d.path()), &o).expect_err(flag);
            assert!(e.to_string().contains(flag), "{e}");
        };
        bad(&[("amazonec2-region", "mars-1")], "amazonec2-region");
        bad(&[("amazonec2-keypair-name", "k")], "amazonec2-keypair-name");
        bad(
            &[("amazonec2-insecure-transport", "true")],
            "amazonec2-endpoint",
        );
        bad(
            &[("amazonec2-metadata-token", "sometimes")],
            "amazonec2-metadata-token",
        );
        bad(&[("amazonec2-open-port", "http")], "amazonec2-open-port");
        bad(
            &[
                ("amazonec2-endpoint", "127.0.0.1:1"),
                ("amazonec2-region", "moon"),
            ],
            "amazonec2-ami",
        );
        bad(
            &[
                ("amazonec2-use-fleet", "true"),
                ("amazonec2-launch-template", "no spaces; please"),
            ],
            "amazonec2-launch-template",
        );
        bad(
            &[
                ("amazonec2-use-fleet", "true"),
                ("amazonec2-block-duration-minutes", "60"),
            ],
            "amazonec2-block-duration-minutes",
        );
    }

    #[test]
    fn address_public_or_private_per_flags() {
        let d = tempfile::tempdir().expect("tmp");
        let inst = Instance {
            id: "i-1".into(),
            state: "running".into(),
            private_ip: "10.0.0.5".into(),
            public_ip: "198.51.100.7".into(),
            ..Instance::default()
        };
        let driver = |given: &[(&str, &str)]| {
            let o = opts(given).expect("opts");
            let b = Ec2Factory.new_driver(&ctx(d.path()), &o).expect("driver");
            let saved = b.saved_state().expect("saved");
            let (base, own): (BaseDriver, Own) =
                machine_core::driver::load_driver_object(NAME, &saved).expect("load");
            Ec2Driver {
                base,
                own,
                machine_dir: d.path().to_path_buf(),
                checkpoint: None,
                client: OnceCell::new(),
            }
        };
        assert_eq!(
            driver(&[]).address_of(&inst).expect("public"),
            "198.51.100.7"
        );
        for flag in [
            "amazonec2-private-address-only",
            "amazonec2-use-private-address",
        ] {
            assert_eq!(
                driver(&[(flag, "true")])
                    .address_of(&inst)
                    .expect("private"),
                "10.0.0.5"
            );
        }
        let no_public = Instance {
            public_ip: String::new(),
            ..inst.clone()
        };
        assert!(driver(&[]).address_of(&no_public).is_err());
        let hostile = Instance {
            public_ip: "-oProxyCommand=x".into(),
            ..inst
        };
        assert!(driver(&[]).address_of(&hostile).is_err());
    }

    #[test]
    fn tags_ports_states_base64() {
        assert_eq!(split_port("8080").expect("port"), (8080, "tcp".to_string()));
        assert_eq!(split_port("53/udp").expect("port"), (53, "udp".to_string()));
        assert_eq!(map_state("pending"), State::Starting);
        assert_eq!(map_state("shutting-down"), State::Stopping);
        assert_eq!(map_state("terminated"), State::Error);
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        assert_eq!(base64_encode(b"a"), "YQ==");
    }
}
