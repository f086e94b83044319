//! Deterministic issuance: Idempotency-Key, and uniqueness of token ids and subjects.

use cucumber::{then, when};
use futures::StreamExt as _;
use serde_json::json;

use crate::issuer::{self, oauth_error};
use crate::token::jwt;
use crate::verdict::{Problem, error, fail, not_applicable};
use crate::world::{KeelWorld, TokenName};

fn require_idempotency(w: &KeelWorld) -> Result<(), Problem> {
    if w.ctx()?.idempotency {
        Ok(())
    } else {
        Err(not_applicable(
            "the target does not declare [capabilities] idempotency = true",
        ))
    }
}

#[when("an access token is requested with an Idempotency-Key")]
async fn requested_with_a_key(w: &mut KeelWorld) -> Result<(), Problem> {
    require_idempotency(w)?;
    let ctx = w.ctx()?;
    let key = format!("keel-{:032x}", rand::random::<u128>());
    let issued = issuer::client_credentials_as(&ctx, &ctx.creds, None, Some(&key)).await?;
    w.note(json!({"step": "issued with an Idempotency-Key", "token": issued.access.fingerprint}));
    w.tokens.insert(TokenName::Access, issued.access);
    w.idempotency_key = Some(key);
    Ok(())
}

#[when("the same request is sent again with the same Idempotency-Key")]
async fn the_same_request_again(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let key = w
        .idempotency_key
        .clone()
        .ok_or_else(|| error("no Idempotency-Key was used"))?;
    let reply = issuer::client_credentials_reply(&ctx, &ctx.creds, None, Some(&key)).await?;
    if reply.status != 200 {
        return Err(fail(format!(
            "expected the repeated request to succeed, got {}{}",
            reply.describe(),
            oauth_error(&reply)
        )));
    }
    let issued = issuer::parse_token_response(&ctx, &reply, "repeated request")?;
    w.note(json!({"step": "repeated with the same Idempotency-Key", "token": issued.access.fingerprint}));
    w.tokens.insert(TokenName::SecondAccess, issued.access);
    Ok(())
}

#[then("both responses carry the same token identity")]
async fn both_carry_the_same_identity(w: &mut KeelWorld) -> Result<(), Problem> {
    let (a, b) = (
        w.token(TokenName::Access)?,
        w.token(TokenName::SecondAccess)?,
    );
    if a.value == b.value {
        return Ok(());
    }
    let (ia, ib) = (
        w.observe(TokenName::Access, "first").await?,
        w.observe(TokenName::SecondAccess, "repeat").await?,
    );
    let pick = |id: &crate::identity::Identity, m: &str| {
        id.get(&format!("jwt.{m}"))
            .or_else(|| id.get(&format!("introspection.{m}")))
            .cloned()
    };
    let mut problems = Vec::new();
    for m in ["jti", "sub", "client_id"] {
        if pick(&ia.0, m) != pick(&ib.0, m) {
            problems.push(format!("{m} differs"));
        }
    }
    if ia.1 != Some(true) {
        problems.push(
            "the first token is no longer active, so the repeat did not give the same token".into(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected the same Idempotency-Key and request to give the same token identity: {}",
            problems.join("; ")
        )))
    }
}

#[when("a different request is sent with the same Idempotency-Key")]
async fn a_different_request(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let key = w
        .idempotency_key
        .clone()
        .ok_or_else(|| error("no Idempotency-Key was used"))?;
    let scope = match ctx.creds.scope.as_deref() {
        Some("write") => "read",
        _ => "write",
    };
    let reply = issuer::client_credentials_reply(&ctx, &ctx.creds, Some(scope), Some(&key)).await?;
    w.note(json!({"step": "a different request with the same Idempotency-Key", "status": reply.status}));
    w.replies = vec![(reply.status, issuer::oauth_error_code(&reply), None)];
    Ok(())
}

#[then("it is refused with 422")]
async fn refused_with_422(w: &mut KeelWorld) -> Result<(), Problem> {
    match w.replies.first() {
        Some((422, _, _)) => Ok(()),
        Some((status, code, _)) => Err(fail(format!(
            "expected 422 for an Idempotency-Key reused with a different request (idempotency-key draft §2.7), got HTTP {status} {}",
            code.clone().unwrap_or_default()
        ))),
        None => Err(error("no request was sent")),
    }
}

#[when(expr = "{int} access tokens are issued")]
async fn many_tokens_are_issued(w: &mut KeelWorld, n: usize) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let mut stream = futures::stream::iter(0..n)
        .map(|_| issuer::client_credentials(&ctx))
        .buffer_unordered(16);
    let mut jtis = Vec::with_capacity(n);
    // Stop at the first failed issuance: the outstanding requests are dropped with the stream,
    // so a broken issuer costs one request deadline, not two thousand.
    while let Some(r) = stream.next().await {
        let issued = r?;
        let jti = match jwt::decode(&issued.access.value) {
            Ok(d) => d
                .claims
                .get("jti")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            Err(_) => None,
        };
        // Without a jti claim the token string itself is its identity.
        jtis.push(jti.unwrap_or(issued.access.fingerprint));
    }
    w.jtis = jtis;
    Ok(())
}

#[then("all their token ids are distinct")]
async fn all_distinct(w: &mut KeelWorld) -> Result<(), Problem> {
    let mut sorted = w.jtis.clone();
    sorted.sort();
    sorted.dedup();
    let (n, distinct) = (w.jtis.len(), sorted.len());
    w.note(json!({"step": "token ids", "issued": n, "distinct": distinct}));
    if n == distinct {
        Ok(())
    } else {
        Err(fail(format!(
            "expected {n} distinct token ids, got {distinct}: {} collisions",
            n - distinct
        )))
    }
}

#[then("the access tokens of two different clients name different subjects")]
async fn two_clients_two_subjects(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let Some(second) = ctx.second_creds.clone() else {
        return Err(not_applicable("the target declares no [second_client]"));
    };
    let a = issuer::client_credentials(&ctx).await?;
    let b = issuer::client_credentials_as(&ctx, &second, None, None).await?;
    // The subject from the JWT, or from introspection for an opaque token.
    let mut subs = Vec::new();
    for t in [&a.access, &b.access] {
        let sub = match jwt::decode(&t.value)
            .ok()
            .and_then(|d| d.claims.get("sub").cloned())
        {
            Some(s) => Some(s),
            None => issuer::introspect(&ctx, &t.value, Some("access_token"))
                .await?
                .body
                .get("sub")
                .cloned(),
        };
        subs.push(sub);
    }
    match (&subs[0], &subs[1]) {
        (Some(x), Some(y)) if x == y => Err(fail(format!(
            "expected two clients to have different subjects, both are {x}"
        ))),
        (Some(_), Some(_)) => Ok(()),
        _ => Err(not_applicable(
            "the issuer exposes no sub for client-credentials tokens (neither in a JWT nor in introspection)",
        )),
    }
}
