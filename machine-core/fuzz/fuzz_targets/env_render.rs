//! Env rendering for every shell: any name, host, path and command line give
//! text or an error, never a panic; a set line never spans two lines for the
//! line-oriented shells.
#![no_main]
use libfuzzer_sys::fuzz_target;
use machine_core::env::{render, render_unset, MachineEnv, Shell};

fuzz_target!(|input: (String, String, String, String, bool)| {
    let (name, host, path, hint, verify) = input;
    let env = MachineEnv::new(&name, &host, &path, verify);
    for shell in Shell::ALL {
        if let Ok(text) = render(&env, shell, Some(&hint)) {
            if shell == Shell::Cmd {
                // one line per variable plus the two hint lines
                assert!(
                    text.lines().count() <= env.vars.len() + env.clear.len() + 2,
                    "{text:?}"
                );
            }
        }
        let _ = render_unset(&[name.clone()], shell, Some(&hint));
    }
});
