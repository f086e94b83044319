//! The HTTP surface: router, shared state, OAuth error responses, and the metadata endpoints
//! (discovery, JWKS, health). The grant logic is in [`token`], introspection and revocation in
//! [`introspect`], the consent endpoint in [`authorize`], client authentication in [`auth`],
//! signing-key rotation in [`admin`], API keys in [`api_keys`].

mod admin;
mod api_keys;
mod auth;
mod authorize;
mod introspect;
mod token;

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::config::Config;
use crate::faults::Fault;
use crate::keys::KeyRing;
use crate::store::{Store, StoreError, WriteTx};
use crate::tokens::{JwtPolicy, OpaqueFormat, sha256_b64url};

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything a handler needs; one per process.
pub struct App {
    /// Issuer identifier = base URL, no trailing slash.
    pub issuer: String,
    /// The loaded `config.toml`.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Signing and verification keys.
    pub keys: KeyRing,
    /// The active fault mode.
    pub fault: Option<Fault>,
    /// New for every process.
    pub boot_id: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Highest applied migration.
    pub schema_version: i64,
    /// The refresh-token format (weakened by some faults).
    pub refresh_format: OpaqueFormat,
    /// JWT verification strictness at introspection (weakened by some faults).
    pub jwt_policy: JwtPolicy,
    /// `memory-idempotency`: `(client_id, Idempotency-Key)` → `(request hash, jti)`.
    pub idempotency_memory: StdMutex<HashMap<(String, String), (String, String)>>,
}

/// How far behind the real clock `skewed-iat` puts access-token times.
const SKEW_SECONDS: i64 = 600;

impl App {
    fn is(&self, fault: Fault) -> bool {
        self.fault == Some(fault)
    }

    /// The clock access tokens are issued and judged by: real time, except ten minutes behind
    /// under `skewed-iat` (a skewed issuer judges its own tokens by the same skewed clock, so
    /// they still live their whole lifetime from its point of view).
    fn access_clock(&self, now: i64) -> i64 {
        if self.is(Fault::SkewedIat) {
            now - SKEW_SECONDS
        } else {
            now
        }
    }

    /// `new-sub-after-restart` derives `sub` from the boot id; otherwise it is the stored uuid.
    fn derived_sub(&self, principal: &str) -> Option<String> {
        self.is(Fault::NewSubAfterRestart).then(|| {
            let mut s = sha256_b64url(format!("{}{principal}", self.boot_id).as_bytes());
            s.truncate(22);
            s
        })
    }

    /// The `sub` of `principal`, outside a transaction.
    async fn sub_for(&self, principal: &str) -> Result<String, StoreError> {
        match self.derived_sub(principal) {
            Some(s) => Ok(s),
            None => self.store.subject(principal).await,
        }
    }

    /// The `sub` of `principal`, inside a write transaction (which holds SQLite's write lock).
    async fn sub_for_tx(
        &self,
        tx: &mut WriteTx<'_>,
        principal: &str,
    ) -> Result<String, StoreError> {
        match self.derived_sub(principal) {
            Some(s) => Ok(s),
            None => tx.subject(principal).await,
        }
    }
}

type Shared = Arc<App>;

/// An OAuth 2.0 error response (RFC 6749 §5.2 shape), also used for 500s.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    pub(crate) fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
    pub(crate) fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }
    pub(crate) fn idempotency_key_reused() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "Idempotency-Key reused with a different request",
        )
    }
    pub(crate) fn invalid_client(d: impl Into<String>, basic_tried: bool) -> Self {
        OAuthError {
            basic_challenge: basic_tried,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal storage error",
        )
    }
}

impl From<jsonwebtoken::errors::Error> for OAuthError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        tracing::error!(error = %e, "signing failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "cannot sign token",
        )
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut resp = (self.status, axum::Json(body)).into_response();
        no_store(resp.headers_mut());
        if self.basic_challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"keel-reference\""),
            );
        }
        resp
    }
}

/// A JSON response with `Cache-Control: no-store` and `Pragma: no-cache`.
fn no_store_json(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    no_store(resp.headers_mut());
    resp
}

/// Builds the router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/health", get(health))
        .route("/authorize", get(authorize::authorize))
        .route("/token", post(token::token))
        .route("/introspect", post(introspect::introspect))
        .route("/revoke", post(introspect::revoke))
        .route("/admin/keys/stage", post(admin::stage))
        .route("/admin/keys/activate", post(admin::activate))
        .route("/admin/keys/rotate", post(admin::rotate))
        .route("/api-keys", post(api_keys::create))
        .route("/api-keys/validate", post(api_keys::validate))
        .route("/api-keys/{id}/roll", post(api_keys::roll))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// Logs method, path (never the query: it can carry codes) and status.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    tracing::info!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found"})),
    )
        .into_response()
}

async fn discovery(State(app): State<Shared>) -> Response {
    let iss = &app.issuer;
    let methods = json!(["client_secret_basic", "client_secret_post"]);
    axum::Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "jwks_uri": format!("{iss}/jwks"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": crate::tokens::SCOPES,
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn jwks(State(app): State<Shared>) -> Response {
    let keys = app.keys.published(crate::now());
    let mut resp = axum::Json(json!({ "keys": keys })).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

async fn health(State(app): State<Shared>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "boot_id": app.boot_id,
        "schema_version": app.schema_version,
        "started_at": app.started_at,
        "pid": std::process::id(),
        "active_kid": app.keys.active_kid(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests;
