//! The checked-in C header `include/tether.h` must be exactly what cbindgen
//! generates from `src/ffi.rs` with `cbindgen.toml`: a C program compiled
//! against a stale header would call functions with the wrong signature.
//!
//! To regenerate it: `TETHER_BLESS=1 cargo test --test header_fresh`.

mod common;

#[test]
fn checked_in_header_matches_the_rust_source() {
    let root = common::root();
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("reading cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate the header: {e}"));
    let mut generated = Vec::new();
    bindings.write(&mut generated);

    let path = root.join("include/tether.h");
    if std::env::var_os("TETHER_BLESS").is_some() {
        std::fs::create_dir_all(root.join("include")).expect("create include/");
        std::fs::write(&path, &generated).expect("write include/tether.h");
        eprintln!("wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    if checked_in != generated {
        let first_difference = String::from_utf8_lossy(&generated)
            .lines()
            .zip(
                String::from_utf8_lossy(&checked_in)
                    .lines()
                    .chain(std::iter::repeat("")),
            )
            .enumerate()
            .find(|(_, (new, old))| new != old)
            .map(|(n, (new, old))| {
                format!(
                    "line {}:\n  generated:   {new}\n  checked in:  {old}",
                    n + 1
                )
            })
            .unwrap_or_else(|| "the checked-in file is longer".to_string());
        panic!(
            "include/tether.h is stale (it differs from what src/ffi.rs generates; {first_difference}).\n\
             Regenerate it and commit the result:\n    \
             TETHER_BLESS=1 cargo test --test header_fresh\n\
             or, with the cbindgen CLI:\n    \
             cbindgen --config cbindgen.toml --output include/tether.h src/ffi.rs"
        );
    }
}
