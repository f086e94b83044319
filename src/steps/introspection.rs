//! Introspection (RFC 7662) and revocation (RFC 7009).

use cucumber::{given, then, when};
use serde_json::{Value, json};

use crate::issuer::{self, TokenKind, oauth_error};
use crate::verdict::{Problem, error, fail};
use crate::world::{KeelWorld, TokenName};

fn hint(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Access => "access_token",
        TokenKind::Refresh => "refresh_token",
        TokenKind::ApiKey => "api_key",
    }
}

#[then(expr = "the {token} is active")]
async fn the_token_is_active(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    w.expect_active(name, "checked active").await.map(|_| ())
}

#[then(expr = "the {token} is inactive")]
async fn the_token_is_inactive(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let (_, active) = w.observe(name, "checked inactive").await?;
    match active {
        Some(false) => Ok(()),
        Some(true) => Err(fail(format!(
            "expected the {} to be inactive, introspection says active: true",
            name.words()
        ))),
        None => Err(fail(format!(
            "expected the {} to be inactive, introspection has no boolean \"active\"",
            name.words()
        ))),
    }
}

#[given(expr = "the {token} is active")]
async fn the_token_is_active_before(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    precondition_active(w, name, "before the event").await
}

/// Checks that `name` is active now, or gives an error: a later "inactive" proves nothing
/// about a token that was never active.
async fn precondition_active(
    w: &mut KeelWorld,
    name: TokenName,
    when: &str,
) -> Result<(), Problem> {
    let (_, active) = w.observe(name, "checked active (precondition)").await?;
    if active == Some(true) {
        Ok(())
    } else {
        Err(error(format!(
            "the {} is not active {when}, so a later inactive answer would prove nothing",
            name.words()
        )))
    }
}

async fn revoke(w: &mut KeelWorld, name: TokenName, precondition: bool) -> Result<(), Problem> {
    precondition_active(w, name, "before its revocation").await?;
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    let reply = issuer::revoke_held(&ctx, &held, Some(hint(held.kind))).await?;
    w.note(json!({"step": "revoked", "token": held.fingerprint, "name": name.words(), "status": reply.status}));
    if reply.status == 200 {
        if precondition {
            // A precondition must hold before the event, or the scenario proves nothing.
            let intro = issuer::introspect(&ctx, &held.value, Some(hint(held.kind))).await?;
            if intro.active != Some(false) {
                return Err(error(format!(
                    "the {} is still active right after its revocation, so whether revocation survives the event cannot be checked",
                    name.words()
                )));
            }
        }
        return Ok(());
    }
    let m = format!(
        "expected revocation of the {} to answer 200 (RFC 7009 §2.2), got {}{}",
        name.words(),
        reply.describe(),
        oauth_error(&reply)
    );
    Err(if precondition { error(m) } else { fail(m) })
}

#[when(expr = "the {token} is revoked")]
async fn the_token_is_revoked(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    revoke(w, name, false).await
}

#[given(expr = "the {token} has been revoked")]
async fn the_token_has_been_revoked(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    revoke(w, name, true).await
}

#[then("revoking an unknown token answers 200")]
async fn revoking_an_unknown_token_answers_200(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let unknown = format!("keel-unknown-{:032x}", rand::random::<u128>());
    let reply = issuer::revoke(&ctx, &unknown, None).await?;
    w.note(json!({"step": "revoked an unknown token", "status": reply.status}));
    if reply.status == 200 {
        Ok(())
    } else {
        Err(fail(format!(
            "expected 200 for the revocation of an unknown token (RFC 7009 §2.2: invalid tokens do not cause an error), got {}{}",
            reply.describe(),
            oauth_error(&reply)
        )))
    }
}

#[then(
    regex = r#"^introspecting (an unknown token|a malformed token|a revoked access token) answers exactly \{"active":false\}$"#
)]
async fn introspecting_answers_exactly_inactive(
    w: &mut KeelWorld,
    what: String,
) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let token = match what.as_str() {
        "an unknown token" => {
            // Shaped like the genuine token (same length and alphabet) but never issued.
            let genuine = w.token(TokenName::Access)?;
            let len = genuine.value.len().clamp(16, 4096);
            (0..len)
                .map(|_| char::from(crate::token::checksum::BASE62[rand::random_range(0..62)]))
                .collect()
        }
        "a malformed token" => "%%not a token\u{7f}..\u{1}".to_owned(),
        _ => {
            revoke(w, TokenName::Access, true).await?;
            w.token(TokenName::Access)?.value
        }
    };
    let intro = issuer::introspect(&ctx, &token, None).await?;
    let members: Vec<&String> = intro.body.keys().collect();
    w.note(
        json!({"step": format!("introspected {what}"), "members": members, "active": intro.active}),
    );
    let expected: serde_json::Map<String, Value> = [("active".to_owned(), Value::Bool(false))]
        .into_iter()
        .collect();
    if intro.body == expected {
        Ok(())
    } else {
        Err(fail(format!(
            "expected exactly {{\"active\":false}} for {what} (RFC 7662 §2.2: no other member for an inactive token), got members {}",
            members
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

#[then(expr = "the introspection of the {token} has the RFC 7662 shape")]
async fn introspection_has_the_rfc7662_shape(
    w: &mut KeelWorld,
    name: TokenName,
) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    if held.kind == TokenKind::Refresh && !ctx.introspects_refresh_tokens {
        return Err(crate::verdict::not_applicable(
            "the target declares that introspection does not answer for refresh tokens ([capabilities] refresh_token_introspection = false)",
        ));
    }
    let intro = issuer::introspect(&ctx, &held.value, Some(hint(held.kind))).await?;
    let mut bad = Vec::new();
    match intro.body.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            return Err(error(format!(
                "the {} is not active, so the shape of an active response cannot be checked",
                name.words()
            )));
        }
        Some(v) => bad.push(format!("active is {v}, expected the boolean true")),
        None => bad.push("no \"active\" member".to_owned()),
    }
    for (m, v) in &intro.body {
        let ok = match m.as_str() {
            "active" => true,
            "exp" | "iat" | "nbf" => v.as_i64().is_some() || v.as_u64().is_some(),
            "scope" | "client_id" | "username" | "token_type" | "sub" | "iss" | "jti" => {
                v.is_string()
            }
            "aud" => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            _ => true,
        };
        if !ok {
            bad.push(format!(
                "{m} is {}, which RFC 7662 §2.2 does not allow",
                type_name(v)
            ));
        }
    }
    let members: Vec<&String> = intro.body.keys().collect();
    w.note(json!({"step": "introspection shape", "token": held.fingerprint, "members": members, "problems": bad.len()}));
    if bad.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected an RFC 7662 response for the {}: {}",
            name.words(),
            bad.join("; ")
        )))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
