//! `--format` templates: any template text parses or is refused, and any
//! that parses renders or fails, without a crash.
#![no_main]
use libfuzzer_sys::fuzz_target;
use machine_cli::gotemplate::{from_json, GoTemplate};

fuzz_target!(|text: &str| {
    if let Ok(t) = GoTemplate::parse(text) {
        let data = from_json(&serde_json::json!({
            "Name": "m1", "State": "Running", "URL": "tcp://10.0.0.1:2376",
            "Error": "%d %s {{", "DockerVersion": "v24", "List": [1, 2, 3],
            "Map": {"a": {"b": null}}
        }));
        let _ = t.render(&data);
    }
});
