//! Files keyclerk writes are private from the start: the database (and the `-wal`
//! and `-shm` files SQLite makes beside it, which take the database file's mode) is
//! created 0600 before SQLite opens it, and the directories that hold secrets are
//! checked for group or other access.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::storage::sqlite::DB_FILE;

/// Mode bits that let group or others in.
const SHARED: u32 = 0o077;

/// Sets the process's file-creation mask to 077, so that every file the process
/// creates is private unless it says otherwise (the keys' `.public` files do).
pub fn restrict_umask() {
    use rustix::fs::Mode;
    rustix::process::umask(Mode::from_raw_mode(0o077));
}

/// Makes the database file 0600 before SQLite opens it: creates it empty (SQLite
/// takes an empty file as a new database) if it does not exist, and takes group and
/// other access away from it and its `-wal` and `-shm` files if it does.
pub fn prepare_database(data_dir: &Path) -> io::Result<()> {
    let db = data_dir.join(DB_FILE);
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&db)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for name in [
        DB_FILE.to_owned(),
        format!("{DB_FILE}-wal"),
        format!("{DB_FILE}-shm"),
    ] {
        let path = data_dir.join(name);
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & SHARED != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o700))?;
            log::warn!(
                "{} was readable by group or others (mode {mode:o}); it is now {:o}",
                path.display(),
                mode & 0o700
            );
        }
    }
    Ok(())
}

/// The mode of `dir` when group or others may read or enter it.
pub fn shared_mode(dir: &Path) -> Option<u32> {
    let mode = fs::metadata(dir).ok()?.permissions().mode() & 0o777;
    (mode & SHARED != 0).then_some(mode)
}

/// Warns about each of the data and keys directories that group or others can
/// read: its files are private, but their names and sizes are not, and a file
/// put there by hand keeps its own mode.
pub fn warn_about_shared_dirs(data_dir: &Path, keys_dir: &Path) {
    for (what, dir) in [("data", data_dir), ("keys", keys_dir)] {
        if let Some(mode) = shared_mode(dir) {
            log::warn!(
                "the {what} directory {} is open to group or others (mode {mode:o}); run `chmod 700 {}`",
                dir.display(),
                dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_is_created_private_and_an_open_one_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        prepare_database(dir.path()).unwrap();
        let db = dir.path().join(DB_FILE);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(fs::metadata(&db).unwrap().len(), 0);
        let wal = dir.path().join(format!("{DB_FILE}-wal"));
        fs::write(&wal, b"").unwrap();
        for p in [&db, &wal] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
        }
        prepare_database(dir.path()).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn a_directory_open_to_others_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(shared_mode(dir.path()), None);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(shared_mode(dir.path()), Some(0o750));
    }
}
