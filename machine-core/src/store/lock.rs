//! Exclusive inter-process locks on small lock files (`flock(2)` semantics).
//!
//! A lock is tied to the open file description, so two [`Lock`]s on the same
//! file exclude each other whether they are held by different processes or by
//! different threads of one process. Lock files are never deleted: removing a
//! lock file while another process waits on it would let a third process lock a
//! fresh file of the same name and run concurrently with the waiter.

use super::StoreError;
use crate::fsutil::PRIVATE_FILE_MODE;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// An exclusive lock held on a lock file of the store; released when dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// The lock file this lock is held on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Block until the lock on `path` is acquired (creating the file if needed).
    pub(crate) fn acquire(path: PathBuf) -> Result<Lock, StoreError> {
        let file = open_lock_file(&path)?;
        loop {
            match file.lock() {
                Ok(()) => return Ok(Lock { file, path }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(StoreError::Io { path, source }),
            }
        }
    }

    /// Take the lock on `path` if nobody holds it; `None` if it is held.
    pub(crate) fn try_acquire(path: PathBuf) -> Result<Option<Lock>, StoreError> {
        let file = open_lock_file(&path)?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(Lock { file, path })),
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(TryLockError::Error(source)) => return Err(StoreError::Io { path, source }),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first makes the
        // release immediate even if the descriptor were duplicated elsewhere.
        let _ = self.file.unlock();
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
}
