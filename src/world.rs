//! The cucumber world: one per scenario, holding the tokens and observations of that scenario.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::context::Context;
use crate::identity::{self, Identity};
use crate::issuer::{self, Held};
use crate::verdict::{Problem, error, fail};

/// The tokens a scenario can refer to by name in its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, cucumber::Parameter)]
#[param(
    name = "token",
    regex = "access token|user access token|refresh token|refreshed access token|refreshed refresh token|other refresh token|second access token|API key|rolled API key"
)]
pub enum TokenName {
    /// From the client-credentials grant.
    Access,
    /// The access token issued with the refresh token to the test user.
    UserAccess,
    /// The test user's refresh token.
    Refresh,
    /// The access token from the last refresh.
    RefreshedAccess,
    /// The refresh token from the last refresh (the same one under a `reuse` policy).
    RefreshedRefresh,
    /// A refresh token of a second, independent family.
    OtherRefresh,
    /// A second client-credentials access token (after an event, or a repeated request).
    SecondAccess,
    /// An API key.
    ApiKey,
    /// The API key after a roll of its secret.
    RolledApiKey,
}

impl std::str::FromStr for TokenName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "access token" => TokenName::Access,
            "user access token" => TokenName::UserAccess,
            "refresh token" => TokenName::Refresh,
            "refreshed access token" => TokenName::RefreshedAccess,
            "refreshed refresh token" => TokenName::RefreshedRefresh,
            "other refresh token" => TokenName::OtherRefresh,
            "second access token" => TokenName::SecondAccess,
            "API key" => TokenName::ApiKey,
            "rolled API key" => TokenName::RolledApiKey,
            other => return Err(format!("unknown token name {other:?}")),
        })
    }
}

impl TokenName {
    /// The words used in feature files.
    pub fn words(self) -> &'static str {
        match self {
            TokenName::Access => "access token",
            TokenName::UserAccess => "user access token",
            TokenName::Refresh => "refresh token",
            TokenName::RefreshedAccess => "refreshed access token",
            TokenName::RefreshedRefresh => "refreshed refresh token",
            TokenName::OtherRefresh => "other refresh token",
            TokenName::SecondAccess => "second access token",
            TokenName::ApiKey => "API key",
            TokenName::RolledApiKey => "rolled API key",
        }
    }
}

/// State of one scenario.
#[derive(cucumber::World)]
#[world(init = Self::new)]
pub struct KeelWorld {
    /// The run context (None only if keel's runner was bypassed).
    ctx: Option<Arc<Context>>,
    /// Tokens by name.
    pub tokens: BTreeMap<TokenName, Held>,
    /// Identities recorded before an event.
    pub recorded: BTreeMap<TokenName, Identity>,
    /// The JWKS recorded before an event.
    pub jwks_before: Option<Value>,
    /// The identity ledger (fingerprints, never tokens).
    pub ledger: Vec<Value>,
    /// SHOULD-level findings.
    pub warnings: Vec<String>,
    /// Proof of each event.
    pub proofs: Vec<String>,
    /// Whether the scenario runs alone (`@serial`), set by the before hook.
    pub serial: bool,
    /// When the scenario started, set by the before hook.
    pub started: Option<std::time::Instant>,
    /// Observations of the last chain of refreshes.
    pub chain: Vec<crate::steps::refresh::Link>,
    /// Replies of the last replay or race, as (status, OAuth error code, refresh-token fingerprint).
    pub replies: Vec<(u16, Option<String>, Option<crate::issuer::Held>)>,
    /// The `Date` header and `expires_in` of the response that issued each token.
    pub issued_with: BTreeMap<TokenName, (Option<String>, Option<i64>)>,
    /// Key-rotation state: the kid new tokens carried before the rotation began, the JWKS then,
    /// and whether the target could only rotate in one step.
    pub rotation: Option<Rotation>,
    /// The Idempotency-Key of the scenario.
    pub idempotency_key: Option<String>,
    /// Token ids of a bulk issuance.
    pub jtis: Vec<String>,
    /// Public id of the API key (from the issue response).
    pub api_key_id: Option<String>,
    /// The scenario's own reference issuer (`@isolated`); dropped with the world.
    pub isolated: Option<crate::run::IsolatedIssuer>,
    /// Why the before hook could not set the scenario up.
    pub setup_error: Option<String>,
    /// Migrations minus rollbacks this scenario applied; the after hook migrates back up a
    /// scenario that stopped while rolled back, so one failure does not cascade.
    pub schema_balance: i32,
}

/// What keel knew when a signing-key rotation began.
#[derive(Clone, Debug)]
pub struct Rotation {
    /// The kid new tokens carried.
    pub kid_before: String,
    /// The JWKS.
    pub jwks_before: Value,
    /// Only a one-step rotation hook exists.
    pub one_step: bool,
    /// The kid the stage added, if known.
    pub staged_kid: Option<String>,
    /// The JWKS key that verified new tokens before the rotation.
    pub key_before: Option<Value>,
}

impl std::fmt::Debug for KeelWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeelWorld")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl KeelWorld {
    fn new() -> Self {
        Self {
            ctx: crate::context::current(),
            tokens: BTreeMap::new(),
            recorded: BTreeMap::new(),
            jwks_before: None,
            ledger: Vec::new(),
            warnings: Vec::new(),
            proofs: Vec::new(),
            serial: false,
            started: None,
            chain: Vec::new(),
            replies: Vec::new(),
            issued_with: BTreeMap::new(),
            rotation: None,
            idempotency_key: None,
            jtis: Vec::new(),
            api_key_id: None,
            isolated: None,
            setup_error: None,
            schema_balance: 0,
        }
    }

    /// Replaces the run context (an `@isolated` scenario's own issuer).
    pub fn set_ctx(&mut self, ctx: Arc<Context>) {
        self.ctx = Some(ctx);
    }

    /// The run context.
    pub fn ctx(&self) -> Result<Arc<Context>, Problem> {
        self.ctx
            .clone()
            .ok_or_else(|| error("no keel run context: scenarios must be run by `keel run`"))
    }

    /// A token the scenario holds, or an error naming the missing Given step.
    pub fn token(&self, name: TokenName) -> Result<Held, Problem> {
        self.tokens.get(&name).cloned().ok_or_else(|| {
            error(format!(
                "the scenario refers to the {} but no earlier step obtained one",
                name.words()
            ))
        })
    }

    /// Appends an entry to the ledger.
    pub fn note(&mut self, entry: Value) {
        self.ledger.push(entry);
    }

    /// Introspects `name` and records what was seen in the ledger.
    pub async fn observe(
        &mut self,
        name: TokenName,
        step: &str,
    ) -> Result<(Identity, Option<bool>), Problem> {
        let ctx = self.ctx()?;
        let held = self.token(name)?;
        if held.kind == issuer::TokenKind::Refresh && !ctx.introspects_refresh_tokens {
            return Err(crate::verdict::not_applicable(
                "the target declares that introspection does not answer for refresh tokens ([capabilities] refresh_token_introspection = false)",
            ));
        }
        let hint = match held.kind {
            issuer::TokenKind::Access => "access_token",
            issuer::TokenKind::Refresh => "refresh_token",
            issuer::TokenKind::ApiKey => {
                let valid = issuer::validate_api_key(&ctx, &held.value).await?;
                let mut id = Identity::new();
                if let Some(v) = valid.get("id") {
                    id.insert("validation.id".into(), v.clone());
                }
                if let Some(v) = valid.get("client_id") {
                    id.insert("validation.client_id".into(), v.clone());
                }
                let active = valid.get("valid").and_then(Value::as_bool);
                self.note(json!({"step": step, "token": held.fingerprint, "name": name.words(), "active": active, "identity": id}));
                return Ok((id, active));
            }
        };
        let intro = issuer::introspect(&ctx, &held.value, Some(hint)).await?;
        let id = identity::of(&ctx, &held, Some(&intro.body));
        self.note(json!({
            "step": step,
            "token": held.fingerprint,
            "name": name.words(),
            "active": intro.active,
            "identity": id,
        }));
        Ok((id, intro.active))
    }

    /// Fails unless `name` is active now.
    pub async fn expect_active(
        &mut self,
        name: TokenName,
        step: &str,
    ) -> Result<Identity, Problem> {
        let (id, active) = self.observe(name, step).await?;
        match active {
            Some(true) => Ok(id),
            Some(false) => Err(fail(format!(
                "expected the {} to be active ({step}), introspection says active: false",
                name.words()
            ))),
            None => Err(fail(format!(
                "expected the {} to be active ({step}), introspection has no boolean \"active\"",
                name.words()
            ))),
        }
    }
}
