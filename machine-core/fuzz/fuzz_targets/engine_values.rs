//! Engine values that pass the check never add a line to the daemon's unit
//! or OpenRC settings file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use machine_core::config::check_engine_value;
use machine_core::provision::engine::{openrc_conf, systemd_drop_in};

fuzz_target!(|input: (String, String)| {
    let (label, env) = input;
    let args = vec!["--label".to_string(), label.clone()];
    let envs = vec![env.clone()];
    // whatever the values, the drop-in keeps its four lines
    let d = systemd_drop_in("/usr/bin/dockerd", &args, &envs);
    assert_eq!(d.lines().count(), 4, "{d:?}");
    if check_engine_value("engine-label", &label).is_ok()
        && check_engine_value("engine-env", &env).is_ok()
    {
        let c = openrc_conf(&args, &envs);
        assert_eq!(c.lines().count(), 3, "{c:?}");
    }
});
