//! `export` and `import`: a machine as one archive, and back.

use crate::error::{CliError, CliResult};
use crate::Ctx;
use clap::ArgMatches;
use machine_core::host::{ExportOptions, ImportOptions};
use machine_core::ErrorCode;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use zeroize::Zeroizing;

/// The environment variable holding the archive passphrase.
pub(crate) const PASSPHRASE_ENV: &str = "MACHINE_EXPORT_PASSPHRASE";

/// The passphrase from [`PASSPHRASE_ENV`], else typed on the terminal
/// (twice when `confirm`); never from a command-line argument.
fn passphrase(confirm: bool) -> CliResult<Zeroizing<String>> {
    if let Some(p) = std::env::var_os(PASSPHRASE_ENV).filter(|p| !p.is_empty()) {
        return p
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| CliError::msg(format!("Error: {PASSPHRASE_ENV} is not valid UTF-8")));
    }
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(CliError::msg(format!(
            "Error: a passphrase is needed: set {PASSPHRASE_ENV} or run on a terminal"
        )));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| CliError::msg(format!("Error: cannot read the passphrase: {e}")))
    };
    let p = ask("Passphrase: ")?;
    if p.is_empty() {
        return Err(CliError::msg("Error: the passphrase is empty"));
    }
    if confirm && *ask("Passphrase again: ")? != *p {
        return Err(CliError::msg("Error: the passphrases differ"));
    }
    Ok(p)
}

pub(crate) fn export(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let name = m
        .get_one::<String>("name")
        .ok_or_else(|| CliError::msg("Error: No machine name specified"))?;
    let host = ctx.load(name)?;
    let encrypt = m.get_flag("encrypt") || std::env::var_os(PASSPHRASE_ENV).is_some();
    let with_ca_key = m.get_flag("with-ca-key");
    let pass = if encrypt {
        Some(passphrase(true)?)
    } else {
        None
    };
    let opts = ExportOptions {
        with_ca_key,
        passphrase: pass.as_ref().map(|p| p.to_string()),
    };
    if with_ca_key {
        eprintln!("WARNING: the archive holds the CA's private key: whoever has it can make certificates that every machine of this store trusts. Keep it safe or delete it after the import.");
    }
    let bytes = host
        .export_archive(&opts)
        .map_err(|e| ctx.err("Error exporting the machine", &e))?;
    let default = if encrypt {
        format!("{name}.tar.age")
    } else {
        format!("{name}.tar")
    };
    let out = m.get_one::<String>("output").cloned().unwrap_or(default);
    if out == "-" {
        let mut o = std::io::stdout().lock();
        o.write_all(&bytes)
            .and_then(|()| o.flush())
            .map_err(|e| CliError::msg(format!("Error: cannot write the archive: {e}")))?;
        return Ok(0);
    }
    let path = std::path::Path::new(&out);
    // a new file, 0600 from the start: the archive holds private keys
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        return Err(CliError::msg(format!(
            "Error: cannot write the archive {}: {e}",
            path.display()
        )));
    }
    outln!("Machine {name} exported to {}", path.display());
    Ok(0)
}

pub(crate) fn import(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let file = m
        .get_one::<String>("file")
        .ok_or_else(|| CliError::msg("Error: No archive specified"))?;
    let mut bytes = Vec::new();
    let read = if file == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(file)
            .and_then(|f| {
                f.take(machine_core::archive::MAX_ARCHIVE * 2)
                    .read_to_end(&mut bytes)
            })
            .map(|_| ())
    };
    read.map_err(|e| CliError::msg(format!("Error: cannot read {file}: {e}")))?;
    let pass = if machine_core::archive::is_encrypted(&bytes) {
        Some(passphrase(false)?)
    } else {
        None
    };
    let opts = ImportOptions {
        name: m.get_one::<String>("name").cloned(),
        passphrase: pass.as_ref().map(|p| p.to_string()),
    };
    match ctx.store.import_archive(&bytes, &opts) {
        Ok(host) => {
            outln!("Machine {} imported", host.name());
            Ok(0)
        }
        Err(e) => {
            let mut err = ctx.err("Error importing the machine", &e);
            if e.code() == ErrorCode::AlreadyExists {
                err.message.push_str(&format!(
                    "\nImport it under another name with '{} import {file} --name NEW'.",
                    ctx.prog
                ));
            }
            Err(err)
        }
    }
}
