//! Drivers written in JavaScript (core `driver::DriverFactory` and `driver::Driver`).
//!
//! `store.registerDriver(name, factory, options?)` wraps a factory, usually the
//! driver class, in a [`JsDriverClass`]. The factory is called as
//! `new factory(context, options)` (or `factory(context, options)` when it is
//! not a class) with the resolved create options keyed by flag name, and for a
//! machine loaded from the store with what the driver's `save()` returned
//! (default: the create options), as in the Python bindings. It may return the
//! driver object or a Promise of it. Each machine gets the core's
//! `ForeignDriver` (the rules every foreign driver follows, Python drivers
//! and driver plugins included) over a
//! [`JsObject`], whose calls run the object's methods and wait for the
//! promises they return.
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
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, OptionKind,
};
use machine_core::foreign::{self, CallError, ForeignDriver, ForeignObject, Naming};
use machine_core::host::HostError;
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
                    let what = format!("the object made by driver {name}");
                    as_object(env, value, &what)?.create_ref::<false>()
                })
            }))
            .and_then(|r| r)
            .map_err(|message| DriverError::Failed {
                driver: self.name.clone(),
                operation: "make its driver object".into(),
                message,
            })?;
        let object = JsObject {
            instance: Arc::new(Instance {
                obj: Mutex::new(Some(made)),
                js: self.js.clone(),
            }),
        };
        let driver = ForeignDriver::new(&self.name, Naming::Camel, base, own, Box::new(object))?;
        Ok(Box::new(driver))
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
        let (base, own) = foreign::split_saved(&self.name, saved)?;
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

/// A driver object implemented in JavaScript, called by the core's
/// [`ForeignDriver`] (which holds the rules for every foreign driver).
struct JsObject {
    instance: Arc<Instance>,
}

impl fmt::Debug for JsObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsObject").finish_non_exhaustive()
    }
}

impl JsObject {
    /// Run `job` with the instance on the JavaScript thread.
    async fn with<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Env, Object<'_>, Answer<T>) -> napi::Result<()> + Send + 'static,
    ) -> Result<T, String> {
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
                job(env, obj, answer)
            })
            .await
    }

    fn now<T>(&self, fut: impl Future<Output = Result<T, String>>) -> Result<T, CallError> {
        self.instance
            .js
            .wait(fut)
            .and_then(|r| r)
            .map_err(CallError::message)
    }
}

#[async_trait::async_trait]
impl ForeignObject for JsObject {
    fn has_method(&self, name: &str) -> bool {
        let name = name.to_string();
        self.now(self.with(move |_, obj, answer| {
            let f: Unknown = obj.get_named_property(&name)?;
            answer.send(Ok(f.get_type()? == ValueType::Function));
            Ok(())
        }))
        .unwrap_or(false)
    }

    fn property(&self, name: &str) -> Result<Option<Value>, CallError> {
        let name = name.to_string();
        self.now(self.with(move |env, obj, answer| {
            let v: Unknown = obj.get_named_property(&name)?;
            let v = match v.get_type()? {
                ValueType::Undefined => None,
                _ => Some(to_json(env, v)?),
            };
            answer.send(Ok(v));
            Ok(())
        }))
    }

    /// Call the method and wait for its value, settling a promise.
    async fn call(&self, name: &str) -> Result<Option<Value>, CallError> {
        let name = name.to_string();
        self.with(move |env, obj, answer| {
            let f: Unknown = obj.get_named_property(&name)?;
            if f.get_type()? != ValueType::Function {
                answer.send(Ok(None));
                return Ok(());
            }
            let result = apply(env, f, obj.to_unknown(), Vec::new())?;
            settle(env, result, answer, |env, v| to_json(env, v).map(Some))
        })
        .await
        .map_err(CallError::message)
    }

    fn call_blocking(&self, name: &str) -> Result<Option<Value>, CallError> {
        self.instance
            .js
            .wait(self.call(name))
            .map_err(CallError::message)?
    }
}
