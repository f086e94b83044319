//! API keys: `POST /api-keys` (issue), `POST /api-keys/validate`, `POST /api-keys/{id}/roll`.
//!
//! A key is `kak_` + public id (16) + secret (32) + checksum (6), the refresh-token shape. Only
//! SHA-256 of the secret is stored. A roll replaces the secret under the same public id; the
//! previous secret keeps working for `api_key_grace_seconds`. The endpoints are
//! client-authenticated like `/token`; a key belongs to the client that created it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{authenticate, parse_form};
use super::{App, OAuthError, Shared, no_store_json};
use crate::faults::Fault;
use crate::store::{ApiKeyRecord, StoreError};
use crate::tokens::{OpaqueFormat, ct_eq, sha256_hex};

/// Longest accepted `name`.
const MAX_NAME_LEN: usize = 200;

fn respond(result: Result<Value, OAuthError>) -> Response {
    match result {
        Ok(body) => no_store_json(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// `POST /api-keys` with `name`: `{"api_key", "id", "client_id"}`.
pub(crate) async fn create(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = parse_form(&body)?;
        let client = authenticate(&app.config, &headers, &form)?;
        let name = form
            .get("name")
            .ok_or_else(|| OAuthError::invalid_request("name is required"))?;
        if name.chars().count() > MAX_NAME_LEN {
            return Err(OAuthError::invalid_request(format!(
                "name is longer than {MAX_NAME_LEN} characters"
            )));
        }
        let now = crate::now();
        let (key, parts) = OpaqueFormat::API_KEY.generate();
        app.store
            .insert_api_key(&ApiKeyRecord {
                public_id: parts.public_id.clone(),
                client_id: client.id.clone(),
                name: name.clone(),
                secret_hash: sha256_hex(parts.secret.as_bytes()),
                previous_secret_hash: None,
                previous_valid_until: None,
                created_at: now,
                rolled_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(json!({"api_key": key, "id": parts.public_id, "client_id": client.id}))
    }
    .await;
    respond(result)
}

/// The record of `presented` if it is a live API key: well-formed (prefix, length, charset,
/// checksum), known, not revoked, and its secret is the current one or the previous one within
/// its grace period.
pub(crate) async fn live_key(
    app: &App,
    presented: &str,
    now: i64,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let Ok(parts) = OpaqueFormat::API_KEY.parse(presented) else {
        return Ok(None);
    };
    let Some(rec) = app.store.api_key(&parts.public_id).await? else {
        return Ok(None);
    };
    if rec.revoked_at.is_some_and(|t| t <= now) {
        return Ok(None);
    }
    let hash = sha256_hex(parts.secret.as_bytes());
    let current = ct_eq(hash.as_bytes(), rec.secret_hash.as_bytes());
    let previous = rec
        .previous_secret_hash
        .as_deref()
        .is_some_and(|p| ct_eq(hash.as_bytes(), p.as_bytes()))
        && (app.is(Fault::RollKeepsOldSecret) || rec.previous_valid_until.is_some_and(|t| now < t));
    Ok((current || previous).then_some(rec))
}

/// `POST /api-keys/validate` with `api_key`: `{"valid": true, "id", "client_id", "name"}` or
/// exactly `{"valid": false}`.
pub(crate) async fn validate(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = parse_form(&body)?;
        authenticate(&app.config, &headers, &form)?;
        let presented = form
            .get("api_key")
            .ok_or_else(|| OAuthError::invalid_request("api_key is required"))?;
        Ok(match live_key(&app, presented, crate::now()).await? {
            Some(rec) => json!({
                "valid": true,
                "id": rec.public_id,
                "client_id": rec.client_id,
                "name": rec.name,
            }),
            None => json!({"valid": false}),
        })
    }
    .await;
    respond(result)
}

fn not_found() -> Response {
    no_store_json(StatusCode::NOT_FOUND, json!({"error": "not_found"}))
}

/// `POST /api-keys/{id}/roll`: `{"api_key", "id", "previous_valid_until"}`; 404 unless the
/// authenticated client owns the (unrevoked) key.
pub(crate) async fn roll(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = parse_form(&body)?;
        let client = authenticate(&app.config, &headers, &form)?;
        let now = crate::now();
        let Some(rec) = app.store.api_key(&id).await? else {
            return Ok(None);
        };
        if rec.client_id != client.id || rec.revoked_at.is_some() {
            return Ok(None);
        }
        let grace = i64::try_from(app.config.api_key_grace_seconds).unwrap_or(i64::MAX / 2);
        let until = now.saturating_add(grace);
        if app.is(Fault::RollChangesPublicId) {
            // A whole new key; the old one keeps working through the grace period, as a
            // correct roll's previous secret would.
            let (key, parts) = OpaqueFormat::API_KEY.generate();
            app.store
                .insert_api_key(&ApiKeyRecord {
                    public_id: parts.public_id.clone(),
                    secret_hash: sha256_hex(parts.secret.as_bytes()),
                    previous_secret_hash: None,
                    previous_valid_until: None,
                    created_at: now,
                    rolled_at: Some(now),
                    revoked_at: None,
                    ..rec
                })
                .await?;
            app.store.revoke_api_key(&id, &client.id, until).await?;
            return Ok(Some(json!({
                "api_key": key,
                "id": parts.public_id,
                "previous_valid_until": until,
            })));
        }
        let secret = crate::tokens::random_base62(crate::tokens::SECRET_LEN);
        let hash = sha256_hex(secret.as_bytes());
        if !app
            .store
            .roll_api_key(&id, &client.id, &hash, until, now)
            .await?
        {
            return Ok(None);
        }
        Ok::<_, OAuthError>(Some(json!({
            "api_key": OpaqueFormat::API_KEY.format(&id, &secret),
            "id": id,
            "previous_valid_until": until,
        })))
    }
    .await;
    match result {
        Ok(Some(body)) => no_store_json(StatusCode::OK, body),
        Ok(None) => not_found(),
        Err(e) => e.into_response(),
    }
}
