//! `POST /introspect` (RFC 7662) and `POST /revoke` (RFC 7009).
//!
//! A token is told apart by shape: a well-formed opaque refresh token, else a three-part JWT,
//! else nothing. Anything not active is reported as exactly `{"active":false}`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{authenticate, parse_form};
use super::{App, OAuthError, Shared, no_store_json};
use crate::faults::Fault;
use crate::store::{GrantRecord, StoreError};
use crate::tokens::{JwtPolicy, OpaqueParts, ct_eq, sha256_hex, verify_access};

pub(crate) async fn introspect(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = parse_form(&body)?;
        authenticate(&app.config, &headers, &form)?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        // token_type_hint is only a hint (RFC 7662 §2.1); the shape decides.
        Ok::<_, OAuthError>(introspect_token(&app, token).await?)
    }
    .await;
    match result {
        Ok(Some(body)) => no_store_json(StatusCode::OK, body),
        Ok(None) => {
            let body = if app.is(Fault::VerboseInactive) {
                json!({"active": false, "error": "token_not_found"})
            } else {
                json!({"active": false})
            };
            no_store_json(StatusCode::OK, body)
        }
        Err(e) => e.into_response(),
    }
}

fn timestamp(app: &App, t: i64) -> Value {
    if app.is(Fault::StringTimestamps) {
        json!(t.to_string())
    } else {
        json!(t)
    }
}

/// The active introspection body, or `None` for inactive.
async fn introspect_token(app: &App, token: &str) -> Result<Option<Value>, StoreError> {
    let now = crate::now();
    if let Ok(parts) = app.refresh_format.parse(token) {
        return introspect_refresh(app, &parts, now).await;
    }
    // Access tokens are judged by the clock they were issued by (skewed under `skewed-iat`).
    let now = app.access_clock(now);
    let Some(jti) = verify_access(
        token,
        &app.keys,
        app.jwt_policy,
        &app.issuer,
        &app.config.audience,
        now,
    ) else {
        return Ok(None);
    };
    let Some(rec) = app.store.access(&jti).await? else {
        return Ok(None);
    };
    let Some(grant) = live_grant(app, &rec.grant_id).await? else {
        return Ok(None);
    };
    if rec.revoked_at.is_some() || rec.expires_at <= now {
        return Ok(None);
    }
    let mut body = json!({
        "active": true,
        "token_type": "Bearer",
        "scope": rec.scope,
        "client_id": rec.client_id,
        "sub": app.sub_for(&rec.principal).await?,
        "aud": app.config.audience,
        "iss": app.issuer,
        "exp": timestamp(app, rec.expires_at),
        "iat": timestamp(app, rec.issued_at),
        "jti": rec.jti,
    });
    if grant.is_family() {
        body["family_id"] = json!(grant.id);
    }
    if let Some(u) = rec.username {
        body["username"] = json!(u);
    }
    Ok(Some(body))
}

async fn live_grant(app: &App, id: &str) -> Result<Option<GrantRecord>, StoreError> {
    Ok(app
        .store
        .grant(id)
        .await?
        .filter(|g| g.revoked_at.is_none()))
}

async fn introspect_refresh(
    app: &App,
    parts: &OpaqueParts,
    now: i64,
) -> Result<Option<Value>, StoreError> {
    let Some(rec) = app.store.refresh(&parts.public_id).await? else {
        return Ok(None);
    };
    let hash = sha256_hex(parts.secret.as_bytes());
    if !ct_eq(hash.as_bytes(), rec.secret_hash.as_bytes())
        || rec.rotated_at.is_some()
        || rec.revoked_at.is_some()
        || rec.expires_at <= now
    {
        return Ok(None);
    }
    let Some(grant) = live_grant(app, &rec.grant_id).await? else {
        return Ok(None);
    };
    let jti = if app.is(Fault::IntrospectionJtiMismatch) {
        rec.secret_hash[..16].to_owned()
    } else {
        rec.public_id.clone()
    };
    let mut body = json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": rec.scope,
        "client_id": rec.client_id,
        "sub": app.sub_for(&rec.principal).await?,
        "aud": app.config.audience,
        "iss": app.issuer,
        "exp": timestamp(app, rec.expires_at),
        "iat": timestamp(app, rec.issued_at),
        "jti": jti,
        "family_id": grant.id,
    });
    if let Some(u) = rec.username {
        body["username"] = json!(u);
    }
    Ok(Some(body))
}

pub(crate) async fn revoke(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = parse_form(&body)?;
        let client = authenticate(&app.config, &headers, &form)?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        Ok::<_, OAuthError>(revoke_token(&app, &client.id, token).await?)
    }
    .await;
    match result {
        Ok(false) if app.is(Fault::RevokeUnknown400) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request"})),
        )
            .into_response(),
        // RFC 7009 §2.2: 200 whether or not the token was known.
        Ok(_) => {
            let mut resp = Response::new(Body::empty());
            super::no_store(resp.headers_mut());
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// Revokes `token` if it is one of `client_id`'s; returns whether it was.
async fn revoke_token(app: &App, client_id: &str, token: &str) -> Result<bool, StoreError> {
    let now = crate::now();
    if token.starts_with(crate::tokens::API_KEY_PREFIX) {
        // API keys are revocable here too (only by their owner), so "revoked" is reachable.
        return match super::api_keys::live_key(app, token, now).await? {
            Some(rec) if rec.client_id == client_id => {
                app.store
                    .revoke_api_key(&rec.public_id, client_id, now)
                    .await
            }
            _ => Ok(false),
        };
    }
    if let Ok(parts) = app.refresh_format.parse(token) {
        let mut tx = app.store.begin().await?;
        let Some(rec) = tx.refresh(&parts.public_id).await? else {
            return Ok(false);
        };
        let hash = sha256_hex(parts.secret.as_bytes());
        if !ct_eq(hash.as_bytes(), rec.secret_hash.as_bytes()) || rec.client_id != client_id {
            // Another client's token is treated as unknown to this one.
            return Ok(false);
        }
        tx.revoke_refresh(&rec.public_id, now).await?;
        if !app.is(Fault::RevokeKeepsAccess) {
            tx.revoke_grant(&rec.grant_id, now).await?;
        }
        tx.commit().await?;
        return Ok(true);
    }
    // Revocation always verifies strictly; the JWT fault modes are about introspection.
    let Some(jti) = verify_access(
        token,
        &app.keys,
        JwtPolicy::Strict,
        &app.issuer,
        &app.config.audience,
        app.access_clock(now),
    ) else {
        return Ok(false);
    };
    let mut tx = app.store.begin().await?;
    match tx.access(&jti).await? {
        Some(rec) if rec.client_id == client_id => {
            tx.revoke_access(&jti, now).await?;
            tx.commit().await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}
