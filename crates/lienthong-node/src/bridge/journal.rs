//! The bridge's journal: what it must remember across a crash to send each message to
//! the platform once and to import each platform message once. One JSON record per line,
//! synced before the step it guards; a torn last line (a crash mid-append) is cut at open.
//!
//! - `attempt`: about to send one of our messages, with the timestamp its signed headers
//!   carry; a re-send after a crash reuses it, so the platform sees the SDK's byte-identical
//!   retry and deduplicates it;
//! - `sent`: the platform's DocId for one of our messages;
//! - `importing`: about to admit a platform message, with the creation time given to it,
//!   so that a re-import after a crash has the same content and gets the first receipt;
//! - `imported` / `quarantined`: the outcome, acknowledged on the platform after it.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lienthong_core::UnixMillis;
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    Attempt {
        message: String,
        timestamp: String,
    },
    Sent {
        message: String,
        platform_id: String,
    },
    Importing {
        platform_id: String,
        created_at: UnixMillis,
    },
    Imported {
        platform_id: String,
        id: String,
    },
    Quarantined {
        platform_id: String,
        reason: String,
    },
}

#[derive(Debug, Default)]
struct State {
    attempts: HashMap<String, String>,
    sent: HashMap<String, String>,
    importing: HashMap<String, UnixMillis>,
    imported: HashMap<String, String>,
    quarantined: HashMap<String, String>,
}

impl State {
    fn apply(&mut self, r: Record) {
        match r {
            Record::Attempt { message, timestamp } => {
                self.attempts.insert(message, timestamp);
            }
            Record::Sent {
                message,
                platform_id,
            } => {
                self.sent.insert(message, platform_id);
            }
            Record::Importing {
                platform_id,
                created_at,
            } => {
                self.importing.insert(platform_id, created_at);
            }
            Record::Imported { platform_id, id } => {
                self.imported.insert(platform_id, id);
            }
            Record::Quarantined {
                platform_id,
                reason,
            } => {
                self.quarantined.insert(platform_id, reason);
            }
        }
    }
}

/// The journal file and what it says.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    state: Mutex<State>,
}

/// What became of a platform message the bridge has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Import {
    /// Never seen.
    New,
    /// Being imported when the bridge stopped, with the creation time it was given.
    Started(UnixMillis),
    /// Admitted as our message `id`.
    Imported(String),
    /// Kept aside for operators, with the reason.
    Quarantined(String),
}

impl Journal {
    /// Opens (or creates) the journal at `path`, readable by the node's account only.
    pub fn open(path: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut state = State::default();
        let mut good = 0u64;
        if let Ok(file) = std::fs::File::open(path) {
            let mut reader = std::io::BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader.read_line(&mut line)?;
                if n == 0 {
                    break;
                }
                if !line.ends_with('\n') {
                    tracing::warn!(journal = %path.display(), "cutting a torn last record");
                    break;
                }
                let record: Record = serde_json::from_str(line.trim_end()).map_err(|e| {
                    Error::Config(format!(
                        "{}: a damaged record after byte {good}: {e}; move the file aside to start a new journal (messages may then be sent or imported twice)",
                        path.display()
                    ))
                })?;
                state.apply(record);
                good += n as u64;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(good)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            state: Mutex::new(state),
        })
    }

    fn append(&self, record: Record) -> Result<(), Error> {
        let mut line = serde_json::to_string(&record)
            .map_err(|e| Error::Config(format!("{}: {e}", self.path.display())))?;
        line.push('\n');
        {
            let mut file = self.file.lock().expect("bridge journal");
            file.write_all(line.as_bytes())?;
            file.sync_data()?;
        }
        self.state.lock().expect("bridge journal").apply(record);
        Ok(())
    }

    /// The timestamp to sign `message`'s send with: the first attempt's, or a new one,
    /// recorded before it is used.
    pub fn attempt(&self, message: &str, fresh: impl FnOnce() -> String) -> Result<String, Error> {
        if let Some(t) = self
            .state
            .lock()
            .expect("bridge journal")
            .attempts
            .get(message)
        {
            return Ok(t.clone());
        }
        let timestamp = fresh();
        self.append(Record::Attempt {
            message: message.to_string(),
            timestamp: timestamp.clone(),
        })?;
        Ok(timestamp)
    }

    /// The platform's DocId of our `message`, once sent.
    pub fn sent(&self, message: &str) -> Option<String> {
        self.state
            .lock()
            .expect("bridge journal")
            .sent
            .get(message)
            .cloned()
    }

    pub fn note_sent(&self, message: &str, platform_id: &str) -> Result<(), Error> {
        self.append(Record::Sent {
            message: message.to_string(),
            platform_id: platform_id.to_string(),
        })
    }

    /// What became of platform message `platform_id`.
    pub fn import(&self, platform_id: &str) -> Import {
        let state = self.state.lock().expect("bridge journal");
        if let Some(id) = state.imported.get(platform_id) {
            Import::Imported(id.clone())
        } else if let Some(reason) = state.quarantined.get(platform_id) {
            Import::Quarantined(reason.clone())
        } else if let Some(&at) = state.importing.get(platform_id) {
            Import::Started(at)
        } else {
            Import::New
        }
    }

    pub fn note_importing(&self, platform_id: &str, created_at: UnixMillis) -> Result<(), Error> {
        self.append(Record::Importing {
            platform_id: platform_id.to_string(),
            created_at,
        })
    }

    pub fn note_imported(&self, platform_id: &str, id: &str) -> Result<(), Error> {
        self.append(Record::Imported {
            platform_id: platform_id.to_string(),
            id: id.to_string(),
        })
    }

    pub fn note_quarantined(&self, platform_id: &str, reason: &str) -> Result<(), Error> {
        self.append(Record::Quarantined {
            platform_id: platform_id.to_string(),
            reason: reason.to_string(),
        })
    }
}
