//! Swarm options as a user or an edited config.json gives them: checking
//! them never panics, and what the check accepts always becomes a request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use machine_core::config::SwarmOptions;
use machine_core::swarm::{self, Membership};

fuzz_target!(|input: (bool, bool, String, String, Vec<String>, Vec<String>)| {
    let (is_swarm, master, discovery, address, opts, join_opts) = input;
    for v in opts.iter().chain(&join_opts) {
        if let Some(n) = v.split_once('=').and_then(|(_, d)| swarm::parse_go_duration(d)) {
            assert!(n >= 0, "{v:?}");
        }
    }
    let s = SwarmOptions {
        is_swarm,
        master,
        discovery,
        address,
        arbitrary_flags: Some(opts),
        arbitrary_join_flags: Some(join_opts),
        ..SwarmOptions::default()
    };
    if let Ok((m, _)) = swarm::check("m1", &s) {
        match m {
            Membership::None => {}
            Membership::Init => {
                swarm::init_plan(&s, "192.0.2.1", &mut Vec::new()).expect("checked init");
            }
            Membership::Join { via, .. } => {
                assert!(!via.is_empty() && via != "m1");
                swarm::join_plan(&s, "192.0.2.1", &mut Vec::new()).expect("checked join");
            }
        }
    }
});
