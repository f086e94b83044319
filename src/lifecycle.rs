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
use crate::target::{Hook, Hooks, Proof, Secret};
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
    /// The marker (boot id or schema version) before the event, if known.
    pub before: Option<String>,
    /// The marker after the event, if known.
    pub after: Option<String>,
    /// Milliseconds of observed downtime, if any was seen.
    pub downtime_ms: Option<u64>,
    /// The proof in words.
    pub proof: String,
}

/// Who performs lifecycle events.
pub enum Lifecycle {
    /// keel's own child process; the admin token authorizes its key-rotation endpoints.
    Reference(Arc<ReferenceIssuer>, Secret),
    /// A target's hooks.
    Hooks {
        /// `[hooks]`.
        hooks: Box<Hooks>,
        /// `[proof]`.
        proof: Proof,
        /// What readiness polling GETs.
        ready_url: String,
    },
}

/// A signing-key event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEvent {
    /// Publish the next key.
    Stage,
    /// Sign with the staged key.
    Activate,
    /// Both at once.
    Rotate,
}

impl KeyEvent {
    fn name(self) -> &'static str {
        match self {
            KeyEvent::Stage => "stage_signing_key",
            KeyEvent::Activate => "activate_signing_key",
            KeyEvent::Rotate => "rotate_signing_key",
        }
    }
}

/// A schema event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaEvent {
    /// One version up.
    Migrate,
    /// One version down.
    Rollback,
}

impl Lifecycle {
    /// Whether this lifecycle can perform `kind` at all.
    pub fn supports(&self, kind: RestartKind) -> Result<(), Problem> {
        match (self, kind) {
            (Lifecycle::Reference(..), _) => Ok(()),
            (Lifecycle::Hooks { hooks, .. }, RestartKind::Graceful) if hooks.restart.is_none() => {
                Err(not_applicable(
                    "the target declares no [hooks.restart], so restarts cannot be triggered",
                ))
            }
            (Lifecycle::Hooks { hooks, .. }, RestartKind::Kill) if hooks.kill.is_none() => {
                Err(not_applicable(
                    "the target declares no [hooks.kill], so a hard kill cannot be triggered",
                ))
            }
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
            Lifecycle::Reference(issuer, _) => {
                let health = format!("{}/health", issuer.base_url());
                let before = read_marker(client, &health, "/boot_id", "boot id").await?;
                let how = issuer
                    .restart(kind == RestartKind::Kill)
                    .await
                    .map_err(|e| error(format!("{event} not applied: {e}")))?;
                wait_ready(client, &health, Duration::from_secs(10)).await?;
                let after = read_marker(client, &health, "/boot_id", "boot id").await?;
                prove_changed(event, "boot id", how, before, after, &health, false)
            }
            Lifecycle::Hooks {
                hooks,
                proof,
                ready_url,
            } => {
                let hook = match kind {
                    RestartKind::Graceful => hooks.restart.as_ref(),
                    RestartKind::Kill => hooks.kill.as_ref(),
                };
                let Some(hook) = hook else {
                    return Err(error("unreachable: hook checked above"));
                };
                let before = match &proof.boot_id_url {
                    Some(u) => {
                        Some(read_marker(client, u, &proof.boot_id_pointer, "boot id").await?)
                    }
                    None => None,
                };
                let downtime = run_hook(event, hook, client, ready_url).await?;
                wait_ready(client, ready_url, hook.ready_timeout).await?;
                let how = hook.describe();
                match (&proof.boot_id_url, before) {
                    (Some(u), Some(before)) => {
                        let after =
                            read_marker(client, u, &proof.boot_id_pointer, "boot id").await?;
                        let mut p = prove_changed(event, "boot id", how, before, after, u, false)?;
                        p.downtime_ms = downtime.map(|d| d.as_millis() as u64);
                        Ok(p)
                    }
                    _ => match downtime {
                        Some(d) => Ok(EventProof {
                            event,
                            how,
                            before: None,
                            after: None,
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

/// Proof that an event happened: the marker it must change (a boot id, a schema version) did.
/// `show_values` puts the values in the proof (a schema version says something; a boot id is
/// random and goes to the ledger only).
fn prove_changed(
    event: &'static str,
    marker: &str,
    how: String,
    before: String,
    after: String,
    url: &str,
    show_values: bool,
) -> Result<EventProof, Problem> {
    if before == after {
        return Err(error(format!(
            "{event} not applied: the {marker} at {url} is unchanged ({before}; {how})"
        )));
    }
    let proof = if show_values {
        format!("{marker} at {url} changed from {before} to {after}")
    } else {
        format!("{marker} at {url} changed")
    };
    Ok(EventProof {
        event,
        how,
        proof,
        before: Some(before),
        after: Some(after),
        downtime_ms: None,
    })
}

/// Reads the `marker` (boot id, schema version) at `pointer` in the JSON document at `url`.
async fn read_marker(
    client: &IssuerClient,
    url: &str,
    pointer: &str,
    marker: &str,
) -> Result<String, Problem> {
    let cannot = |why: String| error(format!("cannot read the {marker}: {why}"));
    let reply = client.get(url).await.map_err(|e| cannot(e.to_string()))?;
    if reply.status != 200 {
        return Err(cannot(reply.describe()));
    }
    let doc = serde_json::Value::Object(reply.json_object().map_err(|e| cannot(e.to_string()))?);
    match doc.pointer(pointer) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(cannot(format!(
            "{url} has no string or number at JSON pointer {pointer}"
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

/// Runs a hook (command or HTTP call) while polling `ready_url`; returns the downtime
/// observed, if any.
async fn run_hook(
    event: &str,
    hook: &Hook,
    client: &IssuerClient,
    ready_url: &str,
) -> Result<Option<Duration>, Problem> {
    let Some(cmd_text) = &hook.run else {
        call_http_hook(event, hook, client).await?;
        return Ok(None);
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(cmd_text)
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
            "{event} hook `{cmd_text}` did not finish within {:?} (set timeout under the hook to allow longer)",
            hook.timeout
        ))
    })?;
    let out = out.map_err(|e| error(format!("{event} hook `{cmd_text}` could not run: {e}")))?;
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
            "{event} hook `{cmd_text}` failed ({}): {}",
            out.status,
            tail.trim()
        )));
    }
    Ok(downtime)
}

/// Calls an HTTP hook; any 2xx is success.
async fn call_http_hook(event: &str, hook: &Hook, client: &IssuerClient) -> Result<(), Problem> {
    let Some(h) = &hook.http else {
        return Err(error(format!("{event} hook has neither run nor http")));
    };
    let bearer = match &h.bearer_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            error(format!(
                "{event} hook: environment variable {var} (its bearer token) is not set"
            ))
        })?),
        None => None,
    };
    let reply = client
        .call(&h.method, &h.url, bearer.as_deref())
        .await
        .map_err(|e| error(format!("{event} hook: {e}")))?;
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(error(format!("{event} hook failed: {}", reply.describe())))
    }
}

impl Lifecycle {
    /// Whether both schema events can be triggered (and proven).
    pub fn supports_schema(&self) -> Result<(), Problem> {
        match self {
            Lifecycle::Reference(..) => Ok(()),
            Lifecycle::Hooks { hooks, proof, .. } => {
                if hooks.migrate.is_none() || hooks.rollback.is_none() {
                    return Err(not_applicable(
                        "the target declares no [hooks.migrate] and [hooks.rollback] pair, so schema changes cannot be triggered",
                    ));
                }
                if proof.schema_version_url.is_none() {
                    return Err(error(
                        "migrations cannot be proven: declare [proof] schema_version_url (a URL reporting the schema version)",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Whether a key event can be triggered; a target with only a one-step hook cannot stage.
    pub fn key_hooks(&self) -> (bool, bool) {
        match self {
            Lifecycle::Reference(..) => (true, true),
            Lifecycle::Hooks { hooks, .. } => (
                hooks.stage_signing_key.is_some() && hooks.activate_signing_key.is_some(),
                hooks.rotate_signing_key.is_some(),
            ),
        }
    }

    /// Triggers a signing-key event. The steps prove it (through the JWKS and new tokens).
    pub async fn key_event(
        &self,
        client: &IssuerClient,
        event: KeyEvent,
    ) -> Result<String, Problem> {
        match self {
            Lifecycle::Reference(issuer, admin) => {
                let path = match event {
                    KeyEvent::Stage => "stage",
                    KeyEvent::Activate => "activate",
                    KeyEvent::Rotate => "rotate",
                };
                let url = format!("{}/admin/keys/{path}", issuer.base_url());
                let reply = client
                    .call("POST", &url, Some(admin.expose()))
                    .await
                    .map_err(|e| error(format!("{} not applied: {e}", event.name())))?;
                if !(200..300).contains(&reply.status) {
                    return Err(error(format!(
                        "{} not applied: {}",
                        event.name(),
                        reply.describe()
                    )));
                }
                Ok(format!("POST /admin/keys/{path}"))
            }
            Lifecycle::Hooks {
                hooks, ready_url, ..
            } => {
                let hook = match event {
                    KeyEvent::Stage => hooks.stage_signing_key.as_ref(),
                    KeyEvent::Activate => hooks.activate_signing_key.as_ref(),
                    KeyEvent::Rotate => hooks.rotate_signing_key.as_ref(),
                };
                let Some(hook) = hook else {
                    return Err(not_applicable(format!(
                        "the target declares no [hooks.{}]",
                        event.name()
                    )));
                };
                run_hook(event.name(), hook, client, ready_url).await?;
                wait_ready(client, ready_url, hook.ready_timeout).await?;
                Ok(hook.describe())
            }
        }
    }

    /// Migrates or rolls back the schema and proves it by the schema version.
    pub async fn schema_event(
        &self,
        client: &IssuerClient,
        event: SchemaEvent,
    ) -> Result<EventProof, Problem> {
        let name = match event {
            SchemaEvent::Migrate => "migrate",
            SchemaEvent::Rollback => "rollback",
        };
        match self {
            Lifecycle::Reference(issuer, _) => {
                let health = format!("{}/health", issuer.base_url());
                let before =
                    read_marker(client, &health, "/schema_version", "schema version").await?;
                let how = issuer
                    .offline(name)
                    .await
                    .map_err(|e| error(format!("{name} not applied: {e}")))?;
                wait_ready(client, &health, Duration::from_secs(10)).await?;
                let after =
                    read_marker(client, &health, "/schema_version", "schema version").await?;
                prove_changed(name, "schema version", how, before, after, &health, true)
            }
            Lifecycle::Hooks {
                hooks,
                proof,
                ready_url,
            } => {
                let hook = match event {
                    SchemaEvent::Migrate => hooks.migrate.as_ref(),
                    SchemaEvent::Rollback => hooks.rollback.as_ref(),
                };
                let Some(hook) = hook else {
                    return Err(not_applicable(format!(
                        "the target declares no [hooks.{name}]"
                    )));
                };
                let Some(url) = &proof.schema_version_url else {
                    return Err(error(format!(
                        "{name} cannot be proven: declare [proof] schema_version_url (a URL reporting the schema version)"
                    )));
                };
                let before =
                    read_marker(client, url, &proof.schema_version_pointer, "schema version")
                        .await?;
                run_hook(name, hook, client, ready_url).await?;
                wait_ready(client, ready_url, hook.ready_timeout).await?;
                let after =
                    read_marker(client, url, &proof.schema_version_pointer, "schema version")
                        .await?;
                prove_changed(
                    name,
                    "schema version",
                    hook.describe(),
                    before,
                    after,
                    url,
                    true,
                )
            }
        }
    }
}

/// The poll loop never ends on its own; `select!` needs a value of the right type.
fn unreachable_poll() -> Result<std::io::Result<std::process::Output>, tokio::time::error::Elapsed>
{
    Ok(Err(std::io::Error::other(
        "readiness poller stopped unexpectedly",
    )))
}
