//! `instance.json`: the listen address and issuer identifier fixed on the first start, so that
//! a restart on the same data directory comes back at the same URL.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// File name of the instance record inside the data directory.
pub const INSTANCE_FILE: &str = "instance.json";

/// How long a restart keeps retrying a recorded address that is still in use (the previous
/// process may still be exiting).
const REBIND_PATIENCE: Duration = Duration::from_secs(3);

/// The contents of `instance.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The bound address (port 0 already resolved).
    pub listen: SocketAddr,
    /// The issuer identifier and base URL, no trailing slash.
    pub issuer: String,
}

/// Why the listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceError {
    /// The data directory belongs to an instance at another explicit address.
    #[error(
        "data directory was first served at {recorded}; --listen {requested} names a different \
         address (use port 0 or {recorded})"
    )]
    AddressMismatch {
        /// From `instance.json`.
        recorded: SocketAddr,
        /// From `--listen`.
        requested: SocketAddr,
    },
    /// Reading, writing or binding failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `instance.json` is not valid.
    #[error("invalid {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstanceError {
    let what = what.into();
    move |source| InstanceError::Io { what, source }
}

/// Binds the listener for `data_dir`: the recorded address if there is one, else `requested`
/// (recording the result).
pub async fn bind(
    data_dir: &Path,
    requested: SocketAddr,
) -> Result<(TcpListener, Instance), InstanceError> {
    let path = data_dir.join(INSTANCE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let instance: Instance =
                serde_json::from_slice(&bytes).map_err(|source| InstanceError::Json {
                    path: path.clone(),
                    source,
                })?;
            if requested.port() != 0 && requested != instance.listen {
                return Err(InstanceError::AddressMismatch {
                    recorded: instance.listen,
                    requested,
                });
            }
            let listener = rebind(instance.listen).await?;
            Ok((listener, instance))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let listener = TcpListener::bind(requested)
                .await
                .map_err(io(format!("cannot bind {requested}")))?;
            let listen = listener
                .local_addr()
                .map_err(io("cannot read the bound address"))?;
            let instance = Instance {
                listen,
                issuer: format!("http://{listen}"),
            };
            let text =
                serde_json::to_vec_pretty(&instance).map_err(|source| InstanceError::Json {
                    path: path.clone(),
                    source,
                })?;
            // Write-then-rename so a crash never leaves a half-written record.
            let tmp = data_dir.join(format!("{INSTANCE_FILE}.tmp"));
            std::fs::write(&tmp, text).map_err(io(format!("cannot write {}", tmp.display())))?;
            std::fs::rename(&tmp, &path).map_err(io(format!("cannot write {}", path.display())))?;
            Ok((listener, instance))
        }
        Err(e) => Err(io(format!("cannot read {}", path.display()))(e)),
    }
}

async fn rebind(addr: SocketAddr) -> Result<TcpListener, InstanceError> {
    let deadline = Instant::now() + REBIND_PATIENCE;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(io(format!("cannot bind recorded address {addr}"))(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_zero_is_resolved_once() {
        let dir = tempfile::tempdir().unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (l, first) = bind(dir.path(), any).await.unwrap();
        assert_ne!(first.listen.port(), 0);
        assert_eq!(first.issuer, format!("http://{}", first.listen));
        drop(l);
        let (l, again) = bind(dir.path(), any).await.unwrap();
        assert_eq!(again, first);
        drop(l);
        let (l, same) = bind(dir.path(), first.listen).await.unwrap();
        assert_eq!(same, first);
        drop(l);
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(matches!(
            bind(dir.path(), other).await,
            Err(InstanceError::AddressMismatch { .. })
        ));
    }
}
