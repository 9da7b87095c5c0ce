//! A daemon's answer to `GET /version` (HTTP head, chunked body, JSON):
//! parsed or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = machine_core::engine::parse_version_response(data);
});
