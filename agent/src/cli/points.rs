//! `fieldlink import` and `fieldlink export`: CSV point tables to `[[device.point]]` blocks
//! and back. The work is the config crate's ([`crate::config::pointtable`]); here are the
//! files and the output.

use crate::config::pointtable;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Prints (or writes to `out`) the blocks of the table in `table`. On errors, every one goes
/// to stderr, each on its own line as `file:line:` like `check`'s, and nothing to stdout.
pub fn import(table: &Path, out: Option<&Path>) -> ExitCode {
    let name = table.display().to_string();
    let bytes = match std::fs::read(table) {
        Ok(bytes) => bytes,
        Err(e) => return super::exit(Err(anyhow::anyhow!("cannot read {name}: {e}"))),
    };
    match pointtable::import(&bytes, &name) {
        Ok(blocks) => super::exit(write(out, &blocks)),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to the file `out`, or to stdout.
fn write(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("cannot write to stdout"),
    }
}

/// Prints device `device`'s points as a CSV table, after a byte order mark with `bom`
/// (Excel reads a CSV file without one in the system's code page).
pub fn export(config: &Path, device: &str, bom: bool) -> anyhow::Result<()> {
    let config = crate::config::load(config)?;
    let table = pointtable::export(&config, device)?;
    let table = if bom {
        format!("\u{feff}{table}")
    } else {
        table
    };
    write(None, &table)
}
