//! Core errors as JavaScript `Error` objects, and the bridge that runs a core
//! call on the runtime and settles a Promise with its outcome.
//!
//! Every rejection is an `Error` whose `message` holds the whole cause chain,
//! whose `code` is [`HostError::code`] (`NotFound`, `InvalidOption`, `Ssh`, ...:
//! the same codes the Python exception classes are named after) and whose
//! `machine` is the machine's name when the error is about one.

use machine_core::host::{error_chain, HostError};
use napi::bindgen_prelude::{JsObjectValue, JsValue, PromiseRaw, ToNapiValue};
use napi::{Env, Status};
use std::future::Future;

/// What a binding's core call ends with.
pub(crate) type Outcome<T> = Result<T, HostError>;

/// Every code a rejection can carry in `error.code` (the core's list).
#[napi_derive::napi]
// registered with Node by the macro; a test build has no caller
#[cfg_attr(test, allow(dead_code))]
pub fn error_codes() -> Vec<String> {
    machine_core::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// The JavaScript error for `e`, carrying `code` and `machine`.
pub(crate) fn to_js(env: &Env, e: &HostError) -> napi::Error {
    let message = error_chain(e);
    let built = (|| -> napi::Result<napi::Error> {
        let mut obj =
            env.create_error(napi::Error::new(Status::GenericFailure, message.clone()))?;
        obj.set_named_property("code", e.code().as_str())?;
        if let Some(machine) = e.machine() {
            obj.set_named_property("machine", machine)?;
        }
        Ok(napi::Error::from(obj.to_unknown()))
    })();
    // Building the object only fails while the environment shuts down; the
    // plain error still carries the code.
    built.unwrap_or_else(|_| {
        napi::Error::new(
            Status::GenericFailure,
            format!("{}: {message}", e.code().as_str()),
        )
    })
}

/// A bad argument, as the core reports bad options.
pub(crate) fn invalid(flag: &str, value: &str, reason: impl Into<String>) -> HostError {
    HostError::InvalidOption {
        flag: flag.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Run `call` on the async runtime and return a Promise that resolves with
/// `to_value` of its result (converted on the JavaScript thread) or rejects
/// with [`to_js`] of its error.
pub(crate) fn promise<'env, T, V, F, C>(
    env: &'env Env,
    call: F,
    to_value: C,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = Outcome<T>> + Send + 'static,
    C: FnOnce(&Env, T) -> napi::Result<V> + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(call.await) },
        move |env, outcome| match outcome {
            Ok(value) => to_value(env, value),
            Err(e) => Err(to_js(env, &e)),
        },
    )
}

/// For [`promise`]: hand the result to JavaScript as it is.
pub(crate) fn as_is<T>(_: &Env, value: T) -> napi::Result<T> {
    Ok(value)
}
