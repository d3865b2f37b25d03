//! The gateway's configuration: which systems may call it, the agencies each may act for,
//! where their secrets are, and the limits. Secrets live in their own file, refused when
//! group or others can read it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lienthong_core::AgencyCode;
use serde::{Deserialize, Serialize};

use crate::error::{Result, VxpError};
use crate::headers::{Secret, SecretStore};

/// Default [`GatewayConfig::max_edoc_bytes`]: 1 GiB. Attachments travel inline in edXML as
/// base64, so this admits files of about 750 MiB.
pub const DEFAULT_MAX_EDOC_BYTES: u64 = 1 << 30;

/// Default [`GatewayConfig::timestamp_utc_offset_minutes`]: +07:00, Vietnam.
pub const DEFAULT_UTC_OFFSET_MINUTES: i32 = 7 * 60;

/// The `[vxp]` section of a node's configuration (TOML).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The address of the HTTPS listener, e.g. `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// The listener's certificate chain, PEM. Default: the node's own certificate
    /// (`tls.cert`), which names the node's DNS names and addresses.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The listener's private key, PEM (with `cert`). Default: the node's own (`tls.key`).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// For each agency the gateway acts for, a client profile of that agency: the node's
    /// endpoint, the agency's certificate and the custodial key with which the gateway
    /// signs what the agency's DMS sends (the key file is refused when group or others
    /// can read it).
    pub agency_profiles: BTreeMap<String, PathBuf>,
    /// Where the gateway keeps its journal of sent messages. Default: `vxp/` in the
    /// node's data directory.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The TOML file of secrets, one `"<system id>" = "<secret>"` per line. It must be
    /// readable by its owner only (mode 0600 or stricter). A relative path is relative to
    /// the configuration file ([`GatewayConfig::resolve_paths`]).
    pub secrets_file: PathBuf,
    /// The systems (DMS installations) allowed to call the gateway.
    pub systems: Vec<SystemConfig>,
    /// The largest sendEdoc body accepted, in bytes. Default [`DEFAULT_MAX_EDOC_BYTES`].
    #[serde(default = "default_max_edoc_bytes")]
    pub max_edoc_bytes: u64,
    /// Where sendEdoc bodies are written while they arrive and are hashed. Default: the
    /// system's temporary directory.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// The largest difference allowed between a request's signed timestamp and the
    /// gateway's clock, in seconds. Default: none (not checked), because the SDK takes
    /// the timestamp once per service object and long-running DMSs send hours-old ones;
    /// HMAC, TLS and deduplication carry the protection instead.
    #[serde(default)]
    pub timestamp_window_secs: Option<u64>,
    /// The UTC offset, in minutes, in which DMS clocks write timestamps (the format has
    /// no zone). Default [`DEFAULT_UTC_OFFSET_MINUTES`]; used only with a window.
    #[serde(default = "default_utc_offset")]
    pub timestamp_utc_offset_minutes: i32,
}

fn default_max_edoc_bytes() -> u64 {
    DEFAULT_MAX_EDOC_BYTES
}

fn default_utc_offset() -> i32 {
    DEFAULT_UTC_OFFSET_MINUTES
}

/// One system allowed to call the gateway.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// The system id the DMS configures (`XroadVnpt-systemid`), often an agency code.
    pub id: String,
    /// The agencies (QĐ 20/2020 codes) the system may send for (`from` of sendEdoc) and
    /// whose inboxes it reads.
    pub agencies: Vec<String>,
}

impl GatewayConfig {
    /// A configuration with the defaults for everything but the systems and secrets.
    pub fn new(secrets_file: impl Into<PathBuf>, systems: Vec<SystemConfig>) -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert: None,
            key: None,
            agency_profiles: BTreeMap::new(),
            state_dir: None,
            secrets_file: secrets_file.into(),
            systems,
            max_edoc_bytes: DEFAULT_MAX_EDOC_BYTES,
            spool_dir: None,
            timestamp_window_secs: None,
            timestamp_utc_offset_minutes: DEFAULT_UTC_OFFSET_MINUTES,
        }
    }

    /// Makes relative paths relative to `base` (the directory of the configuration file).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.secrets_file);
        for path in [
            &mut self.spool_dir,
            &mut self.state_dir,
            &mut self.cert,
            &mut self.key,
        ]
        .into_iter()
        .flatten()
        {
            resolve(path);
        }
        self.agency_profiles.values_mut().for_each(resolve);
    }

    /// The UTC offset of DMS timestamps.
    pub fn utc_offset(&self) -> Result<time::UtcOffset> {
        let minutes = self.timestamp_utc_offset_minutes;
        time::UtcOffset::from_whole_seconds(minutes * 60).map_err(|_| {
            VxpError::Config(format!(
                "timestamp_utc_offset_minutes {minutes} is not an offset; use a value between -1439 and 1439, 420 for Vietnam"
            ))
        })
    }

    /// Reads the secrets file and checks every system: known agencies written
    /// canonically, no system twice, a non-empty secret for each.
    pub fn load_systems(&self) -> Result<Systems> {
        let secrets = read_secrets_file(&self.secrets_file)?;
        let mut systems = HashMap::new();
        for system in &self.systems {
            if system.id.trim().is_empty() {
                return Err(VxpError::Config(
                    "a system has an empty id; give every system its XroadVnpt-systemid".into(),
                ));
            }
            let secret = secrets
                .get(&system.id)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    VxpError::Config(format!(
                        "system '{}' has no secret in {}; add a line \"{}\" = \"<secret>\"",
                        system.id,
                        self.secrets_file.display(),
                        system.id
                    ))
                })?;
            let mut agencies = Vec::new();
            for code in &system.agencies {
                agencies.push(
                    AgencyCode::parse_canonical(code)
                        .map_err(|e| VxpError::Config(format!("system '{}': {e}", system.id)))?,
                );
            }
            if agencies.is_empty() {
                return Err(VxpError::Config(format!(
                    "system '{}' may act for no agency; list its agencies",
                    system.id
                )));
            }
            let entry = SystemEntry {
                secret: Secret::new(secret.clone()),
                scope: SystemScope {
                    system_id: system.id.clone(),
                    agencies,
                },
            };
            if systems.insert(system.id.clone(), entry).is_some() {
                return Err(VxpError::Config(format!(
                    "system '{}' is listed twice; list it once",
                    system.id
                )));
            }
        }
        Ok(Systems { systems })
    }
}

/// Reads the secrets file after checking that only its owner can read it.
pub fn read_secrets_file(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let read_err = |source| VxpError::SecretFileRead {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    // Check the opened file, not the path, so the file checked is the file read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(read_err)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(VxpError::SecretFileTooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    toml::from_str(&text).map_err(|e| VxpError::SecretFileParse {
        path: path.to_path_buf(),
        reason: e.message().to_string(),
    })
}

/// The calling system and the agencies it may act for: what every backend call is
/// scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemScope {
    pub system_id: String,
    /// Never empty.
    pub agencies: Vec<AgencyCode>,
}

impl SystemScope {
    pub fn may_act_for(&self, agency: &AgencyCode) -> bool {
        self.agencies.contains(agency)
    }
}

#[derive(Clone, Debug)]
struct SystemEntry {
    secret: Secret,
    scope: SystemScope,
}

/// The systems of a loaded configuration, with their secrets.
#[derive(Clone, Debug, Default)]
pub struct Systems {
    systems: HashMap<String, SystemEntry>,
}

impl Systems {
    /// Systems given directly (tests, or a caller with its own secret storage).
    pub fn from_entries(entries: impl IntoIterator<Item = (SystemScope, Secret)>) -> Self {
        Systems {
            systems: entries
                .into_iter()
                .map(|(scope, secret)| (scope.system_id.clone(), SystemEntry { secret, scope }))
                .collect(),
        }
    }

    pub fn scope(&self, system_id: &str) -> Option<&SystemScope> {
        self.systems.get(system_id).map(|e| &e.scope)
    }
}

impl SecretStore for Systems {
    fn secret(&self, system_id: &str) -> Option<Secret> {
        self.systems.get(system_id).map(|e| e.secret.clone())
    }
}
