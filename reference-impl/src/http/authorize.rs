//! `GET /authorize`: automatic consent for the `login_hint` user (default: the first configured
//! user), PKCE S256 required. Errors about the client or redirect URI are answered directly
//! (never redirected to an unverified URI); the rest go back to the client per RFC 6749 §4.1.2.1,
//! with `iss` per RFC 9207 on success.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::parse_form;
use super::{OAuthError, Shared};
use crate::store::CodeRecord;
use crate::tokens::{parse_scope, random_base62, sha256_hex};

/// Lifetime of an authorization code, seconds.
const CODE_LIFETIME: i64 = 60;

fn redirect(mut url: url::Url, pairs: &[(&str, Option<&str>)]) -> Response {
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(url.as_str()) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(_) => OAuthError::invalid_request("redirect_uri cannot be used").into_response(),
    }
}

/// A valid S256 `code_challenge`: base64url of a SHA-256 digest, 43 characters.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) async fn authorize(State(app): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let params = match parse_form(query.as_deref().unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let get = |k: &str| params.get(k).map(String::as_str);

    let Some(client) = get("client_id").and_then(|id| app.config.client(id)) else {
        return OAuthError::invalid_request("unknown or missing client_id").into_response();
    };
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        Some(_) => {
            return OAuthError::invalid_request("redirect_uri is not registered for this client")
                .into_response();
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return OAuthError::invalid_request("redirect_uri is required").into_response(),
    };
    let Ok(base) = url::Url::parse(&redirect_uri) else {
        return OAuthError::invalid_request("registered redirect_uri is not a URL").into_response();
    };
    let state = get("state");
    let fail = |error: &str, description: &str| {
        redirect(
            base.clone(),
            &[
                ("error", Some(error)),
                ("error_description", Some(description)),
                ("state", state),
                ("iss", Some(&app.issuer)),
            ],
        )
    };

    match get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "response_type is required"),
        Some(_) => return fail("unsupported_response_type", "only response_type=code"),
    }
    let Some(challenge) = get("code_challenge") else {
        return fail("invalid_request", "PKCE code_challenge is required");
    };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if !valid_challenge(challenge) {
        return fail("invalid_request", "code_challenge is malformed");
    }
    let scope = match get("scope") {
        None => "read".to_owned(),
        Some(raw) => match parse_scope(raw) {
            Some(s) => s.join(" "),
            None => return fail("invalid_scope", "known scopes: read, write"),
        },
    };
    let user = match get("login_hint") {
        None => app.config.users.first(),
        Some(name) => app.config.user(name),
    };
    let Some(user) = user else {
        return fail("access_denied", "unknown user");
    };

    let code = random_base62(32);
    let now = crate::now();
    let record = CodeRecord {
        code_hash: sha256_hex(code.as_bytes()),
        client_id: client.id.clone(),
        redirect_uri,
        code_challenge: challenge.to_owned(),
        scope,
        username: user.username.clone(),
        created_at: now,
        expires_at: now + CODE_LIFETIME,
        used_at: None,
        grant_id: None,
    };
    if let Err(e) = app.store.insert_code(&record).await {
        return OAuthError::from(e).into_response();
    }
    redirect(
        base,
        &[
            ("code", Some(&code)),
            ("state", state),
            ("iss", Some(&app.issuer)),
        ],
    )
}
