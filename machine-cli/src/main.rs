//! The `machine` binary.

fn main() {
    std::process::exit(machine_cli::main());
}
