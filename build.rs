//! Rebuild when a migration changes: `sqlx::migrate!` embeds the files at compile time.
//! Embed the documented queries of `sql/` for `zegolog bench-queries`: `$OUT_DIR/sql_files.rs`
//! is the list `&[(file name, include_str!(file))]` of the `.sql` files, sorted by name.
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    // A directory: cargo reruns this script when any file in it is added, removed or changed.
    println!("cargo:rerun-if-changed=sql");

    let sql_dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("sql");
    let mut files: Vec<_> = std::fs::read_dir(&sql_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", sql_dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut list = String::from("&[\n");
    for path in files {
        let name = path
            .file_name()
            .unwrap()
            .to_str()
            .expect("UTF-8 file names in sql/");
        let path = path.to_str().expect("a UTF-8 path to sql/");
        writeln!(list, "    ({name:?}, include_str!({path:?})),").unwrap();
    }
    list.push_str("]\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("sql_files.rs");
    std::fs::write(&out, list).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
