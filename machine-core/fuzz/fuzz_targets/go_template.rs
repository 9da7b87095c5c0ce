//! `--format` templates: any template text parses or is refused, and any
//! that parses renders or fails, without a crash.
#![no_main]
use libfuzzer_sys::fuzz_target;
use machine_cli::gotemplate::{from_json, GoTemplate};

fuzz_target!(|text: &str| {
    // The CLI turns a panic inside the template library into an error
    // (catch_unwind); libFuzzer's hook would abort first, so it is silenced
    // here: a panic the CLI does not catch still ends the run.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    if let Ok(t) = GoTemplate::parse(text) {
        let data = from_json(&serde_json::json!({
            "Name": "m1", "State": "Running", "URL": "tcp://10.0.0.1:2376",
            "Error": "%d %s {{", "DockerVersion": "v24", "List": [1, 2, 3],
            "Map": {"a": {"b": null}}
        }));
        let _ = t.render(&data);
    }
});
