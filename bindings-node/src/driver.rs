//! Drivers written in JavaScript (core `driver::DriverFactory` and `driver::Driver`).
//!
//! `store.registerDriver(name, factory, options?)` wraps a factory, usually the
//! driver class, in a [`JsDriverClass`]. The factory is called as
//! `new factory(context, options)` (or `factory(context, options)` when it is
//! not a class) with the resolved create options keyed by flag name, and for a
//! machine loaded from the store with what the driver's `save()` returned
//! (default: the create options), as in the Python bindings. It may return the
//! driver object or a Promise of it. Each machine gets a [`JsDriver`] whose
//! methods call the object's methods and wait for the promises they return.
//!
//! JavaScript runs on the main thread only, so every call is queued to it as a
//! job through one threadsafe function ([`JsThread`]) and the answer comes back
//! over a channel. The core calls a few driver methods synchronously (building
//! a driver, its SSH target, its saved state); those wait for the answer with
//! `block_in_place`. That is safe because the bindings run every core call as
//! a task of the multi-threaded runtime, never on the main thread, which stays
//! free to run the job.

use crate::error::invalid;
use machine_core::config::BaseDriver;
use machine_core::driver::{
    engine_url, Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions,
    OptionKind, SshTarget,
};
use machine_core::host::HostError;
use machine_core::State;
use napi::bindgen_prelude::{
    CallbackContext, Either3, FnArgs, Function, FunctionRef, JsObjectValue, JsValue, Object,
    ObjectRef, PromiseRaw, ToNapiValue, Unknown,
};
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use napi::{Env, Status, ValueType};
use napi_derive::napi;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use tokio::sync::oneshot;

/// One create option a JavaScript driver declares (`static options = [...]`).
#[napi(object, js_name = "DriverOptionSpec")]
#[derive(Debug)]
pub struct JsDriverOptionSpec {
    /// Flag name without dashes, e.g. `inventory-file`.
    pub flag: String,
    /// `string` (default), `int`, `bool` or `stringList`.
    #[napi(ts_type = "'string' | 'int' | 'bool' | 'stringList'")]
    pub kind: Option<String>,
    /// Value used when the option is not given.
    pub default: Option<Either3<String, i64, bool>>,
    /// Environment variable read when the option is not given.
    pub env_var: Option<String>,
    pub help: Option<String>,
    /// Creation fails with code `InvalidOption` when no value is found.
    pub required: Option<bool>,
}

/// The engine and TLS options `create()` takes in `engine`, keyed by their
/// CLI flag names (the core's list, as `machine create --help` shows).
#[napi]
// registered with Node by the macro; a test build has no caller
#[cfg_attr(test, allow(dead_code))]
pub fn engine_options() -> Vec<JsDriverOptionSpec> {
    specs(machine_core::host::engine_options())
}

/// The Swarm-mode flags `create()` takes in `swarm`, keyed by CLI flag name
/// (`swarm`, `swarm-master`, `swarm-discovery`, ...).
#[napi]
// registered with Node by the macro; a test build has no caller
#[cfg_attr(test, allow(dead_code))]
pub fn swarm_options() -> Vec<JsDriverOptionSpec> {
    specs(machine_core::swarm::swarm_options())
}

fn specs(options: Vec<machine_core::driver::DriverOption>) -> Vec<JsDriverOptionSpec> {
    options
        .into_iter()
        .map(|o| JsDriverOptionSpec {
            kind: Some(
                match o.kind {
                    OptionKind::String => "string",
                    OptionKind::Int => "int",
                    OptionKind::Bool => "bool",
                    OptionKind::StringList => "stringList",
                }
                .to_string(),
            ),
            default: o.default.clone().map(Either3::A),
            env_var: o.env_var.clone(),
            help: Some(o.help.clone()),
            required: Some(o.required),
            flag: o.flag,
        })
        .collect()
}

impl JsDriverOptionSpec {
    fn to_core(&self, driver: &str) -> Result<DriverOption, HostError> {
        let kind = match self.kind.as_deref().unwrap_or("string") {
            "string" => OptionKind::String,
            "int" => OptionKind::Int,
            "bool" => OptionKind::Bool,
            "stringList" => OptionKind::StringList,
            other => {
                return Err(invalid(
                    &self.flag,
                    other,
                    format!("driver {driver}: kind must be string, int, bool or stringList"),
                ))
            }
        };
        let mut o = DriverOption::new(
            self.flag.trim_start_matches('-'),
            kind,
            self.help.as_deref().unwrap_or(""),
        );
        o.default = self.default.as_ref().map(|d| match d {
            Either3::A(s) => s.clone(),
            Either3::B(i) => i.to_string(),
            Either3::C(b) => b.to_string(),
        });
        o.env_var = self.env_var.clone();
        o.required = self.required.unwrap_or(false);
        Ok(o)
    }
}

type Job = Box<dyn FnOnce(Env) + Send>;

/// Runs jobs on the JavaScript thread, from any thread.
#[derive(Clone)]
pub(crate) struct JsThread {
    tsfn: Arc<ThreadsafeFunction<Job, (), (), Status, false, true>>,
    thread: ThreadId,
}

impl fmt::Debug for JsThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsThread")
            .field("thread", &self.thread)
            .finish()
    }
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// Where a job sends its answer; it may answer later, from a promise callback.
struct Answer<T>(Rc<Cell<Option<Reply<T>>>>);

impl<T> Clone for Answer<T> {
    fn clone(&self) -> Self {
        Answer(self.0.clone())
    }
}

impl<T> Answer<T> {
    fn send(&self, r: Result<T, String>) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(r);
        }
    }
}

impl JsThread {
    /// Must be called on the JavaScript thread. Weak: it does not keep Node running.
    pub(crate) fn new(env: &Env) -> napi::Result<Self> {
        let noop =
            env.create_function_from_closure::<(), (), _>("runMachineDriverJob", |_| Ok(()))?;
        let tsfn = noop
            .build_threadsafe_function::<Job>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(|ctx: ThreadsafeCallContext<Job>| {
                (ctx.value)(ctx.env);
                Ok(())
            })?;
        Ok(JsThread {
            tsfn: Arc::new(tsfn),
            thread: std::thread::current().id(),
        })
    }

    /// Run `job` on the JavaScript thread and wait for its answer. An error the
    /// job returns is its answer too.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Env, Answer<T>) -> napi::Result<()> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        let status = self.tsfn.call(
            Box::new(move |env: Env| {
                let answer = Answer(Rc::new(Cell::new(Some(tx))));
                if let Err(e) = outcome(&env, job(&env, answer.clone())) {
                    answer.send(Err(e));
                }
            }),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
        if status != Status::Ok {
            return Err(format!("JavaScript cannot be called ({status})"));
        }
        rx.await
            .map_err(|_| "the JavaScript call ended without an answer".to_string())?
    }

    /// Run `fut` (which waits on JavaScript) to completion from a synchronous core call.
    fn wait<F: Future>(&self, fut: F) -> Result<F::Output, String> {
        if std::thread::current().id() == self.thread {
            return Err(
                "a JavaScript driver cannot be called synchronously from JavaScript".into(),
            );
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            "a JavaScript driver can only be called from the bindings' runtime".to_string()
        })?;
        Ok(tokio::task::block_in_place(move || handle.block_on(fut)))
    }
}

/// Take back an exception that a failed step (a throwing getter, say) left
/// pending, so that it does not reach Node as an uncaught exception once the
/// job returns; its message, when there was one.
#[allow(unsafe_code)]
fn take_exception(env: &Env) -> Option<String> {
    let mut pending = false;
    let mut exception = std::ptr::null_mut();
    // SAFETY: `env` is the environment of the JavaScript thread this job runs
    // on, valid for the whole job, and `exception` is the value Node-API just
    // handed out in that environment.
    unsafe {
        if napi::sys::napi_is_exception_pending(env.raw(), &mut pending)
            != napi::sys::Status::napi_ok
            || !pending
            || napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut exception)
                != napi::sys::Status::napi_ok
            || exception.is_null()
        {
            return None;
        }
        Some(js_message(Unknown::from_raw_unchecked(
            env.raw(),
            exception,
        )))
    }
}

/// The answer for the outcome of a step run on the JavaScript thread.
fn outcome<T>(env: &Env, r: napi::Result<T>) -> Result<T, String> {
    r.map_err(|e| take_exception(env).unwrap_or(e.reason))
}

/// Call `f` with `this` bound to `this` and `args` as its arguments.
fn apply<'env>(
    env: &'env Env,
    f: Unknown<'env>,
    this: Unknown<'env>,
    args: Vec<Value>,
) -> napi::Result<Unknown<'env>> {
    let reflect: Object = env.get_global()?.get_named_property("Reflect")?;
    let apply: Function<FnArgs<(Unknown, Unknown, Value)>, Unknown> =
        reflect.get_named_property("apply")?;
    apply.call(FnArgs::from((f, this, Value::Array(args))))
}

/// `new class(...args)`.
fn construct<'env>(
    env: &'env Env,
    class: Unknown<'env>,
    args: Vec<Value>,
) -> napi::Result<Unknown<'env>> {
    let reflect: Object = env.get_global()?.get_named_property("Reflect")?;
    let construct: Function<FnArgs<(Unknown, Value)>, Unknown> =
        reflect.get_named_property("construct")?;
    construct.call(FnArgs::from((class, Value::Array(args))))
}

/// The message of something JavaScript threw or rejected with.
fn js_message(value: Unknown<'_>) -> String {
    napi::Error::from_unknown_without_coercion(value).reason
}

fn as_object<'env>(env: &'env Env, value: Unknown<'env>, what: &str) -> napi::Result<Object<'env>> {
    match value.get_type()? {
        ValueType::Object | ValueType::Function => Ok(Object::from_raw(env.raw(), value.raw())),
        other => Err(napi::Error::new(
            Status::InvalidArg,
            format!("{what} must be an object, not {other}"),
        )),
    }
}

/// Answer with `convert(value)`, once `value` settles if it is a promise.
fn settle<T: 'static>(
    env: &Env,
    value: Unknown<'_>,
    answer: Answer<T>,
    convert: impl FnOnce(&Env, Unknown<'_>) -> napi::Result<T> + 'static,
) -> napi::Result<()> {
    if !value.is_promise()? {
        answer.send(outcome(env, convert(env, value)));
        return Ok(());
    }
    let fulfilled = answer.clone();
    PromiseRaw::<Unknown>::new(env.raw(), value.raw())
        .then(move |ctx: CallbackContext<Unknown>| {
            fulfilled.send(outcome(&ctx.env, convert(&ctx.env, ctx.value)));
            Ok(())
        })?
        .catch(move |ctx: CallbackContext<Unknown>| {
            answer.send(Err(js_message(ctx.value)));
            Ok(())
        })?;
    Ok(())
}

/// A JavaScript value as JSON (`undefined` becomes `null`).
fn to_json(env: &Env, value: Unknown<'_>) -> napi::Result<Value> {
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(Value::Null),
        _ => env.from_js_value(value),
    }
}

/// A driver instance living on the JavaScript side, with the properties read when it was made.
struct Made {
    obj: ObjectRef<false>,
    engine_port: Option<u16>,
    needs_provisioning: bool,
}

/// Methods every driver object must have.
const REQUIRED: [&str; 4] = ["create", "remove", "state", "ip"];

/// Keep `value` (a driver object) and read its `enginePort` and `needsProvisioning`.
fn adopt(env: &Env, value: Unknown<'_>, driver: &str) -> napi::Result<Made> {
    let obj = as_object(env, value, &format!("the object made by driver {driver}"))?;
    for method in REQUIRED {
        let f: Unknown = obj.get_named_property(method)?;
        if f.get_type()? != ValueType::Function {
            return Err(napi::Error::new(
                Status::InvalidArg,
                format!("the driver object has no method {method}()"),
            ));
        }
    }
    let engine_port: Option<u32> = obj.get_named_property("enginePort")?;
    let needs: Option<bool> = obj.get_named_property("needsProvisioning")?;
    let engine_port = match engine_port {
        None => None,
        Some(p) => Some(u16::try_from(p).ok().filter(|p| *p != 0).ok_or_else(|| {
            napi::Error::new(Status::InvalidArg, format!("enginePort {p} is not a port"))
        })?),
    };
    Ok(Made {
        obj: obj.create_ref::<false>()?,
        engine_port,
        needs_provisioning: needs.unwrap_or(true),
    })
}

/// A driver written in JavaScript, registered with a store.
pub(crate) struct JsDriverClass {
    name: String,
    options: Vec<DriverOption>,
    factory: Arc<FunctionRef<(), ()>>,
    js: JsThread,
}

impl fmt::Debug for JsDriverClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsDriverClass")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl JsDriverClass {
    /// Keep `factory` and its option declarations: `options`, else the
    /// factory's `options` property (on the JavaScript thread).
    pub(crate) fn new(
        name: &str,
        factory: Function<'_, (), ()>,
        options: Option<Vec<JsDriverOptionSpec>>,
        js: JsThread,
    ) -> Result<Self, HostError> {
        let bad = |reason: String| invalid("driver", name, reason);
        if name.is_empty() {
            return Err(bad("a driver needs a name".into()));
        }
        let kind = factory.to_unknown().get_type().map_err(|e| bad(e.reason))?;
        if kind != ValueType::Function {
            return Err(bad(format!(
                "expected a driver class or factory function, not {kind}"
            )));
        }
        let specs = match options {
            Some(specs) => specs,
            None => factory
                .get_named_property::<Option<Vec<JsDriverOptionSpec>>>("options")
                .map_err(|e| bad(format!("options: {}", e.reason)))?
                .unwrap_or_default(),
        };
        let options = specs
            .iter()
            .map(|s| s.to_core(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JsDriverClass {
            name: name.to_string(),
            options,
            factory: Arc::new(factory.create_ref().map_err(|e| bad(e.reason))?),
            js,
        })
    }

    /// Call the factory with `own` (create options or saved state) and wrap the driver object.
    fn make(
        &self,
        ctx: &DriverContext,
        base: BaseDriver,
        own: Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let args = vec![context_json(ctx), Value::Object(own.clone())];
        let (factory, name) = (self.factory.clone(), self.name.clone());
        let made = self
            .js
            .wait(self.js.run(move |env, answer| {
                let f = factory.borrow_back(env)?.to_unknown();
                let obj = as_object(env, f, "the factory")?;
                let proto: Unknown = obj.get_named_property("prototype")?;
                let result = if proto.get_type()? == ValueType::Object {
                    construct(env, f, args)?
                } else {
                    apply(env, f, ToNapiValue::into_unknown((), env)?, args)?
                };
                settle(env, result, answer, move |env, value| {
                    adopt(env, value, &name)
                })
            }))
            .and_then(|r| r)
            .map_err(|message| DriverError::Failed {
                driver: self.name.clone(),
                operation: "make its driver object".into(),
                message,
            })?;
        Ok(Box::new(JsDriver {
            name: self.name.clone(),
            base,
            own,
            engine_port: made.engine_port,
            needs_provisioning: made.needs_provisioning,
            instance: Arc::new(Instance {
                obj: Mutex::new(Some(made.obj)),
                js: self.js.clone(),
            }),
        }))
    }
}

fn context_json(ctx: &DriverContext) -> Value {
    serde_json::json!({
        "machineName": ctx.machine_name,
        "storePath": ctx.store_root.to_string_lossy(),
        "machineDir": ctx.machine_dir.to_string_lossy(),
    })
}

impl DriverFactory for JsDriverClass {
    fn name(&self) -> &str {
        &self.name
    }

    fn options(&self) -> Vec<DriverOption> {
        self.options.clone()
    }

    fn new_driver(
        &self,
        ctx: &DriverContext,
        options: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let own = options.to_json_map();
        self.make(ctx, ctx.base(), own)
    }

    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        let (base, own) = BaseDriver::split_driver_object(saved).map_err(|source| {
            DriverError::BadSavedState {
                driver: self.name.clone(),
                source,
            }
        })?;
        self.make(ctx, base, own)
    }
}

/// The JavaScript instance behind a [`JsDriver`]; released on the JavaScript thread.
struct Instance {
    obj: Mutex<Option<ObjectRef<false>>>,
    js: JsThread,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let obj = self.obj.get_mut().ok().and_then(Option::take);
        if let Some(obj) = obj {
            // When Node is exiting the call fails and the reference goes with the environment.
            let _ = self.js.tsfn.call(
                Box::new(move |env: Env| {
                    let _ = obj.unref(&env);
                }),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        }
    }
}

/// A machine's driver implemented by a JavaScript object.
pub(crate) struct JsDriver {
    name: String,
    base: BaseDriver,
    /// What is saved when the object has no `save()`: its create options.
    own: Map<String, Value>,
    engine_port: Option<u16>,
    needs_provisioning: bool,
    instance: Arc<Instance>,
}

impl fmt::Debug for JsDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsDriver")
            .field("name", &self.name)
            .field("machine", &self.base.machine_name)
            .finish_non_exhaustive()
    }
}

impl JsDriver {
    /// Call `method()` on the instance and wait for its value; `None` when the
    /// instance has no such method.
    async fn call(&self, method: &'static str) -> Result<Option<Value>, DriverError> {
        let instance = self.instance.clone();
        self.instance
            .js
            .run(move |env, answer| {
                let guard = instance
                    .obj
                    .lock()
                    .map_err(|_| napi::Error::from_reason("driver instance lock poisoned"))?;
                let obj = guard
                    .as_ref()
                    .ok_or_else(|| napi::Error::from_reason("the driver instance was released"))?
                    .get_value(env)?;
                let f: Unknown = obj.get_named_property(method)?;
                if f.get_type()? != ValueType::Function {
                    answer.send(Ok(None));
                    return Ok(());
                }
                let result = apply(env, f, obj.to_unknown(), Vec::new())?;
                settle(env, result, answer, |env, v| to_json(env, v).map(Some))
            })
            .await
            .map_err(|message| self.failed(method, message))
    }

    /// [`call`](Self::call) from a synchronous core method.
    fn call_now(&self, method: &'static str) -> Result<Option<Value>, DriverError> {
        self.instance
            .js
            .wait(self.call(method))
            .map_err(|message| self.failed(method, message))?
    }

    /// Call a lifecycle method; a missing one is "not supported".
    async fn lifecycle(&self, method: &'static str) -> Result<(), DriverError> {
        match self.call(method).await? {
            Some(_) => Ok(()),
            None => Err(machine_core::driver::not_supported(&self.name, method)),
        }
    }

    async fn string(&self, method: &'static str) -> Result<String, DriverError> {
        match self.call(method).await? {
            Some(Value::String(s)) => Ok(s),
            other => Err(self.failed(method, format!("expected a string, got {}", show(&other)))),
        }
    }

    fn failed(&self, operation: &str, message: String) -> DriverError {
        DriverError::Failed {
            driver: self.name.clone(),
            operation: operation.to_string(),
            message,
        }
    }
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "no such method".into(),
        Some(v) => v.to_string(),
    }
}

#[async_trait::async_trait]
impl Driver for JsDriver {
    fn driver_name(&self) -> &str {
        &self.name
    }

    async fn create(&mut self) -> Result<(), DriverError> {
        self.call("create").await.map(drop)
    }

    async fn remove(&mut self) -> Result<(), DriverError> {
        self.call("remove").await.map(drop)
    }

    async fn state(&self) -> Result<State, DriverError> {
        let s = self.string("state").await?;
        s.parse()
            .map_err(|e: machine_core::state::ParseStateError| self.failed("state", e.to_string()))
    }

    async fn ip(&self) -> Result<String, DriverError> {
        self.string("ip").await
    }

    fn ssh_target(&self) -> Option<SshTarget> {
        let target = match self.call_now("sshTarget") {
            Ok(Some(Value::Object(t))) => t,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(driver = %self.name, error = %e, "sshTarget() failed");
                return None;
            }
        };
        let text = |k: &str| target.get(k).and_then(Value::as_str).map(str::to_string);
        Some(SshTarget {
            host: text("host")?,
            port: target
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(22),
            user: text("user").unwrap_or_else(|| "root".into()),
            key_path: text("keyPath").filter(|k| !k.is_empty()).map(PathBuf::from),
        })
    }

    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        let own = match self.call_now("save")? {
            None => self.own.clone(),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(self.failed("save", format!("expected an object, got {other}")))
            }
        };
        self.base
            .merge_driver_object(own, &Map::new())
            .map_err(|source| DriverError::BadSavedState {
                driver: self.name.clone(),
                source,
            })
    }

    async fn url(&self) -> Result<String, DriverError> {
        match self.call("url").await? {
            None => Ok(engine_url(&self.ip().await?, self.engine_port())),
            Some(Value::String(s)) => Ok(s),
            other => Err(self.failed("url", format!("expected a string, got {}", show(&other)))),
        }
    }

    fn engine_port(&self) -> u16 {
        self.engine_port
            .unwrap_or(machine_core::config::DEFAULT_ENGINE_PORT)
    }

    fn needs_provisioning(&self) -> bool {
        self.needs_provisioning
    }

    async fn pre_create_check(&self) -> Result<(), DriverError> {
        match self.call("preCreateCheck").await {
            Ok(_) => Ok(()),
            Err(DriverError::Failed { message, .. }) => Err(DriverError::PreCreateCheck {
                driver: self.name.clone(),
                reason: message,
            }),
            Err(e) => Err(e),
        }
    }

    async fn start(&mut self) -> Result<(), DriverError> {
        self.lifecycle("start").await
    }

    async fn stop(&mut self) -> Result<(), DriverError> {
        self.lifecycle("stop").await
    }

    async fn restart(&mut self) -> Result<(), DriverError> {
        self.lifecycle("restart").await
    }

    async fn kill(&mut self) -> Result<(), DriverError> {
        self.lifecycle("kill").await
    }
}
