//! The run context: everything a scenario needs to reach the issuer, shared by all worlds.
//!
//! cucumber builds each world with no arguments, so the context of the current run is held in a
//! process-wide slot ([`install`] / [`current`]). Runs in one process are serialized by
//! [`RUN_LOCK`].

use std::sync::{Arc, Mutex, RwLock};

use crate::client::IssuerClient;
use crate::discovery::Resolved;
use crate::lifecycle::Lifecycle;
use crate::target::{AccessTokenFormat, AuthMethod, Secret, TokenFormat, UserTokens};
use crate::verdict::ScenarioRecord;

/// Client credentials.
#[derive(Clone, Debug)]
pub struct Creds {
    /// Client id.
    pub id: String,
    /// Secret.
    pub secret: Secret,
    /// How to send them.
    pub method: AuthMethod,
    /// Scope for client-credentials requests.
    pub scope: Option<String>,
    /// Extra token-request parameters.
    pub params: Vec<(String, String)>,
    /// (private_key_jwt) Algorithm and key id of the client assertion.
    pub assertion: Option<(String, Option<String>)>,
}

impl Creds {
    /// Credentials from a target file's client section and its secret.
    pub fn from_section(c: &crate::target::ClientSection, secret: Secret) -> Creds {
        Creds {
            id: c.id.clone(),
            secret,
            method: c.auth_method,
            scope: c.scope.clone(),
            params: c
                .token_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            assertion: (c.auth_method == AuthMethod::PrivateKeyJwt)
                .then(|| (c.signing_alg.clone().unwrap_or_default(), c.key_id.clone())),
        }
    }
}

/// Everything shared by the scenarios of one run.
pub struct Context {
    /// HTTP.
    pub client: IssuerClient,
    /// Endpoints.
    pub endpoints: Resolved,
    /// The primary client.
    pub creds: Creds,
    /// Declared access-token format (None: read what comes).
    pub access_format: Option<AccessTokenFormat>,
    /// Declared refresh-token format.
    pub refresh_format: Option<TokenFormat>,
    /// A second client, for requirements that compare two principals.
    pub second_creds: Option<Creds>,
    /// The client that obtains, refreshes and revokes user tokens, when not the main one.
    pub user_client: Option<Creds>,
    /// Declared access-token lifetime.
    pub access_lifetime: Option<std::time::Duration>,
    /// Allowed distance between `iat` and the response's `Date`.
    pub clock_skew: std::time::Duration,
    /// Whether `Idempotency-Key` is honoured on client credentials.
    pub idempotency: bool,
    /// The API-key resource and its format.
    pub api_keys: Option<(crate::target::ApiKeys, Option<TokenFormat>)>,
    /// Where each identity reference is exposed (`[identity]`).
    pub identity: std::collections::BTreeMap<String, crate::target::Location>,
    /// Requirement ids the expectations file lists (for the progress label).
    pub expected_reqs: Vec<String>,
    /// Whether refresh tokens can be introspected.
    pub introspects_refresh_tokens: bool,
    /// Declared refresh policy.
    pub refresh_policy: Option<crate::target::RefreshPolicy>,
    /// How user tokens are obtained.
    pub user_tokens: Option<UserTokens>,
    /// Restarts and their proof.
    pub lifecycle: Lifecycle,
    /// Key for token fingerprints.
    pub fingerprint_key: [u8; 32],
    /// Scenario outcomes, in completion order.
    pub results: Mutex<Vec<ScenarioRecord>>,
    /// Whether progress lines are printed.
    pub progress: bool,
    /// Total selected scenarios, for progress.
    pub total: usize,
    /// How to start more reference issuers (reference runs only).
    pub reference_spawn: Option<crate::run::ReferenceSpawn>,
}

impl Context {
    /// The client for user tokens: `[user_tokens]`'s own, else the main one.
    pub fn user_creds(&self) -> &Creds {
        self.user_client.as_ref().unwrap_or(&self.creds)
    }

    /// `text` with every secret and token keel knows replaced by its fingerprint, and anything
    /// shaped like a JWT or a prefixed token masked: an issuer may echo credentials or tokens in
    /// an error description, and reports must never carry them.
    pub fn redact(&self, text: &str, tokens: &[&str]) -> String {
        use base64::Engine as _;
        let mut out = text.to_owned();
        let secret = self.creds.secret.expose();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", self.creds.id));
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let mut known: Vec<&str> = tokens.to_vec();
        known.extend([secret, basic.as_str(), encoded.as_str()]);
        known.retain(|k| k.len() >= 6);
        // Longest first, so that a token containing another is replaced whole.
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
        for k in known {
            if out.contains(k) {
                out = out.replace(k, &format!("[redacted {}]", self.fingerprint(k)));
            }
        }
        let jwt = regex::Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*").ok();
        if let Some(re) = jwt {
            out = re.replace_all(&out, "[redacted JWT]").into_owned();
        }
        if let Some(crate::target::TokenFormat::Prefixed(f)) = &self.refresh_format
            && let Ok(re) =
                regex::Regex::new(&format!(r"{}[0-9A-Za-z_]{{8,}}", regex::escape(&f.prefix)))
        {
            out = re.replace_all(&out, "[redacted token]").into_owned();
        }
        out
    }

    /// A keyed fingerprint of a token or secret: safe to print, stable within a run.
    pub fn fingerprint(&self, secret: &str) -> String {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.fingerprint_key);
        let tag = aws_lc_rs::hmac::sign(&key, secret.as_bytes());
        let hex: String = tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("fp:{hex}")
    }
}

static CURRENT: RwLock<Option<Arc<Context>>> = RwLock::new(None);

/// Serializes runs within one process.
pub static RUN_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes `ctx` the context of the current run.
pub fn install(ctx: Arc<Context>) {
    if let Ok(mut slot) = CURRENT.write() {
        *slot = Some(ctx);
    }
}

/// Clears the current context.
pub fn clear() {
    if let Ok(mut slot) = CURRENT.write() {
        *slot = None;
    }
}

/// The context of the current run, if one is installed.
pub fn current() -> Option<Arc<Context>> {
    CURRENT.read().ok().and_then(|slot| slot.clone())
}
