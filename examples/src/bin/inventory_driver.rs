//! Create a machine with a driver the program brings itself.
//!
//! ```text
//! cargo run -p examples --bin inventory_driver -- STORE_DIR INVENTORY.json NAME [engine-opt ...]
//! ```
//! prints the machine's URL and its Docker version once it is provisioned.

use examples::inventory::InventoryFactory;
use machine_core::driver::OptionValue;
use machine_core::host::{error_chain, CreateOptions};
use machine_core::store::FileStore;
use machine_core::Store;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: inventory_driver STORE_DIR INVENTORY.json NAME [ENGINE_OPT ...]");
        std::process::exit(2);
    }
    let mut drivers = machine_drivers::builtin_registry();
    drivers.register(Arc::new(InventoryFactory));
    let store = Store::new(FileStore::new(&args[0]), drivers);
    let mut opts = CreateOptions::new("inventory");
    opts.driver_option("inventory-file", OptionValue::String(args[1].clone()));
    for o in &args[3..] {
        if let Err(e) = opts.engine_flag("engine-opt", OptionValue::String(o.clone())) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let _ = opts.engine_flag("engine-install-url", OptionValue::String("none".into()));
    let result = async {
        let host = store
            .create(&args[2], opts, &|step: &str| eprintln!("{step}"))
            .await?;
        let version = host.docker_version(Duration::from_secs(10)).await?;
        println!("{} {}", host.url().await?, version.version);
        Ok::<_, machine_core::host::HostError>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}
