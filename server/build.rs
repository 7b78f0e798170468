//! Embeds the schema: `sqlx::migrate!` and `#[sqlx::test(...)]` embed ../migrations at compile
//! time, and this lists ../migrations/functions/*.sql (the current copy of every SQL function,
//! applied after the numbered migrations: db.rs) so a new file needs no Rust change.
//! Without the rerun line, a new or edited migration would not rebuild the binary or the tests.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    // Named too: a file added to the subdirectory did not always rerun this script.
    println!("cargo:rerun-if-changed=../migrations/functions");
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../migrations/functions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    // Applied in name order, the same on every machine.
    files.sort();
    let mut out = String::from("/// `(file name, SQL)` of each file in migrations/functions/, in name order.\n");
    out.push_str("pub static FUNCTION_FILES: &[(&str, &str)] = &[\n");
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("UTF-8 file name");
        // Relative to the crate as it is compiled, not to where this script last ran: a target
        // directory copied from another checkout (whose mtimes do not rerun this script) then
        // still embeds this checkout's files.
        writeln!(
            out,
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/../migrations/functions/{name}\"))),"
        )
        .expect("write to a String");
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("function_files.rs");
    std::fs::write(&target, out).expect("write function_files.rs");
}
