//! Docker Machine driver plugins, both ways.
//!
//! The original's drivers are separate executables (`docker-machine-driver-NAME`)
//! that the host starts with `MACHINE_PLUGIN_TOKEN=42` and
//! `MACHINE_PLUGIN_DRIVER_NAME=NAME`; the plugin prints `127.0.0.1:PORT` on
//! its first stdout line and answers Go `net/rpc` calls (over HTTP CONNECT,
//! gob codec) named `RPCServerDriver.<Method>`. Its later output lines are its
//! log. The host calls `Heartbeat` every 5 s; a plugin exits when they stop.
//!
//! - [`client`]: run such a plugin as a [`Driver`](machine_core::driver::Driver)
//!   ([`PluginSource`] finds them on `PATH` for a
//!   [`DriverRegistry`](machine_core::driver::DriverRegistry)).
//! - [`server`]: serve one of our drivers to a host that speaks the protocol
//!   (the original `docker-machine`, Rancher, GitLab Runner).
//! - [`gob`], [`rpc`]: the wire format.

pub mod client;
pub mod gob;
pub mod rpc;
pub mod server;

pub use client::{Plugin, PluginFactory, PluginSource};

use gob::{Type, Value};
use machine_core::driver::{DriverOption, DriverOptions, OptionKind, OptionValue};
use machine_core::State;

/// The environment variable a host sets for its plugins...
pub const ENV_TOKEN: &str = "MACHINE_PLUGIN_TOKEN";
/// ...to this value.
pub const TOKEN: &str = "42";
/// The environment variable naming the driver a plugin serves.
pub const ENV_DRIVER_NAME: &str = "MACHINE_PLUGIN_DRIVER_NAME";
/// The plugin API version both sides must speak.
pub const API_VERSION: i64 = 1;
/// The RPC service name.
pub const SERVICE: &str = "RPCServerDriver";
/// The service name of plugins older than docker-machine 0.5.1 (servers
/// register both).
pub const SERVICE_V0: &str = "RpcServerDriver";

/// `mcnflag`'s flag structs: `(registered name, type)` for each option kind.
pub fn flag_type(kind: OptionKind) -> (&'static str, Type) {
    let common = [
        ("Name", Type::String),
        ("Usage", Type::String),
        ("EnvVar", Type::String),
    ];
    let with = |name: &str, value: Option<Type>| {
        let mut f: Vec<(&str, Type)> = common.to_vec();
        if let Some(v) = value {
            f.push(("Value", v));
        }
        Type::structure(name, &f)
    };
    match kind {
        OptionKind::String => (
            "*mcnflag.StringFlag",
            with("StringFlag", Some(Type::String)),
        ),
        OptionKind::Int => ("*mcnflag.IntFlag", with("IntFlag", Some(Type::Int))),
        OptionKind::Bool => ("*mcnflag.BoolFlag", with("BoolFlag", None)),
        OptionKind::StringList => (
            "*mcnflag.StringSliceFlag",
            with("StringSliceFlag", Some(Type::slice(Type::String))),
        ),
    }
}

/// `GetCreateFlags`' answer (a list of mcnflag values) as our options.
pub fn flags_to_options(list: &Value) -> Result<Vec<DriverOption>, String> {
    let Value::List(items) = list else {
        return Err(format!("expected a list of flags, got {list:?}"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Interface(Some(i)) = item else {
            return Err("a flag that is nil".into());
        };
        let kind_name = i.name.rsplit('.').next().unwrap_or_default();
        let v = &i.value;
        let name = v.str_field("Name");
        if name.is_empty() || name.starts_with('-') || name.contains(char::is_whitespace) {
            return Err(format!("a flag named {name:?}"));
        }
        let (kind, default) = match kind_name {
            "StringFlag" => (
                OptionKind::String,
                Some(v.str_field("Value")).filter(|s| !s.is_empty()),
            ),
            "IntFlag" => (
                OptionKind::Int,
                Some(
                    v.field("Value")
                        .and_then(Value::as_int)
                        .unwrap_or(0)
                        .to_string(),
                ),
            ),
            "BoolFlag" => (OptionKind::Bool, None),
            "StringSliceFlag" => {
                let list: Vec<String> = match v.field("Value") {
                    Some(Value::List(l)) => l
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                (
                    OptionKind::StringList,
                    Some(list.join(",")).filter(|s| !s.is_empty()),
                )
            }
            other => return Err(format!("flag {name} of unknown kind {other:?}")),
        };
        let mut opt = DriverOption::new(&name, kind, &v.str_field("Usage"));
        if let Some(d) = default {
            opt = opt.default_value(&d);
        }
        let env = v.str_field("EnvVar");
        if !env.is_empty() {
            opt = opt.env(&env);
        }
        out.push(opt);
    }
    Ok(out)
}

/// Our options as `GetCreateFlags`' answer.
pub fn options_to_flags(options: &[DriverOption]) -> (Type, Value) {
    let items = options
        .iter()
        .map(|o| {
            let (name, ty) = flag_type(o.kind);
            let mut fields = vec![
                ("Name".to_string(), Value::String(o.flag.clone())),
                ("Usage".to_string(), Value::String(o.help.clone())),
                (
                    "EnvVar".to_string(),
                    Value::String(o.env_var.clone().unwrap_or_default()),
                ),
            ];
            let d = o.default.clone().unwrap_or_default();
            match o.kind {
                OptionKind::String => fields.push(("Value".into(), Value::String(d))),
                OptionKind::Int => {
                    fields.push(("Value".into(), Value::Int(d.trim().parse().unwrap_or(0))))
                }
                OptionKind::StringList => fields.push((
                    "Value".into(),
                    Value::List(
                        d.split(',')
                            .filter(|s| !s.is_empty())
                            .map(|s| Value::String(s.to_string()))
                            .collect(),
                    ),
                )),
                OptionKind::Bool => {}
            }
            Value::iface(name, ty, Value::Struct(fields))
        })
        .collect();
    (Type::slice(Type::Interface), Value::List(items))
}

/// `rpcdriver.RPCFlags`.
pub fn rpc_flags_type() -> Type {
    Type::structure(
        "RPCFlags",
        &[("Values", Type::map(Type::String, Type::Interface))],
    )
}

/// One option value as an interface value (`string`, `int`, `bool`, `[]string`).
fn option_iface(v: &OptionValue) -> Value {
    match v {
        OptionValue::String(s) => Value::iface("string", Type::String, Value::String(s.clone())),
        OptionValue::Int(i) => Value::iface("int", Type::Int, Value::Int(*i)),
        OptionValue::Bool(b) => Value::iface("bool", Type::Bool, Value::Bool(*b)),
        OptionValue::List(l) => Value::iface(
            "[]string",
            Type::slice(Type::String),
            Value::List(l.iter().map(|s| Value::String(s.clone())).collect()),
        ),
    }
}

/// `SetConfigFromFlags`' argument: every declared flag with its value (the
/// zero value of its kind when it has none), sent through the
/// `drivers.DriverOptions` interface as the original sends it.
pub fn rpc_flags(declared: &[DriverOption], options: &DriverOptions) -> (Type, Value) {
    let mut entries = Vec::new();
    for o in declared {
        let v = options.get(&o.flag).cloned().unwrap_or(match o.kind {
            OptionKind::String => OptionValue::String(String::new()),
            OptionKind::Int => OptionValue::Int(0),
            OptionKind::Bool => OptionValue::Bool(false),
            OptionKind::StringList => OptionValue::List(Vec::new()),
        });
        entries.push((Value::String(o.flag.clone()), option_iface(&v)));
    }
    // the swarm values drivers read through their base driver
    for (k, v) in [
        ("swarm-master", OptionValue::Bool(false)),
        ("swarm-host", OptionValue::String(String::new())),
        ("swarm-discovery", OptionValue::String(String::new())),
    ] {
        if !declared.iter().any(|o| o.flag == k) {
            entries.push((Value::String(k.into()), option_iface(&v)));
        }
    }
    let flags = Value::Struct(vec![("Values".into(), Value::Map(entries))]);
    (
        Type::Interface,
        Value::iface("*rpcdriver.RPCFlags", rpc_flags_type(), flags),
    )
}

/// Read `SetConfigFromFlags`' argument back into (flag, value) pairs.
pub fn flags_from_rpc(arg: &Value) -> Result<Vec<(String, OptionValue)>, String> {
    let inner = match arg {
        Value::Interface(Some(i)) => &i.value,
        Value::Struct(_) => arg,
        other => return Err(format!("expected RPCFlags, got {other:?}")),
    };
    let mut out = Vec::new();
    match inner.field("Values") {
        None => {}
        Some(Value::Map(entries)) => {
            for (k, v) in entries {
                let Some(k) = k.as_str() else { continue };
                let Value::Interface(Some(i)) = v else {
                    continue;
                };
                let value = match &i.value {
                    Value::String(s) => OptionValue::String(s.clone()),
                    Value::Bool(b) => OptionValue::Bool(*b),
                    Value::Int(n) => OptionValue::Int(*n),
                    Value::Uint(n) => OptionValue::Int(
                        i64::try_from(*n).map_err(|_| format!("{k}: {n} too large"))?,
                    ),
                    Value::List(l) => OptionValue::List(
                        l.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect(),
                    ),
                    other => return Err(format!("{k}: unsupported value {other:?}")),
                };
                out.push((k.to_string(), value));
            }
        }
        Some(other) => return Err(format!("Values is not a map: {other:?}")),
    }
    Ok(out)
}

/// libmachine's `state.State` number of a state.
pub fn state_to_int(s: State) -> i64 {
    State::ALL.iter().position(|x| *x == s).unwrap_or(0) as i64
}

/// The state of a `state.State` number.
pub fn state_from_int(i: i64) -> Option<State> {
    usize::try_from(i)
        .ok()
        .and_then(|i| State::ALL.get(i).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_through_gob() {
        let opts = vec![
            DriverOption::new("x-name", OptionKind::String, "a name")
                .default_value("n")
                .env("X_NAME"),
            DriverOption::new("x-count", OptionKind::Int, "a count").default_value("3"),
            DriverOption::new("x-on", OptionKind::Bool, "a switch").env("X_ON"),
            DriverOption::new("x-tags", OptionKind::StringList, "tags").default_value("a,b"),
        ];
        let (ty, v) = options_to_flags(&opts);
        let mut enc = gob::Encoder::new();
        let bytes = enc.encode(&ty, &v).expect("encode");
        let got = gob::Decoder::new().decode_all(&bytes).expect("decode");
        let back = flags_to_options(&got[0]).expect("flags");
        assert_eq!(back, opts);
    }

    #[test]
    fn rpc_flags_carry_every_kind() {
        let declared = vec![
            DriverOption::new("x-name", OptionKind::String, ""),
            DriverOption::new("x-count", OptionKind::Int, ""),
            DriverOption::new("x-on", OptionKind::Bool, ""),
            DriverOption::new("x-tags", OptionKind::StringList, ""),
        ];
        let given = vec![
            ("x-name".to_string(), OptionValue::String("n".into())),
            ("x-count".to_string(), OptionValue::Int(-5)),
            (
                "x-tags".to_string(),
                OptionValue::List(vec!["a".into(), "b".into()]),
            ),
        ];
        let o = DriverOptions::resolve("x", &declared, given, &|_| None).expect("resolve");
        let (ty, v) = rpc_flags(&declared, &o);
        let bytes = gob::Encoder::new().encode(&ty, &v).expect("encode");
        let got = gob::Decoder::new().decode_all(&bytes).expect("decode");
        let back = flags_from_rpc(&got[0]).expect("flags");
        assert!(back.contains(&("x-name".into(), OptionValue::String("n".into()))));
        assert!(back.contains(&("x-count".into(), OptionValue::Int(-5))));
        assert!(back.contains(&("x-on".into(), OptionValue::Bool(false))));
        assert!(back.contains(&(
            "x-tags".into(),
            OptionValue::List(vec!["a".into(), "b".into()])
        )));
        assert!(back.contains(&("swarm-master".into(), OptionValue::Bool(false))));
    }

    #[test]
    fn states_in_libmachine_order() {
        assert_eq!(state_to_int(State::Running), 1);
        assert_eq!(state_to_int(State::Stopped), 4);
        assert_eq!(state_to_int(State::Error), 7);
        assert_eq!(state_from_int(8), Some(State::Timeout));
        assert_eq!(state_from_int(9), None);
        assert_eq!(state_from_int(-1), None);
    }
}
