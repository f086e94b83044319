//! The issuer's configuration: `config.toml` in the data directory.
//!
//! keel usually writes this file itself (serializing [`Config`]) before the first start; when it
//! is absent the issuer writes defaults with freshly generated client secrets.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tokens::random_base62;

/// The whole `config.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `aud` claim of every access token.
    pub audience: String,
    /// Access-token lifetime in seconds.
    #[serde(default = "default_access_lifetime")]
    pub access_token_lifetime: u64,
    /// Refresh-token lifetime in seconds.
    #[serde(default = "default_refresh_lifetime")]
    pub refresh_token_lifetime: u64,
    /// Registered confidential clients; every client may use every grant.
    #[serde(default)]
    pub clients: Vec<Client>,
    /// Users that `/authorize` consents for automatically.
    #[serde(default)]
    pub users: Vec<User>,
    /// Bearer token for the `/admin/*` endpoints; without it they answer 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// How long (seconds) a retired signing key stays in the JWKS and keeps verifying after the
    /// next key is activated; `None` means [`Config::access_token_lifetime`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_overlap_seconds: Option<u64>,
    /// How long (seconds) an API key's previous secret keeps working after a roll.
    #[serde(default = "default_api_key_grace")]
    pub api_key_grace_seconds: u64,
}

/// A registered confidential client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// The client secret, compared in constant time.
    pub secret: String,
    /// Redirect URIs accepted by `/authorize`, compared exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// A resource owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name, given to `/authorize` as `login_hint`.
    pub username: String,
}

fn default_access_lifetime() -> u64 {
    600
}

fn default_refresh_lifetime() -> u64 {
    86400
}

fn default_api_key_grace() -> u64 {
    60
}

/// Why the configuration could not be loaded or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Reading or writing the file failed.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("invalid configuration in {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: Box<toml::de::Error>,
    },
    /// Serializing the defaults failed (should not happen).
    #[error("cannot serialize the default configuration: {0}")]
    Serialize(#[from] toml::ser::Error),
    /// The file parsed but is inconsistent.
    #[error("invalid configuration in {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Default for Config {
    /// Two clients (`keel-ci`, `keel-ci-2`) with random 32-character base62 secrets, and two
    /// users (`alice`, `bob`).
    fn default() -> Self {
        let client = |id: &str| Client {
            id: id.to_owned(),
            secret: random_base62(32),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
        };
        Config {
            audience: "keel-reference-api".to_owned(),
            access_token_lifetime: default_access_lifetime(),
            refresh_token_lifetime: default_refresh_lifetime(),
            clients: vec![client("keel-ci"), client("keel-ci-2")],
            users: vec![
                User {
                    username: "alice".to_owned(),
                },
                User {
                    username: "bob".to_owned(),
                },
            ],
            admin_token: None,
            key_overlap_seconds: None,
            api_key_grace_seconds: default_api_key_grace(),
        }
    }
}

impl Config {
    /// Reads `path`, writing [`Config::default`] there first if the file does not exist.
    pub fn load_or_init(path: &Path) -> Result<Config, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        if !path.exists() {
            let text = toml::to_string_pretty(&Config::default())?;
            std::fs::write(path, text).map_err(io)?;
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        config.validate().map_err(|reason| ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.users.is_empty() {
            return Err("at least one user is required".to_owned());
        }
        if self.access_token_lifetime == 0 || self.refresh_token_lifetime == 0 {
            return Err("token lifetimes must be positive".to_owned());
        }
        if self.admin_token.as_deref() == Some("") {
            return Err("admin_token must not be empty (omit it to disable /admin)".to_owned());
        }
        let mut ids = std::collections::HashSet::new();
        for c in &self.clients {
            if !ids.insert(c.id.as_str()) {
                return Err(format!("duplicate client id {:?}", c.id));
            }
        }
        let mut names = std::collections::HashSet::new();
        for u in &self.users {
            if !names.insert(u.username.as_str()) {
                return Err(format!("duplicate username {:?}", u.username));
            }
        }
        Ok(())
    }

    /// The client with this id, if registered.
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Seconds a retired signing key keeps being published and verifying.
    pub fn key_overlap(&self) -> u64 {
        self.key_overlap_seconds
            .unwrap_or(self.access_token_lifetime)
    }

    /// The user with this name, if configured.
    pub fn user(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip_and_lifetimes_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let written = Config::load_or_init(&path).unwrap();
        assert_eq!(written.clients.len(), 2);
        assert_eq!(written.clients[0].secret.len(), 32);
        assert_ne!(written.clients[0].secret, written.clients[1].secret);
        assert_eq!(Config::load_or_init(&path).unwrap(), written);

        let minimal = "audience = \"a\"\n[[users]]\nusername = \"u\"\n";
        let c: Config = toml::from_str(minimal).unwrap();
        assert_eq!(c.access_token_lifetime, 600);
        assert_eq!(c.refresh_token_lifetime, 86400);
        assert_eq!(c.admin_token, None);
        assert_eq!(c.key_overlap(), 600);
        assert_eq!(c.api_key_grace_seconds, 60);
        let text = "audience = \"a\"\naccess_token_lifetime = 30\nadmin_token = \"t\"\n\
                    key_overlap_seconds = 5\napi_key_grace_seconds = 7\n[[users]]\nusername = \"u\"\n";
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.admin_token.as_deref(), Some("t"));
        assert_eq!(c.key_overlap(), 5);
        assert_eq!(c.api_key_grace_seconds, 7);
        let c: Config = toml::from_str("audience = \"a\"\naccess_token_lifetime = 30\n").unwrap();
        assert_eq!(c.key_overlap(), 30);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = "audience = \"a\"\nsurprise = 1\n";
        assert!(toml::from_str::<Config>(text).is_err());
    }
}
