//! Where the crate and this build live on disk.

use std::path::{Path, PathBuf};

use super::server::TETHER;

/// The crate root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory of the build running these tests: the one holding
/// `<profile>/tether`.
pub fn target_dir() -> PathBuf {
    Path::new(TETHER)
        .parent()
        .and_then(Path::parent)
        .expect("CARGO_BIN_EXE_tether is <target>/<profile>/tether")
        .to_path_buf()
}
