//! Lifecycle events and their proof.
//!
//! An event that leaves no proof is an error verdict ("restart not applied"): a hook that did
//! nothing must never let a scenario pass. For the reference issuer the proof is a changed boot
//! id on its health endpoint; for a target it is a changed boot id at the URL the target file
//! names, or else downtime keel observed while polling during the hook.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::IssuerClient;
use crate::reference::ReferenceIssuer;
use crate::target::{Hook, Proof};
use crate::verdict::{Problem, error, not_applicable};

/// How the issuer is brought down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartKind {
    /// A normal restart (SIGTERM for the reference issuer, the `restart` hook for a target).
    Graceful,
    /// A hard kill (SIGKILL for the reference issuer, the `kill` hook for a target).
    Kill,
}

/// What happened during an event, and how keel knows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EventProof {
    /// `restart` or `kill`.
    pub event: &'static str,
    /// How it was triggered.
    pub how: String,
    /// Boot id before, if known.
    pub boot_id_before: Option<String>,
    /// Boot id after, if known.
    pub boot_id_after: Option<String>,
    /// Milliseconds of observed downtime, if any was seen.
    pub downtime_ms: Option<u64>,
    /// The proof in words.
    pub proof: String,
}

/// Who performs lifecycle events.
pub enum Lifecycle {
    /// keel's own child process.
    Reference(Arc<ReferenceIssuer>),
    /// A target's hooks.
    Hooks {
        /// `[hooks.restart]`.
        restart: Option<Hook>,
        /// `[hooks.kill]`.
        kill: Option<Hook>,
        /// `[proof]`.
        proof: Proof,
        /// What readiness polling GETs.
        ready_url: String,
    },
}

impl Lifecycle {
    /// Whether this lifecycle can perform `kind` at all.
    pub fn supports(&self, kind: RestartKind) -> Result<(), Problem> {
        match (self, kind) {
            (Lifecycle::Reference(_), _) => Ok(()),
            (Lifecycle::Hooks { restart: None, .. }, RestartKind::Graceful) => Err(not_applicable(
                "the target declares no [hooks.restart], so restarts cannot be triggered",
            )),
            (Lifecycle::Hooks { kill: None, .. }, RestartKind::Kill) => Err(not_applicable(
                "the target declares no [hooks.kill], so a hard kill cannot be triggered",
            )),
            _ => Ok(()),
        }
    }

    /// Performs a restart and proves it happened.
    pub async fn restart(
        &self,
        client: &IssuerClient,
        kind: RestartKind,
    ) -> Result<EventProof, Problem> {
        self.supports(kind)?;
        let event = match kind {
            RestartKind::Graceful => "restart",
            RestartKind::Kill => "kill",
        };
        match self {
            Lifecycle::Reference(issuer) => {
                let health = format!("{}/health", issuer.base_url());
                let before = boot_id(client, &health, "/boot_id").await?;
                let how = issuer
                    .restart(kind == RestartKind::Kill)
                    .await
                    .map_err(|e| error(format!("{event} not applied: {e}")))?;
                wait_ready(client, &health, Duration::from_secs(10)).await?;
                let after = boot_id(client, &health, "/boot_id").await?;
                prove_by_boot_id(event, how, before, after, &health)
            }
            Lifecycle::Hooks {
                restart,
                kill,
                proof,
                ready_url,
            } => {
                let hook = match kind {
                    RestartKind::Graceful => restart.as_ref(),
                    RestartKind::Kill => kill.as_ref(),
                };
                let Some(hook) = hook else {
                    return Err(error("unreachable: hook checked above"));
                };
                let before = match &proof.boot_id_url {
                    Some(u) => Some(boot_id(client, u, &proof.boot_id_pointer).await?),
                    None => None,
                };
                let downtime = run_hook(event, hook, client, ready_url).await?;
                wait_ready(client, ready_url, hook.ready_timeout).await?;
                let how = format!("hook `{}`", hook.run);
                match (&proof.boot_id_url, before) {
                    (Some(u), Some(before)) => {
                        let after = boot_id(client, u, &proof.boot_id_pointer).await?;
                        let mut p = prove_by_boot_id(event, how, before, after, u)?;
                        p.downtime_ms = downtime.map(|d| d.as_millis() as u64);
                        Ok(p)
                    }
                    _ => match downtime {
                        Some(d) => Ok(EventProof {
                            event,
                            how,
                            boot_id_before: None,
                            boot_id_after: None,
                            downtime_ms: Some(d.as_millis() as u64),
                            proof: format!(
                                "downtime observed: {ready_url} stopped answering for about {} ms while the hook ran",
                                d.as_millis()
                            ),
                        }),
                        None => Err(error(format!(
                            "{event} not applied: the hook exited 0 but {ready_url} answered throughout, and the target declares no [proof] boot_id_url; declare a boot-id URL so keel can prove the restart"
                        ))),
                    },
                }
            }
        }
    }
}

fn prove_by_boot_id(
    event: &'static str,
    how: String,
    before: String,
    after: String,
    url: &str,
) -> Result<EventProof, Problem> {
    if before == after {
        return Err(error(format!(
            "{event} not applied: the boot id at {url} is unchanged ({how})"
        )));
    }
    Ok(EventProof {
        event,
        how,
        proof: format!("boot id at {url} changed"),
        boot_id_before: Some(before),
        boot_id_after: Some(after),
        downtime_ms: None,
    })
}

async fn boot_id(client: &IssuerClient, url: &str, pointer: &str) -> Result<String, Problem> {
    let reply = client
        .get(url)
        .await
        .map_err(|e| error(format!("cannot read the boot id: {e}")))?;
    if reply.status != 200 {
        return Err(error(format!(
            "cannot read the boot id: {}",
            reply.describe()
        )));
    }
    let doc = serde_json::Value::Object(
        reply
            .json_object()
            .map_err(|e| error(format!("cannot read the boot id: {e}")))?,
    );
    match doc.pointer(pointer) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(error(format!(
            "cannot read the boot id: {url} has no string or number at JSON pointer {pointer}"
        ))),
    }
}

/// Polls `url` until it answers with a status below 500, under `deadline`.
pub async fn wait_ready(
    client: &IssuerClient,
    url: &str,
    deadline: Duration,
) -> Result<(), Problem> {
    let start = Instant::now();
    loop {
        let last = match client.get(url).await {
            Ok(r) if r.status < 500 => return Ok(()),
            Ok(r) => r.describe(),
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= deadline {
            return Err(error(format!(
                "the issuer was not ready within {deadline:?} after the event: last poll: {last}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a hook command while polling `ready_url`; returns the downtime observed, if any.
async fn run_hook(
    event: &str,
    hook: &Hook,
    client: &IssuerClient,
    ready_url: &str,
) -> Result<Option<Duration>, Problem> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&hook.run)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(hook.timeout, cmd.output());
    // While the command runs, poll readiness; the cells record the longest outage seen.
    let down_since: std::cell::Cell<Option<Instant>> = std::cell::Cell::new(None);
    let longest: std::cell::Cell<Duration> = std::cell::Cell::new(Duration::ZERO);
    let poll = async {
        loop {
            let up = matches!(client.get(ready_url).await, Ok(r) if r.status < 500);
            match (up, down_since.get()) {
                (false, None) => down_since.set(Some(Instant::now())),
                (true, Some(t)) => {
                    longest.set(longest.get().max(t.elapsed()));
                    down_since.set(None);
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let out = tokio::select! {
        out = output => out,
        () = poll => unreachable_poll(),
    };
    // An outage still in progress when the command returned counts too; readiness is
    // checked right after.
    if let Some(t) = down_since.get() {
        longest.set(longest.get().max(t.elapsed()));
    }
    let downtime = (longest.get() > Duration::ZERO).then(|| longest.get());
    let out = out.map_err(|_| {
        error(format!(
            "{event} hook `{}` did not finish within {:?}",
            hook.run, hook.timeout
        ))
    })?;
    let out = out.map_err(|e| error(format!("{event} hook `{}` could not run: {e}", hook.run)))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(error(format!(
            "{event} hook `{}` failed ({}): {}",
            hook.run,
            out.status,
            tail.trim()
        )));
    }
    Ok(downtime)
}

/// The poll loop never ends on its own; `select!` needs a value of the right type.
fn unreachable_poll() -> Result<std::io::Result<std::process::Output>, tokio::time::error::Elapsed>
{
    Ok(Err(std::io::Error::other(
        "readiness poller stopped unexpectedly",
    )))
}
