//! Downloads: the files products list (found at start-up under `[downloads] dir`),
//! the signed links a license gets for them, and opening the file of a link.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::domain::activation::status_refusal;
use crate::domain::download::{
    DownloadRefusal, LinkClaims, LinkSecret, DEFAULT_LINK_MINUTES, MAX_LINK_MINUTES,
};
use crate::domain::license::License;
use crate::domain::product::Catalog;
use crate::domain::time::{self, Timestamp};
use crate::domain::DomainError;
use crate::service::{AppState, ServiceError};

/// The download endpoint, before the link's token (made of URL-safe characters
/// only: base64url, digits, `.` and `_`). In the query, so that the access log,
/// which never writes query strings, never holds a link.
pub const DOWNLOAD_PATH: &str = "/v1/downloads?link=";

/// `[downloads]`: where the products' files are and how long a link lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadSettings {
    /// The directory the products' `files` paths are relative to.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Minutes a download link lives (1 to 1440).
    #[serde(default = "default_link_minutes")]
    pub link_minutes: u32,
}

fn default_dir() -> PathBuf {
    "files".into()
}
fn default_link_minutes() -> u32 {
    DEFAULT_LINK_MINUTES
}

impl Default for DownloadSettings {
    fn default() -> Self {
        Self {
            dir: default_dir(),
            link_minutes: default_link_minutes(),
        }
    }
}

impl DownloadSettings {
    /// The first problem with these settings, as (key, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=MAX_LINK_MINUTES).contains(&self.link_minutes) {
            return Some((
                "link_minutes",
                format!("must be between 1 and {MAX_LINK_MINUTES}"),
            ));
        }
        None
    }
}

/// Finds every file the catalog lists under `dir`: each must be a regular file
/// inside it (a symbolic link leading out is refused). The message names the
/// product and the file.
pub fn find_files(
    dir: &Path,
    catalog: &Catalog,
) -> Result<BTreeMap<(String, String), PathBuf>, String> {
    let mut found = BTreeMap::new();
    if catalog.iter().all(|p| p.spec.files.is_empty()) {
        return Ok(found);
    }
    let root = dir.canonicalize().map_err(|e| {
        format!(
            "downloads.dir: {}: {e} (products list files under it)",
            dir.display()
        )
    })?;
    for product in catalog.iter() {
        for f in &product.spec.files {
            let named = |why: String| {
                format!(
                    "products.{}.files: `{}`: {}: {why}",
                    product.id, f.name, f.path
                )
            };
            let path = root
                .join(&f.path)
                .canonicalize()
                .map_err(|e| named(format!("{e} in {}", root.display())))?;
            if !path.starts_with(&root) {
                return Err(named(format!("leads out of {}", root.display())));
            }
            let meta = std::fs::metadata(&path).map_err(|e| named(e.to_string()))?;
            if !meta.is_file() {
                return Err(named("is not a regular file".into()));
            }
            found.insert((product.id.to_string(), f.name.clone()), path);
        }
    }
    Ok(found)
}

/// The products' files and the secret their links are signed with.
pub struct Downloads {
    secret: LinkSecret,
    link_minutes: u32,
    files: BTreeMap<(String, String), PathBuf>,
    public_url: Option<String>,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("link_minutes", &self.link_minutes)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl Downloads {
    /// The files `catalog` lists under `settings.dir`, signed for with `secret`;
    /// links are absolute under `public_url` when it is set.
    pub fn new(
        settings: &DownloadSettings,
        catalog: &Catalog,
        secret: LinkSecret,
        public_url: Option<String>,
    ) -> Result<Self, String> {
        Ok(Self {
            secret,
            link_minutes: settings.link_minutes,
            files: find_files(&settings.dir, catalog)?,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// The path of a product's file, if the catalog lists it.
    fn path_of(&self, product: &str, name: &str) -> Option<&PathBuf> {
        self.files.get(&(product.to_owned(), name.to_owned()))
    }

    /// The URL of a link token.
    fn url(&self, token: &str) -> String {
        format!(
            "{}{DOWNLOAD_PATH}{token}",
            self.public_url.as_deref().unwrap_or("")
        )
    }
}

/// A signed link to one file of a license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DownloadLink {
    /// The file's name, as the product lists it.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where to fetch it: `/v1/downloads?link=…`, under `public_url` when set.
    pub url: String,
    /// When the link stops working.
    #[serde(with = "time::serde_req")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// The file of a valid link, opened.
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file.
    pub file: std::fs::File,
    /// Its name, as the product lists it.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it last changed, if the file system says.
    pub modified: Option<SystemTime>,
    /// The license the link was made for.
    pub license_id: String,
}

impl AppState {
    /// The signed links of `license`'s files at `now`: none for a license that is
    /// not active (revoked, refunded, superseded, suspended, ...), and none for a
    /// file that has gone from the files directory.
    pub fn download_links(&self, license: &License, now: Timestamp) -> Vec<DownloadLink> {
        if status_refusal(license.status).is_some() {
            return Vec::new();
        }
        let Some(product) = self.catalog.get(&license.product) else {
            return Vec::new();
        };
        let d = &self.downloads;
        let expires_at = now + chrono::Duration::minutes(i64::from(d.link_minutes));
        product
            .spec
            .files
            .iter()
            .filter_map(|f| {
                let size = std::fs::metadata(d.path_of(&license.product, &f.name)?)
                    .ok()?
                    .len();
                let token = d.secret.sign(&LinkClaims {
                    license_id: license.id.clone(),
                    file: f.name.clone(),
                    expires_at,
                });
                Some(DownloadLink {
                    name: f.name.clone(),
                    size,
                    url: d.url(&token),
                    expires_at: time::from_unix(expires_at.timestamp()),
                })
            })
            .collect()
    }

    /// The links of the license with id `id` (`GET /v1/licenses/{id}/downloads`).
    pub async fn license_downloads(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<Vec<DownloadLink>, ServiceError> {
        let (license, _) = self
            .store
            .license(id)
            .await?
            .ok_or(DomainError::LicenseNotFound)?;
        Ok(self.download_links(&license, now))
    }

    /// Opens the file of the link `token` at `now`: refused when the link is bad,
    /// altered, expired or made for another license or file, when the license is
    /// not active, and when the file is no longer offered.
    pub async fn open_download(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<OpenedFile, ServiceError> {
        let claims = self
            .downloads
            .secret
            .verify(token, now)
            .map_err(DownloadRefusal::from)?;
        let (license, _) = self
            .store
            .license(&claims.license_id)
            .await?
            .ok_or(DownloadRefusal::LinkInvalid)?;
        if let Some(refusal) = status_refusal(license.status) {
            return Err(refusal.into());
        }
        let path = self
            .downloads
            .path_of(&license.product, &claims.file)
            .cloned()
            .ok_or(DownloadRefusal::FileNotFound)?;
        let opened = actix_web::web::block(move || {
            let file = std::fs::File::open(&path)?;
            let meta = file.metadata()?;
            Ok::<_, std::io::Error>((file, meta))
        })
        .await
        .map_err(|e| ServiceError::internal("opening a download", &e))?;
        let (file, meta) = match opened {
            Ok(ok) => ok,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DownloadRefusal::FileNotFound.into())
            }
            Err(e) => return Err(ServiceError::internal("opening a download", &e)),
        };
        if !meta.is_file() {
            return Err(DownloadRefusal::FileNotFound.into());
        }
        Ok(OpenedFile {
            file,
            name: claims.file,
            size: meta.len(),
            modified: meta.modified().ok(),
            license_id: license.id,
        })
    }

    /// Records that `opened` began downloading at `now` (an audit event).
    pub async fn record_download(
        &self,
        opened: &OpenedFile,
        now: Timestamp,
    ) -> Result<(), ServiceError> {
        self.store
            .record_download(opened.license_id.clone(), opened.name.clone(), now)
            .await?;
        Ok(())
    }
}
