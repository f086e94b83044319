//! `POST /token`: the client-credentials, authorization-code (PKCE S256) and refresh-token
//! grants. Every token record is committed (except under `lazy-commit`) before the response.
//!
//! Client-credentials requests may carry an `Idempotency-Key` (IETF httpapi-idempotency-key
//! draft): the first use records `(client_id, key, SHA-256 of the canonical request, jti)` in the
//! same transaction as the token record; a repeat of the same request re-signs the recorded
//! claims (so the JWT is byte-identical while the signing key is the same), and the same key
//! with a different request is refused with 422.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{authenticate, parse_form};
use super::{App, OAuthError, Shared, no_store_json};
use crate::config::Client;
use crate::faults::Fault;
use crate::store::{
    AccessRecord, GrantRecord, KIND_AUTHORIZATION_CODE, KIND_CLIENT_CREDENTIALS, RefreshRecord,
    TokenRecord, WriteTx,
};
use crate::tokens::{
    AccessClaims, OpaqueParts, ct_eq, parse_scope, sha256_b64url, sha256_hex, sign_access,
};

pub(crate) async fn token(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&app, &headers, &body).await {
        Ok(body) => no_store_json(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Value, OAuthError> {
    let form = parse_form(body)?;
    let client = authenticate(&app.config, headers, &form)?;
    match form.get("grant_type").map(String::as_str) {
        None => Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => client_credentials(app, client, &form, headers).await,
        Some("authorization_code") => authorization_code(app, client, &form).await,
        Some("refresh_token") => refresh_token(app, client, &form).await,
        Some(_) => Err(OAuthError::unsupported_grant_type(
            "supported grant types: authorization_code, client_credentials, refresh_token",
        )),
    }
}

fn required<'f>(form: &'f HashMap<String, String>, name: &str) -> Result<&'f str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// The requested scope in canonical form, `read` when absent.
pub(crate) fn requested_scope(raw: Option<&String>) -> Result<Option<String>, OAuthError> {
    match raw {
        None => Ok(None),
        Some(raw) => parse_scope(raw)
            .map(|s| Some(s.join(" ")))
            .ok_or_else(|| OAuthError::invalid_scope("known scopes: read, write")),
    }
}

/// Signs an access token for `grant` with `scope` and returns it with its record.
fn mint_access(
    app: &App,
    grant: &GrantRecord,
    sub: &str,
    scope: &str,
    now: i64,
) -> Result<(String, TokenRecord), OAuthError> {
    let lifetime = i64::try_from(app.config.access_token_lifetime).unwrap_or(i64::MAX / 2);
    let iat = app.access_clock(now);
    let jti = if app.is(Fault::ShortJti) {
        format!(
            "{:03x}",
            rand::Rng::random_range(&mut rand::rng(), 0..0x1000u32)
        )
    } else {
        uuid::Uuid::new_v4().to_string()
    };
    let claims = AccessClaims {
        iss: app.issuer.clone(),
        sub: sub.to_owned(),
        aud: app.config.audience.clone(),
        client_id: (!app.is(Fault::MissingClientId)).then(|| grant.client_id.clone()),
        iat,
        nbf: iat,
        exp: iat + lifetime,
        jti,
        scope: scope.to_owned(),
        family_id: grant.is_family().then(|| grant.id.clone()),
    };
    let jwt = sign_access(&app.keys, &claims)?;
    // The record carries the claims' times, so that a replay (Idempotency-Key) re-signs the
    // same claims and introspection reports what the JWT says.
    let record = AccessRecord {
        jti: claims.jti,
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        principal: grant.principal.clone(),
        username: grant.username.clone(),
        scope: scope.to_owned(),
        issued_at: claims.iat,
        expires_at: claims.exp,
        revoked_at: None,
    };
    Ok((jwt, TokenRecord::Access(record)))
}

/// A new refresh token of `grant`'s family with `scope`.
fn mint_refresh(app: &App, grant: &GrantRecord, scope: &str, now: i64) -> (String, RefreshRecord) {
    let lifetime = i64::try_from(app.config.refresh_token_lifetime).unwrap_or(i64::MAX / 2);
    let (token, parts) = app.refresh_format.generate();
    let record = RefreshRecord {
        public_id: parts.public_id,
        secret_hash: sha256_hex(parts.secret.as_bytes()),
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        principal: grant.principal.clone(),
        username: grant.username.clone(),
        scope: scope.to_owned(),
        issued_at: now,
        expires_at: now + lifetime,
        rotated_at: None,
        replaced_by: None,
        revoked_at: None,
    };
    (token, record)
}

fn success(app: &App, access: String, scope: &str, refresh: Option<String>) -> serde_json::Value {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": app.config.access_token_lifetime,
        "scope": scope,
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    body
}

/// Stores an access-token record: normally through the usual path (buffered under
/// `lazy-commit`), overwriting a colliding `jti` under `short-jti`, and at once when an
/// idempotency record will refer to it.
async fn store_access(
    app: &App,
    tx: &mut WriteTx<'_>,
    record: TokenRecord,
    immediately: bool,
) -> Result<(), OAuthError> {
    match &record {
        TokenRecord::Access(r) if app.is(Fault::ShortJti) => tx.upsert_access(r).await?,
        _ if immediately => tx.insert_token_now(&record).await?,
        _ => tx.insert_token(record).await?,
    }
    Ok(())
}

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The `Idempotency-Key` of the request, if it has one and the header is honoured. The draft
/// makes the value a structured-field string (`"..."`); a bare token is accepted too.
fn idempotency_key(app: &App, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    if app.is(Fault::IdempotencyIgnored) {
        return Ok(None);
    }
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_request("malformed Idempotency-Key header");
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "Idempotency-Key given more than once",
        ));
    }
    let raw = value.to_str().map_err(|_| bad())?.trim();
    let key = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// SHA-256 hex of the canonical request: grant type, client id, then every other form
/// parameter except the client secret, sorted (so the authentication method does not matter).
fn canonical_request_hash(client: &Client, form: &HashMap<String, String>) -> String {
    let mut params: Vec<(&str, &str)> = form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !matches!(*k, "client_secret" | "client_id" | "grant_type"))
        .collect();
    params.sort_unstable();
    let mut canonical = url::form_urlencoded::Serializer::new(String::new());
    canonical.append_pair("grant_type", "client_credentials");
    canonical.append_pair("client_id", &client.id);
    canonical.extend_pairs(params);
    sha256_hex(canonical.finish().as_bytes())
}

/// The recorded `(request_hash, jti)` for this client's key, from the database or (under
/// `memory-idempotency`) from memory.
async fn recorded_idempotency(
    app: &App,
    tx: &mut WriteTx<'_>,
    client_id: &str,
    key: &str,
) -> Result<Option<(String, String)>, OAuthError> {
    if app.is(Fault::MemoryIdempotency) {
        let map = app
            .idempotency_memory
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        return Ok(map.get(&(client_id.to_owned(), key.to_owned())).cloned());
    }
    Ok(tx.idempotency(client_id, key).await?)
}

/// Answers a repeated idempotent request with the same token: the recorded claims, re-signed
/// with the current key.
async fn replay(
    app: &App,
    tx: &mut WriteTx<'_>,
    jti: &str,
) -> Result<serde_json::Value, OAuthError> {
    let Some(rec) = tx.access(jti).await? else {
        tracing::error!("idempotency record refers to a missing access token");
        return Err(OAuthError::from(crate::store::StoreError::Sqlx(
            sqlx::Error::RowNotFound,
        )));
    };
    let claims = AccessClaims {
        iss: app.issuer.clone(),
        sub: app.sub_for_tx(tx, &rec.principal).await?,
        aud: app.config.audience.clone(),
        client_id: (!app.is(Fault::MissingClientId)).then(|| rec.client_id.clone()),
        iat: rec.issued_at,
        nbf: rec.issued_at,
        exp: rec.expires_at,
        jti: rec.jti.clone(),
        scope: rec.scope.clone(),
        family_id: None,
    };
    let jwt = sign_access(&app.keys, &claims)?;
    Ok(success(app, jwt, &rec.scope, None))
}

async fn client_credentials(
    app: &App,
    client: &Client,
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<serde_json::Value, OAuthError> {
    let scope = requested_scope(form.get("scope"))?.unwrap_or_else(|| "read".to_owned());
    let idempotency =
        idempotency_key(app, headers)?.map(|key| (key, canonical_request_hash(client, form)));
    let now = crate::now();
    let principal = format!("client:{}", client.id);
    if let Some((key, hash)) = &idempotency {
        // BEGIN IMMEDIATE serializes this with any concurrent use of the same key.
        let mut tx = app.store.begin().await?;
        if let Some((recorded, jti)) = recorded_idempotency(app, &mut tx, &client.id, key).await? {
            if !ct_eq(recorded.as_bytes(), hash.as_bytes()) {
                return Err(OAuthError::idempotency_key_reused());
            }
            return replay(app, &mut tx, &jti).await;
        }
        return issue_client_credentials(
            app,
            client,
            tx,
            &principal,
            &scope,
            now,
            Some((key, hash)),
        )
        .await;
    }
    let tx = app.store.begin().await?;
    issue_client_credentials(app, client, tx, &principal, &scope, now, None).await
}

async fn issue_client_credentials(
    app: &App,
    client: &Client,
    mut tx: WriteTx<'_>,
    principal: &str,
    scope: &str,
    now: i64,
    idempotency: Option<(&String, &String)>,
) -> Result<serde_json::Value, OAuthError> {
    let grant = GrantRecord {
        id: uuid::Uuid::new_v4().to_string(),
        kind: KIND_CLIENT_CREDENTIALS.to_owned(),
        client_id: client.id.clone(),
        principal: principal.to_owned(),
        username: None,
        scope: scope.to_owned(),
        created_at: now,
        revoked_at: None,
    };
    let sub = app.sub_for_tx(&mut tx, principal).await?;
    let (jwt, record) = mint_access(app, &grant, &sub, scope, now)?;
    let jti = match &record {
        TokenRecord::Access(a) => a.jti.clone(),
        TokenRecord::Refresh(r) => r.public_id.clone(),
    };
    tx.insert_grant(&grant).await?;
    store_access(app, &mut tx, record, idempotency.is_some()).await?;
    let mut remembered = None;
    if let Some((key, hash)) = idempotency {
        if app.is(Fault::MemoryIdempotency) {
            // Recorded before the commit, while this transaction still holds the write lock,
            // so that a concurrent request with the same key finds it.
            let entry = (client.id.clone(), key.clone());
            app.idempotency_memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(entry.clone(), (hash.clone(), jti.clone()));
            remembered = Some(entry);
        } else {
            tx.insert_idempotency(&client.id, key, hash, &jti, now)
                .await?;
        }
    }
    if let Err(e) = tx.commit().await {
        if let Some(entry) = remembered {
            app.idempotency_memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&entry);
        }
        return Err(e.into());
    }
    // RFC 6749 §4.4.3: no refresh token for client credentials.
    Ok(success(app, jwt, scope, None))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn authorization_code(
    app: &App,
    client: &Client,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let code = required(form, "code")?;
    let redirect_uri = required(form, "redirect_uri")?;
    let verifier = required(form, "code_verifier")?;
    let code_hash = sha256_hex(code.as_bytes());
    let now = crate::now();

    let mut tx = app.store.begin().await?;
    let Some(rec) = tx.code(&code_hash).await? else {
        return Err(OAuthError::invalid_grant("unknown authorization code"));
    };
    if rec.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        ));
    }
    if rec.used_at.is_some() {
        // RFC 6749 §4.1.2: deny, and revoke what the first redemption produced.
        if let Some(grant_id) = &rec.grant_id {
            tx.revoke_grant(grant_id, now).await?;
        }
        tx.commit().await?;
        return Err(OAuthError::invalid_grant(
            "authorization code already used; its tokens are revoked",
        ));
    }
    if rec.expires_at <= now {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    if rec.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri does not match"));
    }
    if !valid_verifier(verifier)
        || !ct_eq(
            sha256_b64url(verifier.as_bytes()).as_bytes(),
            rec.code_challenge.as_bytes(),
        )
    {
        return Err(OAuthError::invalid_grant("PKCE verification failed"));
    }

    let principal = format!("user:{}", rec.username);
    let grant = GrantRecord {
        id: uuid::Uuid::new_v4().to_string(),
        kind: KIND_AUTHORIZATION_CODE.to_owned(),
        client_id: client.id.clone(),
        principal: principal.clone(),
        username: Some(rec.username.clone()),
        scope: rec.scope.clone(),
        created_at: now,
        revoked_at: None,
    };
    tx.insert_grant(&grant).await?;
    if !tx.mark_code_used(&code_hash, now, &grant.id).await? {
        // Unreachable while writers are serialized by BEGIN IMMEDIATE; refuse rather than
        // issue twice.
        return Err(OAuthError::invalid_grant("authorization code already used"));
    }
    let sub = app.sub_for_tx(&mut tx, &principal).await?;
    let (jwt, access) = mint_access(app, &grant, &sub, &grant.scope, now)?;
    let (refresh, refresh_rec) = mint_refresh(app, &grant, &grant.scope, now);
    store_access(app, &mut tx, access, false).await?;
    tx.insert_token(TokenRecord::Refresh(refresh_rec)).await?;
    tx.commit().await?;
    Ok(success(app, jwt, &grant.scope, Some(refresh)))
}

/// Checks that `rec` is the token presented (secret hash, in constant time) and belongs to
/// `client`.
fn check_presented(rec: &RefreshRecord, secret: &str, client: &Client) -> Result<(), OAuthError> {
    if !ct_eq(
        sha256_hex(secret.as_bytes()).as_bytes(),
        rec.secret_hash.as_bytes(),
    ) {
        return Err(invalid_refresh());
    }
    if rec.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "refresh token was issued to another client",
        ));
    }
    Ok(())
}

/// For a token that is not rotated out: checks it is still live and returns the scope of the
/// new tokens (the held scope, or the narrower one requested).
fn refreshed_scope(
    rec: &RefreshRecord,
    grant: &GrantRecord,
    requested: Option<String>,
    now: i64,
) -> Result<String, OAuthError> {
    if rec.revoked_at.is_some() || grant.revoked_at.is_some() || rec.expires_at <= now {
        return Err(invalid_refresh());
    }
    match requested {
        None => Ok(rec.scope.clone()),
        Some(req) => {
            let held: Vec<&str> = rec.scope.split(' ').collect();
            if !req.split(' ').all(|s| held.contains(&s)) {
                return Err(OAuthError::invalid_scope(
                    "requested scope exceeds the original grant",
                ));
            }
            Ok(req)
        }
    }
}

fn invalid_refresh() -> OAuthError {
    OAuthError::invalid_grant("refresh token is invalid")
}

/// A rotated-out token came back (RFC 9700 §4.14.2): revoke its family and refuse. Always
/// returns an error; the `Ok` type only lets callers `return` it directly.
async fn reject_reuse(
    app: &App,
    mut tx: WriteTx<'_>,
    rec: &RefreshRecord,
    grant: &GrantRecord,
    now: i64,
) -> Result<serde_json::Value, OAuthError> {
    if app.is(Fault::ReuseNotDetected) {
        return Err(invalid_refresh());
    }
    let families = if app.is(Fault::RevokeAllFamilies) {
        tx.family_ids_of_client(&grant.client_id).await?
    } else if app.is(Fault::NewFamilyOnRefresh) {
        // Each rotation moved the chain to a new family, so the replayed token's own family no
        // longer holds the live token: follow the successors and revoke their families too.
        let mut ids = vec![grant.id.clone()];
        let mut seen = std::collections::HashSet::new();
        let mut next = rec.replaced_by.clone();
        while let Some(public_id) = next {
            if !seen.insert(public_id.clone()) {
                break;
            }
            let Some(successor) = tx.refresh(&public_id).await? else {
                break;
            };
            if !ids.contains(&successor.grant_id) {
                ids.push(successor.grant_id.clone());
            }
            next = successor.replaced_by;
        }
        ids
    } else {
        vec![grant.id.clone()]
    };
    for id in &families {
        tx.revoke_grant(id, now).await?;
    }
    tx.commit().await?;
    tracing::warn!(family_id = %grant.id, revoked = families.len(), "refresh token reuse; family revoked");
    Err(OAuthError::invalid_grant(
        "refresh token reuse detected; the token family is revoked",
    ))
}

async fn refresh_token(
    app: &App,
    client: &Client,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let presented = required(form, "refresh_token")?;
    let requested = requested_scope(form.get("scope"))?;
    let parts = app
        .refresh_format
        .parse(presented)
        .map_err(|_| invalid_refresh())?;
    let now = crate::now();
    if app.is(Fault::RefreshRace) {
        return refresh_token_racy(app, client, &parts, requested, now).await;
    }

    let mut tx = app.store.begin().await?;
    let rec = tx
        .refresh(&parts.public_id)
        .await?
        .ok_or_else(invalid_refresh)?;
    check_presented(&rec, &parts.secret, client)?;
    let grant = tx.grant(&rec.grant_id).await?.ok_or_else(invalid_refresh)?;
    if rec.rotated_at.is_some() {
        return reject_reuse(app, tx, &rec, &grant, now).await;
    }
    let scope = refreshed_scope(&rec, &grant, requested, now)?;

    let family = if app.is(Fault::NewFamilyOnRefresh) {
        let fresh = GrantRecord {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: now,
            revoked_at: None,
            ..grant
        };
        tx.insert_grant(&fresh).await?;
        fresh
    } else {
        grant
    };
    let (new_refresh, new_rec) = mint_refresh(app, &family, &scope, now);
    if !tx
        .mark_rotated(&rec.public_id, now, &new_rec.public_id)
        .await?
    {
        return Err(invalid_refresh());
    }
    let sub = app.sub_for_tx(&mut tx, &family.principal).await?;
    let (jwt, access) = mint_access(app, &family, &sub, &scope, now)?;
    store_access(app, &mut tx, access, false).await?;
    tx.insert_token(TokenRecord::Refresh(new_rec)).await?;
    tx.commit().await?;
    Ok(success(app, jwt, &scope, Some(new_refresh)))
}

/// `refresh-race`: the check-then-act rotation the atomic path exists to prevent. The token is
/// read and checked outside any write transaction, then (after a pause that lets concurrent
/// requests pass the same check) marked rotated without looking at the rows affected, and the
/// new tokens are issued in a separate transaction.
async fn refresh_token_racy(
    app: &App,
    client: &Client,
    parts: &OpaqueParts,
    requested: Option<String>,
    now: i64,
) -> Result<serde_json::Value, OAuthError> {
    let rec = app
        .store
        .refresh(&parts.public_id)
        .await?
        .ok_or_else(invalid_refresh)?;
    check_presented(&rec, &parts.secret, client)?;
    let grant = app
        .store
        .grant(&rec.grant_id)
        .await?
        .ok_or_else(invalid_refresh)?;
    if rec.rotated_at.is_some() {
        // Sequential reuse is still detected; only the concurrent window is open.
        let tx = app.store.begin().await?;
        return reject_reuse(app, tx, &rec, &grant, now).await;
    }
    let scope = refreshed_scope(&rec, &grant, requested, now)?;
    tokio::time::sleep(RACE_WINDOW).await;

    let (new_refresh, new_rec) = mint_refresh(app, &grant, &scope, now);
    let mut tx = app.store.begin().await?;
    // Deliberately unchecked: another request may have rotated it meanwhile.
    let _rotated_here = tx
        .mark_rotated(&rec.public_id, now, &new_rec.public_id)
        .await?;
    tx.commit().await?;

    let mut tx = app.store.begin().await?;
    let sub = app.sub_for_tx(&mut tx, &grant.principal).await?;
    let (jwt, access) = mint_access(app, &grant, &sub, &scope, now)?;
    store_access(app, &mut tx, access, false).await?;
    tx.insert_token(TokenRecord::Refresh(new_rec)).await?;
    tx.commit().await?;
    Ok(success(app, jwt, &scope, Some(new_refresh)))
}

/// How long `refresh-race` waits between its check and its update, so that concurrent
/// refreshes of one token reliably all pass the check.
const RACE_WINDOW: Duration = Duration::from_millis(100);
