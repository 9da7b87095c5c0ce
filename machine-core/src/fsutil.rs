//! Small file-system helpers shared by the store and the certificate code:
//! atomic replacement of files and private directories.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Mode for files holding private keys or machine configuration.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode for directories of the store.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Create `dir` (and its parents) if missing; directories this call creates get mode 0700.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// Replace `path` with `contents` atomically: write a temporary file in the same
/// directory, fsync it, set `mode`, rename it over `path` and fsync the directory.
/// Readers see either the old or the new file, never a torn one.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = fs::File::open(dir) {
        // Best effort: some file systems refuse fsync on directories.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/a.txt");
        create_private_dir(p.parent().expect("parent")).expect("mkdir");
        write_atomic(&p, b"one", 0o600).expect("write");
        write_atomic(&p, b"two", 0o600).expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(p.parent().expect("parent"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        // no temp files left behind
        let n = fs::read_dir(p.parent().expect("parent"))
            .expect("ls")
            .count();
        assert_eq!(n, 1);
    }
}
