//! Temporary files for flags that take a path (`--auth-token-file`, `--config`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A file in a fresh temporary directory, removed (with the directory) on drop.
pub struct TempFile {
    dir: PathBuf,
    /// The file's path.
    pub path: PathBuf,
}

impl TempFile {
    /// Writes `contents` to a new file named `name` in a fresh directory.
    pub fn new(name: &str, contents: &[u8]) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tether-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        TempFile { dir, path }
    }

    /// The path as a `&str` for command lines.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// Replaces the file's contents at once (a new file renamed over it), so
    /// a server reloading it never reads half of it.
    pub fn rewrite(&self, contents: &[u8]) {
        let next = self.dir.join(".next");
        std::fs::write(&next, contents).expect("write temp file");
        std::fs::rename(&next, &self.path).expect("rename over temp file");
    }

    /// The directory holding the file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
