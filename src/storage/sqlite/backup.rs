//! `keyclerk backup PATH`: an online, consistent copy of the database.
//!
//! SQLite's backup API copies every page inside one read transaction, so the copy is
//! the database as of one commit even while the server keeps writing (WAL lets the
//! writer go on beside the reader). The copy is written next to `PATH` under a
//! temporary name, switched to a self-contained rollback journal, checked
//! (`integrity_check`, the audit chain), synced and only then renamed to `PATH`: a
//! backup that exists is whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{verify_audit_on, DB_FILE};

/// What a finished backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// Pages copied.
    pub pages: i32,
    /// Licenses in the copy.
    pub licenses: i64,
    /// Audit events in the copy (the chain verified).
    pub events: i64,
}

/// Why no backup was made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// There is no database to copy.
    #[error("{0}: no database here (is the data directory right?)")]
    NoDatabase(PathBuf),
    /// The destination is taken.
    #[error("{0}: already exists; choose a new file")]
    Exists(PathBuf),
    /// SQLite refused.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The copy did not check out; it was removed.
    #[error("the copy failed its check ({0}); nothing was written")]
    Check(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Copies `data_dir/keyclerk.db` to `dest` while the server may be writing.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<BackupReport, BackupError> {
    let source_path = data_dir.join(DB_FILE);
    if !source_path.is_file() {
        return Err(BackupError::NoDatabase(source_path));
    }
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_owned()));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let result = copy_and_check(&source_path, &partial);
    match result {
        Ok(report) => {
            std::fs::rename(&partial, dest).map_err(io(dest))?;
            if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Makes the rename itself durable.
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io(dir))?;
            }
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn copy_and_check(source_path: &Path, partial: &Path) -> Result<BackupReport, BackupError> {
    let source = Connection::open_with_flags(
        source_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_secs(5))?;
    let mut copy = Connection::open(partial)?;
    let pages = {
        let backup = Backup::new(&source, &mut copy)?;
        // All pages in one step: one read transaction, hence one consistent snapshot.
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        backup.progress().pagecount
    };
    drop(source);
    // One self-contained file: no -wal beside it to forget when copying it away.
    copy.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    let integrity: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(BackupError::Check(format!("integrity_check: {integrity}")));
    }
    let events = verify_audit_on(&copy)
        .map_err(|e| BackupError::Check(e.to_string()))?
        .map_err(|e| BackupError::Check(format!("audit chain: {e}")))?;
    let licenses: i64 = copy.query_row("SELECT count(*) FROM licenses", [], |r| r.get(0))?;
    drop(copy);
    let file = std::fs::File::open(partial).map_err(io(partial))?;
    restrict(&file, partial)?;
    file.sync_all().map_err(io(partial))?;
    Ok(BackupReport {
        pages,
        licenses,
        events,
    })
}

/// The copy holds customers' e-mail addresses and token hashes: owner only.
#[cfg(unix)]
fn restrict(file: &std::fs::File, path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(path))
}

#[cfg(not(unix))]
fn restrict(_: &std::fs::File, _: &Path) -> Result<(), BackupError> {
    Ok(())
}
