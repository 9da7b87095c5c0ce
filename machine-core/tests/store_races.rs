//! Mutating operations racing each other on one machine: each takes the
//! machine's lock, reads the machine again, changes it and saves, so nothing
//! is lost and a removed machine never comes back. The racers use separate
//! lock file descriptions (as separate processes would: `flock` locks belong
//! to the open file, not the process).

use async_trait::async_trait;
use machine_core::config::BaseDriver;
use machine_core::driver::{
    Driver, DriverContext, DriverError, DriverFactory, DriverOption, DriverOptions, DriverRegistry,
    SshTarget,
};
use machine_core::host::CreateOptions;
use machine_core::store::FileStore;
use machine_core::{State, Store};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A driver whose start and stop take a while and count in its saved state.
#[derive(Debug)]
struct Slow {
    base: BaseDriver,
    starts: u64,
}

#[async_trait]
impl Driver for Slow {
    fn driver_name(&self) -> &str {
        "slow"
    }
    async fn create(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    async fn remove(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    async fn state(&self) -> Result<State, DriverError> {
        Ok(State::Running)
    }
    async fn ip(&self) -> Result<String, DriverError> {
        Ok("127.0.0.1".into())
    }
    fn ssh_target(&self) -> Option<SshTarget> {
        None
    }
    fn needs_provisioning(&self) -> bool {
        false
    }
    fn saved_state(&self) -> Result<Map<String, Value>, DriverError> {
        let mut m = Map::new();
        m.insert("MachineName".into(), self.base.machine_name.clone().into());
        m.insert("Starts".into(), self.starts.into());
        Ok(m)
    }
    async fn start(&mut self) -> Result<(), DriverError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.starts += 1;
        Ok(())
    }
    async fn stop(&mut self) -> Result<(), DriverError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }
}

#[derive(Debug)]
struct SlowFactory;

impl DriverFactory for SlowFactory {
    fn name(&self) -> &str {
        "slow"
    }
    fn options(&self) -> Vec<DriverOption> {
        Vec::new()
    }
    fn new_driver(
        &self,
        ctx: &DriverContext,
        _: &DriverOptions,
    ) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(Slow {
            base: ctx.base(),
            starts: 0,
        }))
    }
    fn load_driver(
        &self,
        ctx: &DriverContext,
        saved: &Map<String, Value>,
    ) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(Slow {
            base: ctx.base(),
            starts: saved.get("Starts").and_then(Value::as_u64).unwrap_or(0),
        }))
    }
}

fn store(root: &Path) -> Store {
    let mut reg = DriverRegistry::new();
    reg.register(Arc::new(SlowFactory));
    Store::new(FileStore::new(root.to_path_buf()), reg)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn create(root: &Path, name: &str) {
    rt().block_on(async {
        let mut o = CreateOptions::new("slow");
        o.key_algorithm = machine_core::cert::KeyAlgorithm::EcdsaP256;
        store(root)
            .create(name, o, &|_: &str| {})
            .await
            .expect("create");
    });
}

#[test]
fn rm_racing_start_never_brings_the_machine_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().to_path_buf();
    create(&root, "m1");
    // both load the machine first, then act
    let mut host = rt().block_on(async { store(&root).get("m1").expect("load") });
    let r1 = root.clone();
    let starter =
        std::thread::spawn(move || rt().block_on(host.start()).map_err(|e| e.to_string()));
    std::thread::sleep(Duration::from_millis(50));
    let remover = std::thread::spawn(move || {
        rt().block_on(store(&r1).remove("m1", false))
            .map_err(|e| e.to_string())
    });
    let started = starter.join().expect("starter");
    remover.join().expect("remover").expect("remove");
    // whichever won, the machine is gone for good
    assert!(
        !FileStore::new(root.clone()).exists("m1"),
        "start re-created a removed machine ({started:?})"
    );

    // the other order: remove first, then a start of a Host loaded before
    create(&root, "m2");
    let mut host = rt().block_on(async { store(&root).get("m2").expect("load") });
    rt().block_on(store(&root).remove("m2", false))
        .expect("remove");
    let e = rt()
        .block_on(host.start())
        .expect_err("start of a removed machine");
    assert_eq!(e.code(), machine_core::ErrorCode::NotFound, "{e}");
    assert!(!FileStore::new(root).exists("m2"));
}

#[test]
fn concurrent_starts_each_see_the_others_save() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().to_path_buf();
    create(&root, "m1");
    // four Hosts loaded before any start: without reload each would save
    // Starts = 1 and three starts would be lost
    let hosts: Vec<_> = (0..4)
        .map(|_| rt().block_on(async { store(&root).get("m1").expect("load") }))
        .collect();
    let threads: Vec<_> = hosts
        .into_iter()
        .map(|mut h| {
            std::thread::spawn(move || rt().block_on(h.start()).map_err(|e| e.to_string()))
        })
        .collect();
    for t in threads {
        t.join().expect("thread").expect("start");
    }
    let host = rt().block_on(async { store(&root).get("m1").expect("load") });
    assert_eq!(host.inspect().driver["Starts"], 4);
}
