//! Drivers whose methods are called across a boundary: objects of another
//! language (Python, JavaScript) or another process (a driver plugin speaking
//! the original's RPC protocol).
//!
//! Such a front end supplies a [`ForeignObject`], which only knows how to
//! call a method of the driver object and read one of its properties, values
//! crossing as JSON. [`ForeignDriver`] turns it into a [`Driver`] with one set
//! of rules for every front end:
//!
//! - `create`, `remove`, `state` and `ip` must exist: an object without one
//!   is refused when the driver is made, naming the method;
//! - the engine port property, when present, must be a whole number in
//!   1..=65535 and "needs provisioning", when present, a boolean: anything
//!   else is refused when the driver is made;
//! - `state` returns a state's name (`Running`, `Stopped`, ...), `ip` and
//!   `url` strings, `save` an object, `ssh_target` an object with `host` and
//!   optionally `port` (default 22), `user` (default `root`) and `keyPath` /
//!   `key_path`, or nothing for a machine without SSH;
//! - a `url` of the form `tcp://host:port` must carry a port in 1..=65535;
//! - a missing `url` means `tcp://<ip>:<engine port>`, a missing
//!   `pre_create_check` passes, a missing `save` saves the create options, a
//!   missing lifecycle method (`start`, `stop`, `restart`, `kill`) or one
//!   answering "not supported" is [`DriverError::NotSupported`];
//! - a failure of the object carries its message (and its error as the
//!   source), a pre-create check's as [`DriverError::PreCreateCheck`];
//! - the saved `Driver` object is the base fields merged with what `save`
//!   returned, or, for an object that keeps its whole configuration (a
//!   plugin, see [`ForeignDriver::saving_as_returned`]), exactly what `save`
//!   returned.

use crate::config::{BaseDriver, DEFAULT_ENGINE_PORT};
use crate::driver::{engine_url, not_supported, Driver, DriverError, SshTarget};
use crate::engine::parse_tcp_url;
use crate::state::State;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;

/// What a call across the boundary can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The method said it does not support this (Python's
    /// `NotImplementedError`, say).
    #[error("not supported")]
    NotSupported,
    /// The method failed: its exception, rejection or error.
    #[error("{0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl CallError {
    /// A failure described by `message` only.
    pub fn message(message: impl Into<String>) -> Self {
        CallError::Failed(message.into().into())
    }
}

/// The methods and properties a foreign driver object has, named per
/// [`Naming`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Member {
    Create,
    Remove,
    State,
    Ip,
    Url,
    SshTarget,
    Save,
    PreCreateCheck,
    Start,
    Stop,
    Restart,
    Kill,
    /// Property: the Docker port (default 2376).
    EnginePort,
    /// Property: whether Docker must be installed and configured over SSH
    /// (default true).
    NeedsProvisioning,
}

/// How a front end spells member names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Naming {
    /// `pre_create_check`, `ssh_target`, `engine_port` (Python).
    Snake,
    /// `preCreateCheck`, `sshTarget`, `enginePort` (JavaScript).
    Camel,
    /// The driver plugin protocol's method names (`RPCServerDriver.<name>`):
    /// `GetState`, `GetIP`, `GetURL`, `PreCreateCheck`, `GetConfigRaw` for
    /// `save`, `GetSSHHostname` for the SSH target (the object gathers the
    /// port, user and key with the protocol's other `GetSSH*` calls), and
    /// `EnginePort` / `NeedsProvisioning` for the properties.
    Rpc,
}

impl Member {
    /// Every member.
    pub const ALL: [Member; 14] = [
        Member::Create,
        Member::Remove,
        Member::State,
        Member::Ip,
        Member::Url,
        Member::SshTarget,
        Member::Save,
        Member::PreCreateCheck,
        Member::Start,
        Member::Stop,
        Member::Restart,
        Member::Kill,
        Member::EnginePort,
        Member::NeedsProvisioning,
    ];

    /// Methods every driver object must have.
    pub const REQUIRED: [Member; 4] = [Member::Create, Member::Remove, Member::State, Member::Ip];

    /// What calling the member does, for error messages.
    pub fn operation(self) -> &'static str {
        match self {
            Member::Create => "create the machine",
            Member::Remove => "remove the machine",
            Member::State => "get the machine's state",
            Member::Ip => "get the machine's IP address",
            Member::Url => "get the Docker URL",
            Member::SshTarget => "get the SSH target",
            Member::Save => "save its state",
            Member::PreCreateCheck => "run its pre-create check",
            Member::Start => "start the machine",
            Member::Stop => "stop the machine",
            Member::Restart => "restart the machine",
            Member::Kill => "kill the machine",
            Member::EnginePort => "read its engine port",
            Member::NeedsProvisioning => "read whether it needs provisioning",
        }
    }

    /// The member's name in `naming`.
    pub fn name(self, naming: Naming) -> &'static str {
        let (snake, camel, rpc) = match self {
            Member::Create => ("create", "create", "Create"),
            Member::Remove => ("remove", "remove", "Remove"),
            Member::State => ("state", "state", "GetState"),
            Member::Ip => ("ip", "ip", "GetIP"),
            Member::Url => ("url", "url", "GetURL"),
            Member::SshTarget => ("ssh_target", "sshTarget", "GetSSHHostname"),
            Member::Save => ("save", "save", "GetConfigRaw"),
            Member::PreCreateCheck => ("pre_create_check", "preCreateCheck", "PreCreateCheck"),
            Member::Start => ("start", "start", "Start"),
            Member::Stop => ("stop", "stop", "Stop"),
            Member::Restart => ("restart", "restart", "Restart"),
            Member::Kill => ("kill", "kill", "Kill"),
            Member::EnginePort => ("engine_port", "enginePort", "EnginePort"),
            Member::NeedsProvisioning => (
                "needs_provisioning",
                "needsProvisioning",
                "NeedsProvisioning",
            ),
        };
        match naming {
            Naming::Snake => snake,
            Naming::Camel => camel,
            Naming::Rpc => rpc,
        }
    }
}

/// A driver object on the other side of a boundary: what a front end
/// implements. Values cross as JSON (`null` for None / undefined).
#[async_trait]
pub trait ForeignObject: Send + Sync + fmt::Debug {
    /// Whether the object has a method `name`.
    fn has_method(&self, name: &str) -> bool;
    /// Property `name`: `None` when the object has none.
    fn property(&self, name: &str) -> Result<Option<Value>, CallError>;
    /// Call method `name` with no arguments: `None` when there is no such
    /// method, else what it returned.
    async fn call(&self, name: &str) -> Result<Option<Value>, CallError>;
    /// [`call`](Self::call) from synchronous code (saving, the SSH target);
    /// may block the calling thread.
    fn call_blocking(&self, name: &str) -> Result<Option<Value>, CallError>;
    /// A problem with what method `name` did that has no caller to go to
    /// (a bad SSH target means "no SSH access"): logged unless the front
    /// end reports such problems its own way.
    fn unreported(&self, name: &str, problem: &str) {
        tracing::warn!(method = name, "{problem}");
    }
}

/// The driver of a machine whose driver object is a [`ForeignObject`].
pub struct ForeignDriver {
    name: String,
    naming: Naming,
    base: BaseDriver,
    /// What is saved when the object has no `save`: its create options.
    own: Map<String, Value>,
    engine_port: u16,
    needs_provisioning: bool,
    /// Whether `save`'s answer is the whole saved object (not merged with `base`).
    save_as_returned: bool,
    object: Box<dyn ForeignObject>,
}

/// What a port must be, in refusals.
const PORT_RULE: &str = "a whole number in 1..=65535";

impl fmt::Debug for ForeignDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignDriver")
            .field("name", &self.name)
            .field("machine", &self.base.machine_name)
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

/// Split a saved `Driver` object into the fields every driver has and the
/// foreign driver's own (its `save` result or its create options).
pub fn split_saved(
    driver: &str,
    saved: &Map<String, Value>,
) -> Result<(BaseDriver, Map<String, Value>), DriverError> {
    BaseDriver::split_driver_object(saved).map_err(|source| DriverError::BadSavedState {
        driver: driver.to_string(),
        source,
    })
}

impl ForeignDriver {
    /// Check `object` against the rules (required methods, the engine port
    /// and "needs provisioning" properties) and wrap it as driver `name` of
    /// the machine described by `base`; `own` is what is saved when the
    /// object has no `save` method.
    pub fn new(
        name: &str,
        naming: Naming,
        base: BaseDriver,
        own: Map<String, Value>,
        object: Box<dyn ForeignObject>,
    ) -> Result<Self, DriverError> {
        let refuse = |operation: &str, message: String| DriverError::Failed {
            driver: name.to_string(),
            operation: operation.to_string(),
            message,
        };
        for m in Member::REQUIRED {
            let method = m.name(naming);
            if !object.has_method(method) {
                return Err(refuse(
                    "make its driver object",
                    format!("the driver object has no method {method}()"),
                ));
            }
        }
        let port_name = Member::EnginePort.name(naming);
        let engine_port = match object
            .property(port_name)
            .map_err(|e| refuse("read its engine port", e.to_string()))?
        {
            None | Some(Value::Null) => DEFAULT_ENGINE_PORT,
            Some(v) => v
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    refuse(
                        "make its driver object",
                        format!("{port_name} {v} is not a port ({PORT_RULE})"),
                    )
                })?,
        };
        let needs_name = Member::NeedsProvisioning.name(naming);
        let needs_provisioning = match object
            .property(needs_name)
            .map_err(|e| refuse("read whether it needs provisioning", e.to_string()))?
        {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => b,
            Some(v) => {
                return Err(refuse(
                    "make its driver object",
                    format!("{needs_name} {v} is not true or false"),
                ))
            }
        };
        Ok(ForeignDriver {
            name: name.to_string(),
            naming,
            base,
            own,
            engine_port,
            needs_provisioning,
            save_as_returned: false,
            object,
        })
    }

    /// Save exactly what `save` returns as the machine's `Driver` object, for
    /// an object that keeps its whole configuration, base fields included (a
    /// driver plugin's `GetConfigRaw`), instead of merging it with the base
    /// fields.
    pub fn saving_as_returned(mut self) -> Self {
        self.save_as_returned = true;
        self
    }

    fn method(&self, m: Member) -> &'static str {
        m.name(self.naming)
    }

    fn failed(&self, m: Member, e: CallError) -> DriverError {
        match e {
            CallError::NotSupported => not_supported(&self.name, self.method(m)),
            CallError::Failed(source) => DriverError::Source {
                driver: self.name.clone(),
                operation: m.operation().to_string(),
                source,
            },
        }
    }

    fn wrong(&self, m: Member, expected: &str, got: &Option<Value>) -> DriverError {
        DriverError::Failed {
            driver: self.name.clone(),
            operation: m.operation().to_string(),
            message: format!(
                "{}() should return {expected}, got {}",
                self.method(m),
                match got {
                    None => "no such method".to_string(),
                    Some(v) => v.to_string(),
                }
            ),
        }
    }

    async fn call(&self, m: Member) -> Result<Option<Value>, DriverError> {
        self.object
            .call(self.method(m))
            .await
            .map_err(|e| self.failed(m, e))
    }

    /// A lifecycle method: a missing one is "not supported".
    async fn lifecycle(&self, m: Member) -> Result<(), DriverError> {
        match self.call(m).await? {
            Some(_) => Ok(()),
            None => Err(not_supported(&self.name, self.method(m))),
        }
    }

    async fn string(&self, m: Member) -> Result<String, DriverError> {
        match self.call(m).await? {
            Some(Value::String(s)) => Ok(s),
            other => Err(self.wrong(m, "a string", &other)),
        }
    }
}

/// An SSH target from what `ssh_target` returned.
fn ssh_target_of(t: &Map<String, Value>) -> Option<SshTarget> {
    let text = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
    Some(SshTarget {
        host: text("host").filter(|h| !h.is_empty())?,
        port: t
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(22),
        user: text("user")
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into()),
        key_path: text("keyPath")
            .or_else(|| text("key_path"))
            .filter(|k| !k.is_empty())
            .map(PathBuf::from),
    })
}

#[async_trait]
impl Driver for ForeignDriver {
    fn driver_name(&self) -> &str {
        &self.name
    }

    async fn create(&mut self) -> Result<(), DriverError> {
        self.call(Member::Create).await.map(drop)
    }

    async fn remove(&mut self) -> Result<(), DriverError> {
        self.call(Member::Remove).await.map(drop)
    }

    async fn state(&self) -> Result<State, DriverError> {
        let s = self.string(Member::State).await?;
        s.parse()
            .map_err(|e: crate::state::ParseStateError| DriverError::Failed {
                driver: self.name.clone(),
                operation: Member::State.operation().to_string(),
                message: e.to_string(),
            })
    }

    async fn ip(&self) -> Result<String, DriverError> {
        self.string(Member::Ip).await
    }

    fn ssh_target(&self) -> Option<SshTarget> {
        // nothing to return an error through: a problem means "no SSH access"
        let method = self.method(Member::SshTarget);
        let problem = match self.object.call_blocking(method) {
            Ok(None | Some(Value::Null)) => return None,
            Ok(Some(Value::Object(t))) => match ssh_target_of(&t) {
                Some(target) => return Some(target),
                None => format!("driver {}: {method}() returned a target without a host", self.name),
            },
            Ok(Some(other)) => format!(
                "driver {}: {method}() must return an SSH target (host, port, user, key path) or nothing, not {other}",
                self.name
            ),
            Err(e) => format!("driver {}: {method}() failed: {e}", self.name),
        };
        self.object.unreported(method, &problem);
        None
    }

    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        let m = Member::Save;
        let own = match self
            .object
            .call_blocking(self.method(m))
            .map_err(|e| self.failed(m, e))?
        {
            None => self.own.clone(),
            Some(Value::Object(own)) => own,
            other => return Err(self.wrong(m, "an object", &other)),
        };
        if self.save_as_returned {
            return Ok(own);
        }
        self.base
            .merge_driver_object(own, &Map::new())
            .map_err(|source| DriverError::BadSavedState {
                driver: self.name.clone(),
                source,
            })
    }

    async fn url(&self) -> Result<String, DriverError> {
        match self.call(Member::Url).await? {
            None => Ok(engine_url(&self.ip().await?, self.engine_port)),
            Some(Value::String(s)) => {
                if s.starts_with("tcp://") && !matches!(parse_tcp_url(&s), Some((_, p)) if p != 0) {
                    return Err(DriverError::Failed {
                        driver: self.name.clone(),
                        operation: Member::Url.operation().to_string(),
                        message: format!(
                            "{}() returned {s}, whose port is not {PORT_RULE}",
                            self.method(Member::Url)
                        ),
                    });
                }
                Ok(s)
            }
            other => Err(self.wrong(Member::Url, "a string", &other)),
        }
    }

    fn engine_port(&self) -> u16 {
        self.engine_port
    }

    fn needs_provisioning(&self) -> bool {
        self.needs_provisioning
    }

    async fn pre_create_check(&self) -> Result<(), DriverError> {
        match self.object.call(self.method(Member::PreCreateCheck)).await {
            Ok(_) => Ok(()),
            Err(CallError::NotSupported) => Ok(()),
            Err(CallError::Failed(e)) => Err(DriverError::PreCreateCheck {
                driver: self.name.clone(),
                reason: e.to_string(),
            }),
        }
    }

    async fn start(&mut self) -> Result<(), DriverError> {
        self.lifecycle(Member::Start).await
    }

    async fn stop(&mut self) -> Result<(), DriverError> {
        self.lifecycle(Member::Stop).await
    }

    async fn restart(&mut self) -> Result<(), DriverError> {
        self.lifecycle(Member::Restart).await
    }

    async fn kill(&mut self) -> Result<(), DriverError> {
        self.lifecycle(Member::Kill).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// A driver object made of canned answers (the rules are what is
    /// tested here; the bindings' suites call real Python and JavaScript).
    #[derive(Debug, Default)]
    struct Canned {
        methods: BTreeMap<&'static str, Result<Value, &'static str>>,
        props: BTreeMap<&'static str, Value>,
        calls: Mutex<Vec<String>>,
    }

    impl Canned {
        fn driver() -> Canned {
            let mut c = Canned::default();
            for m in ["create", "remove"] {
                c.methods.insert(m, Ok(Value::Null));
            }
            c.methods.insert("state", Ok("Running".into()));
            c.methods.insert("ip", Ok("192.0.2.7".into()));
            c
        }
        fn with(mut self, m: &'static str, v: Result<Value, &'static str>) -> Self {
            self.methods.insert(m, v);
            self
        }
        fn without(mut self, m: &'static str) -> Self {
            self.methods.remove(m);
            self
        }
        fn prop(mut self, p: &'static str, v: Value) -> Self {
            self.props.insert(p, v);
            self
        }
    }

    #[async_trait]
    impl ForeignObject for Canned {
        fn has_method(&self, name: &str) -> bool {
            self.methods.contains_key(name)
        }
        fn property(&self, name: &str) -> Result<Option<Value>, CallError> {
            Ok(self.props.get(name).cloned())
        }
        async fn call(&self, name: &str) -> Result<Option<Value>, CallError> {
            self.call_blocking(name)
        }
        fn call_blocking(&self, name: &str) -> Result<Option<Value>, CallError> {
            self.calls.lock().expect("lock").push(name.to_string());
            match self.methods.get(name) {
                None => Ok(None),
                Some(Ok(v)) => Ok(Some(v.clone())),
                Some(Err("not supported")) => Err(CallError::NotSupported),
                Some(Err(m)) => Err(CallError::message(*m)),
            }
        }
    }

    fn make(naming: Naming, c: Canned) -> Result<ForeignDriver, DriverError> {
        let base = BaseDriver {
            machine_name: "m1".into(),
            ..BaseDriver::default()
        };
        let mut own = Map::new();
        own.insert("given".into(), "x".into());
        ForeignDriver::new("canned", naming, base, own, Box::new(c))
    }

    const NAMINGS: [Naming; 3] = [Naming::Snake, Naming::Camel, Naming::Rpc];

    impl Canned {
        /// A complete driver object with member names in `naming`.
        fn named(naming: Naming) -> Canned {
            let mut c = Canned::default();
            for m in [Member::Create, Member::Remove] {
                c.methods.insert(m.name(naming), Ok(Value::Null));
            }
            c.methods
                .insert(Member::State.name(naming), Ok("Running".into()));
            c.methods
                .insert(Member::Ip.name(naming), Ok("192.0.2.7".into()));
            c
        }
    }

    #[test]
    fn required_methods_are_checked_when_made_in_every_naming() {
        for naming in NAMINGS {
            for m in Member::REQUIRED {
                let name = m.name(naming);
                let e = make(naming, Canned::named(naming).without(name)).expect_err(name);
                assert!(
                    e.to_string().contains(&format!("no method {name}()")),
                    "{e}"
                );
            }
            make(naming, Canned::named(naming)).expect("complete");
        }
    }

    #[test]
    fn rpc_names_are_the_plugin_protocols() {
        let names: Vec<&str> = Member::ALL.iter().map(|m| m.name(Naming::Rpc)).collect();
        assert_eq!(
            names,
            [
                "Create",
                "Remove",
                "GetState",
                "GetIP",
                "GetURL",
                "GetSSHHostname",
                "GetConfigRaw",
                "PreCreateCheck",
                "Start",
                "Stop",
                "Restart",
                "Kill",
                "EnginePort",
                "NeedsProvisioning"
            ]
        );
        // each naming spells every member differently
        for naming in NAMINGS {
            let set: std::collections::BTreeSet<&str> =
                Member::ALL.iter().map(|m| m.name(naming)).collect();
            assert_eq!(set.len(), Member::ALL.len(), "{naming:?}");
        }
    }

    #[test]
    fn engine_port_and_needs_provisioning_are_checked_in_every_naming() {
        for naming in NAMINGS {
            let port = Member::EnginePort.name(naming);
            let needs = Member::NeedsProvisioning.name(naming);
            let d = make(naming, Canned::named(naming)).expect("defaults");
            assert_eq!(d.engine_port(), 2376);
            assert!(d.needs_provisioning());
            let d = make(
                naming,
                Canned::named(naming)
                    .prop(port, 2377.into())
                    .prop(needs, false.into()),
            )
            .expect("given");
            assert_eq!(d.engine_port(), 2377);
            assert!(!d.needs_provisioning());
            for bad in [
                Value::from(0),
                70000.into(),
                "2376".into(),
                (-1).into(),
                2376.5.into(),
            ] {
                let e =
                    make(naming, Canned::named(naming).prop(port, bad.clone())).expect_err("port");
                assert_eq!(
                    e.to_string(),
                    format!(
                        "driver canned failed to make its driver object: \
                         {port} {bad} is not a port (a whole number in 1..=65535)"
                    ),
                );
            }
            let e =
                make(naming, Canned::named(naming).prop(needs, "yes".into())).expect_err("bool");
            assert!(e.to_string().contains(needs), "{e}");
        }
    }

    #[tokio::test]
    async fn a_url_with_a_bad_port_is_refused_in_every_naming() {
        for naming in NAMINGS {
            let url = Member::Url.name(naming);
            for bad in [
                "tcp://192.0.2.7:70000",
                "tcp://192.0.2.7:0",
                "tcp://192.0.2.7:-1",
                "tcp://192.0.2.7",
            ] {
                let d =
                    make(naming, Canned::named(naming).with(url, Ok(bad.into()))).expect("made");
                let e = d.url().await.expect_err(bad);
                assert_eq!(
                    e.to_string(),
                    format!(
                        "driver canned failed to get the Docker URL: \
                         {url}() returned {bad}, whose port is not a whole number in 1..=65535"
                    ),
                );
            }
            for good in ["tcp://192.0.2.7:2377", "tcp://[2001:db8::1]:1", ""] {
                let d =
                    make(naming, Canned::named(naming).with(url, Ok(good.into()))).expect("made");
                assert_eq!(d.url().await.expect(good), good);
            }
        }
    }

    #[test]
    fn saved_state_merged_or_as_returned() {
        let own = serde_json::json!({"MachineName": "m1", "Own": 1, "EnginePort": 2377});
        let c = || Canned::named(Naming::Rpc).with(Member::Save.name(Naming::Rpc), Ok(own.clone()));
        let merged = make(Naming::Rpc, c())
            .expect("made")
            .saved_state()
            .expect("saved");
        assert_eq!(merged["Own"], 1);
        assert!(merged.contains_key("StorePath"), "{merged:?}");
        let raw = make(Naming::Rpc, c())
            .expect("made")
            .saving_as_returned()
            .saved_state()
            .expect("saved");
        assert_eq!(Value::Object(raw), own);
    }

    #[tokio::test]
    async fn answers_convert_and_defaults_apply() {
        let mut d = make(Naming::Camel, Canned::driver()).expect("driver");
        assert_eq!(d.state().await.expect("state"), State::Running);
        assert_eq!(d.url().await.expect("url"), "tcp://192.0.2.7:2376");
        d.pre_create_check().await.expect("missing check passes");
        let e = d.start().await.expect_err("no start");
        assert!(matches!(e, DriverError::NotSupported { .. }), "{e}");
        assert!(d.ssh_target().is_none());
        let saved = d.saved_state().expect("save");
        assert_eq!(saved["given"], "x");
        assert_eq!(saved["MachineName"], "m1");
        d.create().await.expect("create");

        let d = make(
            Naming::Camel,
            Canned::driver()
                .with("state", Ok("Sleeping".into()))
                .with("ip", Ok(7.into()))
                .with("url", Ok("tcp://[2001:db8::1]:2376".into()))
                .with("preCreateCheck", Err("quota exceeded"))
                .with("stop", Err("not supported"))
                .with(
                    "sshTarget",
                    Ok(serde_json::json!({"host": "192.0.2.7", "port": 2222, "keyPath": "/k"})),
                )
                .with("save", Ok(serde_json::json!({"Own": 1}))),
        )
        .expect("driver");
        assert!(d.state().await.is_err());
        let e = d.ip().await.expect_err("not a string");
        assert!(e.to_string().contains("ip() should return a string"), "{e}");
        assert_eq!(d.url().await.expect("url"), "tcp://[2001:db8::1]:2376");
        let e = d.pre_create_check().await.expect_err("check");
        assert!(
            matches!(&e, DriverError::PreCreateCheck { reason, .. } if reason == "quota exceeded"),
            "{e}"
        );
        let t = d.ssh_target().expect("target");
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("192.0.2.7", 2222, "root")
        );
        assert_eq!(t.key_path, Some(PathBuf::from("/k")));
        assert_eq!(d.saved_state().expect("save")["Own"], 1);
        let mut d = d;
        let e = d.stop().await.expect_err("stop");
        assert!(matches!(e, DriverError::NotSupported { .. }), "{e}");
    }

    #[tokio::test]
    async fn failures_carry_the_objects_message() {
        let mut d = make(
            Naming::Snake,
            Canned::driver()
                .with("create", Err("out of capacity"))
                .with("save", Ok("not an object".into())),
        )
        .expect("driver");
        let e = d.create().await.expect_err("create");
        assert!(
            matches!(&e, DriverError::Source { source, operation, .. }
                if source.to_string() == "out of capacity" && operation == "create the machine"),
            "{e}"
        );
        let e = d.saved_state().expect_err("save");
        assert!(
            e.to_string().contains("save() should return an object"),
            "{e}"
        );
    }
}
