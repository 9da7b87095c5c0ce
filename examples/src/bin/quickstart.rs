//! Create a machine with the generic driver on the first test host and print
//! its environment for bash. Used by `scripts/quickstart.sh`.
//!
//! ```text
//! quickstart STORE_DIR NAME     (reads MT_HOSTS and MT_KEY)
//! ```

use machine_core::driver::OptionValue;
use machine_core::env::Shell;
use machine_core::host::{error_chain, CreateOptions, EnvOptions};
use machine_core::store::FileStore;
use machine_core::Store;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(name)) = (args.first(), args.get(1)) else {
        eprintln!("usage: quickstart STORE_DIR NAME");
        std::process::exit(2);
    };
    let ip = std::env::var("MT_HOSTS")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .map(str::to_string);
    let (Some(ip), Ok(key)) = (ip, std::env::var("MT_KEY")) else {
        eprintln!("quickstart: MT_HOSTS and MT_KEY must name a host (scripts/testhosts.sh env)");
        std::process::exit(2);
    };
    let store = Store::new(FileStore::new(dir), machine_drivers::builtin_registry());
    let result = async {
        if store.files().exists(name) {
            store.remove(name, true).await?;
        }
        let mut o = CreateOptions::new("generic");
        o.driver_option("generic-ip-address", OptionValue::String(ip))
            .driver_option("generic-ssh-key", OptionValue::String(key));
        // the local host shares this machine's kernel: no bridge or iptables rules
        for f in ["bridge=none", "iptables=false", "ip6tables=false"] {
            o.engine_flag("engine-opt", OptionValue::String(f.into()))?;
        }
        let host = store
            .create(name, o, &|step: &str| eprintln!("{step}"))
            .await?;
        host.env_text(&EnvOptions {
            shell: Some(Shell::Bash),
            ..EnvOptions::default()
        })
        .await
    }
    .await;
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::exit(1);
        }
    }
}
