//! Identity references: present, readable, consistent between token and introspection, and
//! the signing key published.

use cucumber::then;
use serde_json::{Value, json};

use crate::issuer;
use crate::target::{AccessTokenFormat, Location, TokenFormat};
use crate::token::{jwt, thumbprint};
use crate::verdict::{Problem, error, fail, not_applicable};
use crate::world::{KeelWorld, TokenName};

/// The decoded JWT of an access token, or not-applicable for opaque access tokens.
fn access_jwt(w: &KeelWorld, name: TokenName) -> Result<jwt::Decoded, Problem> {
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    match (ctx.access_format, jwt::decode(&held.value)) {
        (Some(AccessTokenFormat::Opaque), _) => {
            Err(not_applicable("the target declares opaque access tokens"))
        }
        (_, Ok(d)) => Ok(d),
        (Some(AccessTokenFormat::Jwt), Err(e)) => Err(fail(format!(
            "the target declares JWT access tokens, but the {} is not one: {e}",
            name.words()
        ))),
        (None, Err(_)) => Err(not_applicable(format!(
            "the {} is not a JWT (opaque access tokens)",
            name.words()
        ))),
    }
}

#[then(
    regex = r"^the (access token|user access token|refreshed access token) carries the identity references (.+)$"
)]
async fn carries_the_identity_references(
    w: &mut KeelWorld,
    name: TokenName,
    list: String,
) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    let members: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // Where each reference lives: what the target declares in [identity], else the JWT's claims
    // for a JWT and introspection for an opaque token.
    let jwt_claims = jwt::decode(&held.value).ok().map(|d| d.claims);
    let default = if jwt_claims.is_some() {
        Location::Jwt
    } else {
        Location::Introspection
    };
    let mut intro_body = None;
    let mut claims = serde_json::Map::new();
    let mut sources = std::collections::BTreeSet::new();
    let mut declared_absent = Vec::new();
    let mut checked = Vec::new();
    for m in &members {
        match ctx.identity.get(*m).copied().unwrap_or(default) {
            Location::None => declared_absent.push(*m),
            Location::Jwt => {
                sources.insert("JWT claims");
                checked.push(*m);
                if let Some(v) = jwt_claims.as_ref().and_then(|c| c.get(*m)) {
                    claims.insert((*m).to_owned(), v.clone());
                }
            }
            Location::Introspection => {
                sources.insert("introspection");
                checked.push(*m);
                if intro_body.is_none() {
                    let intro = issuer::introspect(&ctx, &held.value, Some("access_token")).await?;
                    if intro.active != Some(true) {
                        return Err(error(format!(
                            "the {} is not active in introspection, so its identity cannot be read there",
                            name.words()
                        )));
                    }
                    intro_body = Some(intro.body);
                }
                if let Some(v) = intro_body.as_ref().and_then(|b| b.get(*m)) {
                    claims.insert((*m).to_owned(), v.clone());
                }
            }
        }
    }
    if !declared_absent.is_empty() {
        w.warnings.push(format!(
            "the target declares that it does not expose {} ([identity]), so keel cannot check them",
            declared_absent.join(", ")
        ));
    }
    let source = sources.into_iter().collect::<Vec<_>>().join(" and ");
    let members = checked;
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for m in &members {
        match (claims.get(*m), *m) {
            (None, _) => missing.push(*m),
            (Some(Value::Number(n)), "iat" | "exp" | "nbf") if n.is_i64() || n.is_u64() => {}
            (Some(v), "iat" | "exp" | "nbf") => {
                wrong.push(format!("{m} is {v}, expected an integer NumericDate"))
            }
            (Some(Value::String(s)), _) if !s.is_empty() => {}
            (Some(Value::Array(a)), "aud") if !a.is_empty() && a.iter().all(Value::is_string) => {}
            (Some(v), _) => wrong.push(format!("{m} is {}, expected a non-empty string", kind(v))),
        }
    }
    w.note(json!({"step": "identity references", "token": held.fingerprint, "source": source, "missing": missing, "malformed": wrong.len()}));
    if missing.is_empty() && wrong.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    parts.extend(wrong);
    Err(fail(format!(
        "expected the {} to carry {} in its {source}: {}",
        name.words(),
        members.join(", "),
        parts.join("; ")
    )))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "an empty string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[then(expr = "the key id of the {token} names a key in the JWKS that verifies its signature")]
async fn kid_names_a_verifying_jwks_key(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let d = access_jwt(w, name)?;
    let jwks = issuer::jwks(&ctx).await?;
    let held = w.token(name)?;
    let kids: Vec<Value> = jwt::jwks_keys(&jwks)
        .iter()
        .filter_map(|k| k.get("kid").cloned())
        .collect();
    w.note(json!({"step": "jwks", "jwt.kid": d.kid(), "kids": kids}));
    verifies_against(
        &held.value,
        &jwks,
        &format!("expected the {} to verify against the JWKS", name.words()),
    )
}

/// Verifies `token` against `jwks`: a key keel cannot use is an error (keel could not check),
/// any other verification failure fails with `expectation` as the lead.
pub(crate) fn verifies_against(
    token: &str,
    jwks: &Value,
    expectation: &str,
) -> Result<(), Problem> {
    match jwt::verify(token, jwks) {
        Ok(_) => Ok(()),
        Err(e @ jwt::JwtError::UnusableKey { .. }) => {
            Err(error(format!("keel cannot verify the token: {e}")))
        }
        Err(e) => Err(fail(format!("{expectation}: {e}"))),
    }
}

#[then("every key in the JWKS has its RFC 7638 thumbprint as key id")]
async fn every_jwks_kid_is_its_thumbprint(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let jwks = issuer::jwks(&ctx).await?;
    let keys = jwt::jwks_keys(&jwks);
    if keys.is_empty() {
        return Err(fail("expected at least one key in the JWKS, got none"));
    }
    let mut bad = Vec::new();
    for k in &keys {
        let kid = k.get("kid").and_then(Value::as_str);
        match (kid, thumbprint::sha256(k)) {
            (Some(kid), Ok(tp)) if kid == tp => {}
            (Some(kid), Ok(tp)) => bad.push(format!("kid {kid:?} is not the thumbprint {tp:?}")),
            (None, Ok(tp)) => bad.push(format!("a key without kid (its thumbprint is {tp:?})")),
            (_, Err(e)) => bad.push(format!("kid {kid:?}: {e}")),
        }
    }
    w.note(json!({"step": "jwks thumbprints", "keys": keys.len(), "mismatches": bad.len()}));
    if bad.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected each kid to be the key's RFC 7638 thumbprint: {}",
            bad.join("; ")
        )))
    }
}

#[then(expr = "the identity in the {token} agrees with its introspection")]
async fn identity_agrees_with_introspection(
    w: &mut KeelWorld,
    name: TokenName,
) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    let (id, active) = w.observe(name, "introspected").await?;
    if active != Some(true) {
        return Err(error(format!(
            "the {} is not active in introspection, so there is nothing to compare",
            name.words()
        )));
    }
    let mut compared = 0;
    let mut mismatches = Vec::new();
    let pairs: Vec<(String, String)> = match held.kind {
        issuer::TokenKind::ApiKey => {
            return Err(not_applicable("API keys are not introspected"));
        }
        issuer::TokenKind::Access => {
            if jwt::decode(&held.value).is_err() {
                return Err(not_applicable(format!(
                    "the {} is opaque: it carries no identity of its own to compare",
                    name.words()
                )));
            }
            [
                "iss",
                "sub",
                "aud",
                "client_id",
                "jti",
                "scope",
                "family_id",
            ]
            .iter()
            .map(|m| (format!("jwt.{m}"), format!("introspection.{m}")))
            .collect()
        }
        issuer::TokenKind::Refresh => {
            if !matches!(ctx.refresh_format, Some(TokenFormat::Prefixed(_))) {
                return Err(not_applicable(
                    "the refresh-token format declares no public id",
                ));
            }
            vec![("token.public_id".to_owned(), "introspection.jti".to_owned())]
        }
    };
    for (own, intro) in &pairs {
        match (id.get(own), id.get(intro)) {
            (Some(a), Some(b)) => {
                compared += 1;
                if a != b {
                    mismatches.push(format!("{own} is {a} but {intro} is {b}"));
                }
            }
            (Some(_), None) if held.kind == issuer::TokenKind::Refresh => {
                mismatches.push(format!(
                    "introspection reports no jti for the token whose public id is {}",
                    id.get(own).map(Value::to_string).unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
    if compared == 0 && mismatches.is_empty() {
        return Err(error(format!(
            "the {} and its introspection share no identity member to compare",
            name.words()
        )));
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected the {} and its introspection to agree: {}",
            name.words(),
            mismatches.join("; ")
        )))
    }
}
