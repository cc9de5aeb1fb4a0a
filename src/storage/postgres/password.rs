//! The password of a URL that has none, found where libpq looks: `PGPASSWORD`, then
//! the password file (`PGPASSFILE`, else `~/.pgpass`), so that an operator keeps the
//! password out of `config.toml` exactly as with `psql` and `pg_dump`.
//!
//! tokio-postgres reads neither: it is a protocol implementation, not libpq.

use std::path::{Path, PathBuf};

use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// Sets the password of `config` when its URL named none: `PGPASSWORD`, else the
/// first line of the password file that matches one of its hosts (in their order).
/// A password file that others may read is ignored, with a warning, as libpq does.
pub(super) fn fill_in(config: &mut Config) {
    if config.get_password().is_some() {
        return;
    }
    if let Some(password) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
        config.password(password.as_encoded_bytes());
        return;
    }
    let Some(file) = password_file() else {
        return;
    };
    let Ok(text) = read_private(&file) else {
        return;
    };
    let user = config
        .get_user()
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok());
    let Some(user) = user else {
        return;
    };
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        // libpq matches a socket connection as `localhost`.
        let host = match host {
            Host::Tcp(name) => name.as_str(),
            #[cfg(unix)]
            Host::Unix(_) => "localhost",
        };
        // One port for every host, or one each; 5432 when none is named.
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let wanted = [host, &port.to_string(), &database, &user];
        if let Some(password) = find(&text, wanted) {
            config.password(password);
            return;
        }
    }
}

/// `PGPASSFILE`, else `~/.pgpass`.
fn password_file() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(file));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass"))
}

/// The file's text, unless group or others may read it (libpq ignores such a file).
fn read_private(file: &Path) -> std::io::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)?.permissions().mode();
        if mode & 0o077 != 0 {
            log::warn!(
                "{}: ignored, it may be read by others (chmod 0600 it, as libpq asks)",
                file.display()
            );
            return Err(std::io::ErrorKind::PermissionDenied.into());
        }
    }
    std::fs::read_to_string(file)
}

/// The password of the first line `host:port:database:user:password` whose four
/// fields match `wanted` (`*` matches anything; `\:` and `\\` are escapes).
fn find(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(fields)
        .find(|f| {
            f[..4]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field == "*" || field == value)
        })
        .map(|mut f| f.swap_remove(4))
}

/// The five fields of a line, unescaped; `None` for a line with fewer.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.extend(chars.next()),
            // The password is the rest of the line, colons and all.
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::find;

    const FILE: &str = "\
# a comment
db1.example:5432:keyclerk:kc:first
*:5433:*:kc:any\\:host
db2.example:5432:keyclerk:kc:pass:with:colons
";

    #[test]
    fn the_first_matching_line_gives_the_password() {
        assert_eq!(
            find(FILE, ["db1.example", "5432", "keyclerk", "kc"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            find(FILE, ["elsewhere", "5433", "other", "kc"]).as_deref(),
            Some("any:host"),
            "* matches anything and \\: is a colon"
        );
        assert_eq!(
            find(FILE, ["db2.example", "5432", "keyclerk", "kc"]).as_deref(),
            Some("pass:with:colons")
        );
    }

    #[test]
    fn no_line_matching_gives_no_password() {
        assert_eq!(
            find(FILE, ["db1.example", "5432", "keyclerk", "other"]),
            None
        );
        assert_eq!(find("short:line", ["short", "line", "x", "y"]), None);
        assert_eq!(find("", ["h", "5432", "d", "u"]), None);
    }
}
