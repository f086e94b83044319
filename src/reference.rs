//! The bundled reference issuer as a child process: started with a fresh data directory,
//! restarted for real (SIGTERM or SIGKILL, then a new process on the same data), stopped by
//! its process id.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a fresh process may take to print its URL.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// How long a graceful stop may take before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// Failures managing the reference issuer process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The process could not be spawned.
    #[error("cannot start the reference issuer ({bin}): {cause}")]
    Spawn {
        /// Binary.
        bin: String,
        /// Cause.
        cause: String,
    },
    /// It exited or stayed silent instead of printing its base URL.
    #[error(
        "the reference issuer did not announce its URL within {deadline:?}: {cause} (its log: {log})"
    )]
    NoUrl {
        /// Deadline.
        deadline: Duration,
        /// What happened.
        cause: String,
        /// Log file.
        log: String,
    },
    /// After a restart it came back on another address.
    #[error("the reference issuer came back on {after}, not {before}")]
    Moved {
        /// Before.
        before: String,
        /// After.
        after: String,
    },
    /// Writing its configuration failed.
    #[error("cannot write the reference issuer's configuration in {dir}: {cause}")]
    Config {
        /// Data directory.
        dir: String,
        /// Cause.
        cause: String,
    },
    /// Sending a signal failed.
    #[error("cannot signal the reference issuer (pid {pid}): {cause}")]
    Signal {
        /// Process id.
        pid: u32,
        /// Cause.
        cause: String,
    },
}

/// The access-token lifetime keel configures, in seconds.
pub const ACCESS_LIFETIME: u64 = 600;
/// The API-key grace period keel configures, in seconds (short: ROL-2 waits it out).
pub const API_KEY_GRACE: u64 = 2;

/// Credentials of one client configured in the reference issuer.
#[derive(Clone)]
pub struct ReferenceClient {
    /// Client id.
    pub id: String,
    /// Secret (never printed).
    pub secret: crate::target::Secret,
}

/// The users and clients keel configures.
pub struct ReferenceConfig {
    /// `keel-ci` and `keel-ci-2`.
    pub clients: Vec<ReferenceClient>,
    /// Bearer token of the admin endpoints (key rotation).
    pub admin_token: crate::target::Secret,
    /// The test users.
    pub users: Vec<String>,
}

/// Writes `config.toml` with fresh random client secrets into `data_dir`, so that keel knows
/// the secrets without any being fixed in source.
pub fn write_config(data_dir: &Path) -> Result<ReferenceConfig, ReferenceError> {
    use rand::Rng as _;
    let alphabet = crate::token::checksum::BASE62;
    let mut rng = rand::rng();
    let mut secret = || -> String {
        (0..32)
            .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
            .collect()
    };
    let clients = vec![
        ReferenceClient {
            id: "keel-ci".into(),
            secret: crate::target::Secret::new(secret()),
        },
        ReferenceClient {
            id: "keel-ci-2".into(),
            secret: crate::target::Secret::new(secret()),
        },
    ];
    let users = vec!["alice".to_owned(), "bob".to_owned()];
    let admin_token = crate::target::Secret::new(secret());
    let mut text = format!(
        "# Written by keel for this run.\naudience = \"keel-reference-api\"\naccess_token_lifetime = {ACCESS_LIFETIME}\nrefresh_token_lifetime = 86400\nadmin_token = \"{}\"\nkey_overlap_seconds = {ACCESS_LIFETIME}\napi_key_grace_seconds = {API_KEY_GRACE}\n",
        admin_token.expose()
    );
    for c in &clients {
        text.push_str(&format!(
            "\n[[clients]]\nid = \"{}\"\nsecret = \"{}\"\nredirect_uris = [\"http://127.0.0.1/callback\"]\n",
            c.id,
            c.secret.expose()
        ));
    }
    for u in &users {
        text.push_str(&format!("\n[[users]]\nusername = \"{u}\"\n"));
    }
    std::fs::write(data_dir.join(keel_reference::CONFIG_FILE), text).map_err(|e| {
        ReferenceError::Config {
            dir: data_dir.display().to_string(),
            cause: e.to_string(),
        }
    })?;
    Ok(ReferenceConfig {
        clients,
        admin_token,
        users,
    })
}

/// A running reference issuer.
pub struct ReferenceIssuer {
    bin: PathBuf,
    data_dir: PathBuf,
    fault: Option<String>,
    child: tokio::sync::Mutex<Option<Child>>,
    base_url: String,
}

impl ReferenceIssuer {
    /// Starts `bin serve-reference` on 127.0.0.1, port 0, with `data_dir`.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        fault: Option<&str>,
    ) -> Result<Self, ReferenceError> {
        let (child, url, _) = spawn(bin, data_dir, fault).await?;
        Ok(Self {
            bin: bin.to_owned(),
            data_dir: data_dir.to_owned(),
            fault: fault.map(str::to_owned),
            child: tokio::sync::Mutex::new(Some(child)),
            base_url: url,
        })
    }

    /// The issuer identifier it announced.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The current process id, if running.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(Child::id)
    }

    /// Stops the process: SIGTERM and a grace period (then SIGKILL), or SIGKILL at once.
    pub async fn stop(&self, hard: bool) -> Result<(), ReferenceError> {
        let mut guard = self.child.lock().await;
        if let Some(mut child) = guard.take() {
            stop_child(&mut child, hard).await?;
        }
        Ok(())
    }

    /// Stops the process (gracefully or with SIGKILL) and starts a new one on the same data.
    pub async fn restart(&self, hard: bool) -> Result<String, ReferenceError> {
        let mut guard = self.child.lock().await;
        let how = if hard { "SIGKILL" } else { "SIGTERM" };
        let old_pid = guard.as_ref().and_then(Child::id);
        if let Some(mut child) = guard.take() {
            stop_child(&mut child, hard).await?;
        }
        let (new_pid, took) = self.respawn(&mut guard).await?;
        Ok(format!(
            "{how} to pid {}, new process pid {} announced its URL after {} ms",
            old_pid.map_or("?".into(), |p| p.to_string()),
            new_pid.map_or("?".into(), |p| p.to_string()),
            took.as_millis()
        ))
    }
}

impl ReferenceIssuer {
    /// Starts a new process on the data directory into `slot` (the old one must be stopped)
    /// and checks that it came back on the same address; returns its pid and start-up time.
    async fn respawn(
        &self,
        slot: &mut Option<Child>,
    ) -> Result<(Option<u32>, Duration), ReferenceError> {
        let (child, url, took) = spawn(&self.bin, &self.data_dir, self.fault.as_deref()).await?;
        let pid = child.id();
        *slot = Some(child);
        if url != self.base_url {
            return Err(ReferenceError::Moved {
                before: self.base_url.clone(),
                after: url,
            });
        }
        Ok((pid, took))
    }

    /// Stops the issuer gracefully, runs `keel migrate-reference` or `keel rollback-reference`
    /// on its data directory (with its fault mode), and starts it again.
    pub async fn offline(&self, what: &str) -> Result<String, ReferenceError> {
        let mut guard = self.child.lock().await;
        if let Some(mut child) = guard.take() {
            stop_child(&mut child, false).await?;
        }
        let sub = format!("{what}-reference");
        let mut cmd = Command::new(&self.bin);
        cmd.arg(&sub).arg("--data-dir").arg(&self.data_dir);
        if let Some(f) = &self.fault {
            cmd.arg("--fault").arg(f);
        }
        let out = cmd.output().await.map_err(|e| ReferenceError::Spawn {
            bin: self.bin.display().to_string(),
            cause: e.to_string(),
        });
        // Start again whatever happened, so that a failed migration leaves a running issuer.
        self.respawn(&mut guard).await?;
        let out = out?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            return Err(ReferenceError::Spawn {
                bin: format!("{} {sub}", self.bin.display()),
                cause: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(format!("`keel {sub}`: {stdout}"))
    }
}

impl Drop for ReferenceIssuer {
    fn drop(&mut self) {
        // Last resort (a panic or an early return): never leave an issuer running.
        if let Ok(mut guard) = self.child.try_lock()
            && let Some(child) = guard.as_mut()
        {
            let _ = child.start_kill();
        }
    }
}

async fn stop_child(child: &mut Child, hard: bool) -> Result<(), ReferenceError> {
    let Some(pid) = child.id() else { return Ok(()) };
    let signal = if hard {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    let pid_i32 = i32::try_from(pid).map_err(|e| ReferenceError::Signal {
        pid,
        cause: e.to_string(),
    })?;
    kill(Pid::from_raw(pid_i32), signal).map_err(|e| ReferenceError::Signal {
        pid,
        cause: e.to_string(),
    })?;
    match tokio::time::timeout(STOP_DEADLINE, child.wait()).await {
        Ok(_) => Ok(()),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Ok(())
        }
    }
}

async fn spawn(
    bin: &Path,
    data_dir: &Path,
    fault: Option<&str>,
) -> Result<(Child, String, Duration), ReferenceError> {
    let log_path = data_dir.join("issuer.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| ReferenceError::Spawn {
            bin: bin.display().to_string(),
            cause: format!("log file {}: {e}", log_path.display()),
        })?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve-reference")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir);
    if let Some(f) = fault {
        cmd.arg("--fault").arg(f);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| ReferenceError::Spawn {
        bin: bin.display().to_string(),
        cause: e.to_string(),
    })?;
    let no_url = |cause: String| ReferenceError::NoUrl {
        deadline: START_DEADLINE,
        cause,
        log: log_path.display().to_string(),
    };
    let Some(stdout) = child.stdout.take() else {
        return Err(no_url("no stdout pipe".into()));
    };
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(START_DEADLINE, lines.next_line()).await;
    let url = match first {
        Ok(Ok(Some(line))) if line.starts_with("http") => line.trim().to_owned(),
        Ok(Ok(Some(line))) => return Err(no_url(format!("first line was {line:?}"))),
        Ok(Ok(None)) => {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(no_url(format!("it exited ({status})")));
        }
        Ok(Err(e)) => return Err(no_url(e.to_string())),
        Err(_) => {
            let _ = child.start_kill();
            return Err(no_url("timed out".into()));
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url, started.elapsed()))
}
