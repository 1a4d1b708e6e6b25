//! Files that hold secrets (backups): created new, readable and writable by their owner only.

use std::path::Path;

use super::{Result, StoreError};

/// Creates `path` empty with mode 0600 (on Unix); an existing file is an error, never
/// overwritten.
pub fn create(path: &Path) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Invalid(
            format!("{} exists already; choose a new file", path.display()),
        )),
        Err(e) => Err(StoreError::Invalid(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// Creates a directory (and its parents) for secret files: mode 0700 when it is new.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}
