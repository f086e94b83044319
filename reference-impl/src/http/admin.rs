//! `POST /admin/keys/{stage,activate,rotate}`: signing-key rotation, behind
//! `Authorization: Bearer <admin_token>`. Without an `admin_token` in the configuration the
//! endpoints do not exist (404).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{App, Shared, no_store_json};
use crate::keys::RotateError;
use crate::tokens::ct_eq;

/// The refusal of an admin request (404 without an `admin_token`, 401 without the right
/// bearer token), or `None` if it may run.
fn refusal(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = app.config.admin_token.as_deref() else {
        return Some(
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "not_found"})),
            )
                .into_response(),
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if ct_eq(token.as_bytes(), expected.as_bytes()) => None,
        _ => {
            let mut resp = no_store_json(
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "error_description": "admin bearer token required"}),
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keel-reference-admin\""),
            );
            Some(resp)
        }
    }
}

fn answer(result: Result<Value, RotateError>) -> Response {
    match result {
        Ok(body) => no_store_json(StatusCode::OK, body),
        Err(e @ (RotateError::AlreadyStaged | RotateError::NothingStaged)) => no_store_json(
            StatusCode::CONFLICT,
            json!({"error": "conflict", "error_description": e.to_string()}),
        ),
        Err(e) => {
            tracing::error!(error = %e, "key rotation failed");
            no_store_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "server_error", "error_description": "key rotation failed"}),
            )
        }
    }
}

/// `POST /admin/keys/stage` → `{"kid": NEW}`; 409 if a key is already staged.
pub(crate) async fn stage(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(resp) = refusal(&app, &headers) {
        return resp;
    }
    let result = app.keys.stage(&app.store).await;
    if let Ok(kid) = &result {
        tracing::info!(%kid, "signing key staged");
    }
    answer(result.map(|kid| json!({ "kid": kid })))
}

/// `POST /admin/keys/activate` → `{"kid": NEW, "retired": OLD}`; 409 if nothing is staged.
pub(crate) async fn activate(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(resp) = refusal(&app, &headers) {
        return resp;
    }
    let result = app.keys.activate(&app.store, crate::now()).await;
    answer(activated(result))
}

/// `POST /admin/keys/rotate`: stage and activate in one step, answered like activate.
pub(crate) async fn rotate(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(resp) = refusal(&app, &headers) {
        return resp;
    }
    let result = app.keys.rotate(&app.store, crate::now()).await;
    answer(activated(result))
}

fn activated(result: Result<(String, String), RotateError>) -> Result<Value, RotateError> {
    result.map(|(kid, retired)| {
        tracing::info!(%kid, %retired, "signing key activated");
        json!({ "kid": kid, "retired": retired })
    })
}
