//! Signing-key rotation: pre-publication, activation, overlap, kids that never change meaning.

use cucumber::{then, when};
use serde_json::{Value, json};

use crate::issuer;
use crate::lifecycle::KeyEvent;
use crate::token::jwt;
use crate::verdict::{Problem, error, fail, not_applicable};
use crate::world::{KeelWorld, Rotation, TokenName};

/// The kid of a freshly issued client-credentials access token, and the JWKS key (if any)
/// that verifies it.
async fn current_signer(w: &mut KeelWorld) -> Result<(String, Option<Value>), Problem> {
    let ctx = w.ctx()?;
    let issued = issuer::client_credentials(&ctx).await?;
    let d = jwt::decode(&issued.access.value)
        .map_err(|_| not_applicable("access tokens are not JWTs, so they carry no key id"))?;
    let kid = d.kid().map(str::to_owned).ok_or_else(|| {
        fail(
            "a new access token carries no kid (RFC 7515 §4.1.4), so a rotation cannot be followed",
        )
    })?;
    let jwks = issuer::jwks(&ctx).await?;
    Ok((
        kid,
        jwt::verifying_key(&issued.access.value, &jwks).cloned(),
    ))
}

async fn current_kid(w: &mut KeelWorld) -> Result<String, Problem> {
    Ok(current_signer(w).await?.0)
}

fn kids(jwks: &Value) -> Vec<String> {
    jwt::jwks_keys(jwks)
        .iter()
        .filter_map(|k| k.get("kid").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The rotation a previous step began.
fn rotation(w: &KeelWorld) -> Result<Rotation, Problem> {
    w.rotation
        .clone()
        .ok_or_else(|| error("no rotation was started"))
}

fn require_serial(w: &KeelWorld) -> Result<(), Problem> {
    if w.serial {
        Ok(())
    } else {
        Err(error(
            "this scenario rotates the signing key but is not tagged @serial",
        ))
    }
}

async fn begin(w: &mut KeelWorld) -> Result<Rotation, Problem> {
    require_serial(w)?;
    let ctx = w.ctx()?;
    let (two_phase, one_step) = ctx.lifecycle.key_hooks();
    if !two_phase && !one_step {
        return Err(not_applicable(
            "the target declares no key-rotation hooks ([hooks.stage_signing_key] and [hooks.activate_signing_key], or [hooks.rotate_signing_key])",
        ));
    }
    let (kid_before, key_before) = current_signer(w).await?;
    let jwks_before = issuer::jwks(&ctx).await?;
    Ok(Rotation {
        kid_before,
        jwks_before,
        one_step: !two_phase,
        staged_kid: None,
        key_before,
    })
}

#[when("the next signing key is staged")]
async fn the_next_signing_key_is_staged(w: &mut KeelWorld) -> Result<(), Problem> {
    let mut r = begin(w).await?;
    let ctx = w.ctx()?;
    if r.one_step {
        w.warnings.push(
            "the target can only rotate in one step: it signs with a key verifiers' caches have not seen".into(),
        );
        let how = ctx
            .lifecycle
            .key_event(&ctx.client, KeyEvent::Rotate)
            .await?;
        w.proofs.push(format!("rotate_signing_key ({how})"));
        w.rotation = Some(r);
        return Ok(());
    }
    let how = ctx
        .lifecycle
        .key_event(&ctx.client, KeyEvent::Stage)
        .await?;
    let after = issuer::jwks(&ctx).await?;
    let before = kids(&r.jwks_before);
    let old_keys = jwt::jwks_keys(&r.jwks_before);
    let new: Vec<String> = jwt::jwks_keys(&after)
        .into_iter()
        .filter(|k| !old_keys.contains(k))
        .map(|k| {
            k.get("kid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let Some(staged) = new.first().cloned() else {
        return Err(error(format!(
            "stage_signing_key not applied: the JWKS gained no key ({how})"
        )));
    };
    w.proofs
        .push(format!("stage_signing_key: the JWKS gained a key ({how})"));
    w.note(json!({"event": "stage_signing_key", "kids_before": before, "kids_added": new}));
    r.staged_kid = Some(staged);
    w.rotation = Some(r);
    Ok(())
}

#[then("the JWKS holds the previous keys and the staged one")]
async fn the_jwks_holds_both(w: &mut KeelWorld) -> Result<(), Problem> {
    let r = rotation(w)?;
    if r.one_step {
        return Ok(());
    }
    let ctx = w.ctx()?;
    let now = issuer::jwks(&ctx).await?;
    let now_keys: Vec<&Value> = jwt::jwks_keys(&now);
    let mut missing: Vec<String> = jwt::jwks_keys(&r.jwks_before)
        .iter()
        .filter(|k| !now_keys.contains(k))
        .map(|k| k.get("kid").map(Value::to_string).unwrap_or_default())
        .collect();
    if let Some(staged) = &r.staged_kid
        && !kids(&now).contains(staged)
    {
        missing.push(format!("the staged key {staged:?}"));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected the JWKS to keep every key while the next is staged; gone or changed: {}",
            missing.join(", ")
        )))
    }
}

#[then("a new access token still carries the previous key id")]
async fn a_new_token_still_carries_the_previous_kid(w: &mut KeelWorld) -> Result<(), Problem> {
    let r = rotation(w)?;
    if r.one_step {
        return Ok(());
    }
    let kid = current_kid(w).await?;
    w.note(json!({"step": "new token while staged", "jwt.kid": kid}));
    if kid == r.kid_before {
        Ok(())
    } else {
        Err(fail(format!(
            "expected new tokens to keep the kid {:?} until activation (pre-publication), got {kid:?}: the issuer signs with a key verifiers' caches may not have",
            r.kid_before
        )))
    }
}

async fn activate(w: &mut KeelWorld) -> Result<(), Problem> {
    let r = rotation(w)?;
    let ctx = w.ctx()?;
    if !r.one_step {
        let how = ctx
            .lifecycle
            .key_event(&ctx.client, KeyEvent::Activate)
            .await?;
        w.proofs.push(format!("activate_signing_key ({how})"));
    }
    let (kid, key) = current_signer(w).await?;
    // Proof: new tokens are signed by other key material (or carry another kid when no
    // published key verifies them).
    let moved = match (&r.key_before, &key) {
        (Some(a), Some(b)) => a != b,
        _ => kid != r.kid_before,
    };
    if !moved {
        return Err(error(format!(
            "rotation not applied: new tokens are still signed by the key they were signed by before (kid {kid:?})"
        )));
    }
    w.note(json!({"event": "signing key activated", "kids": [r.kid_before, kid]}));
    Ok(())
}

#[when("the staged signing key is activated")]
async fn the_staged_key_is_activated(w: &mut KeelWorld) -> Result<(), Problem> {
    activate(w).await
}

#[when("the signing key is rotated")]
async fn the_signing_key_is_rotated(w: &mut KeelWorld) -> Result<(), Problem> {
    let r = begin(w).await?;
    let ctx = w.ctx()?;
    if r.one_step {
        let how = ctx
            .lifecycle
            .key_event(&ctx.client, KeyEvent::Rotate)
            .await?;
        w.proofs.push(format!("rotate_signing_key ({how})"));
    } else {
        let how = ctx
            .lifecycle
            .key_event(&ctx.client, KeyEvent::Stage)
            .await?;
        w.proofs.push(format!("stage_signing_key ({how})"));
    }
    w.rotation = Some(r);
    activate(w).await
}

#[then("a new access token carries a new key id and the identity of the access token")]
async fn a_new_token_carries_the_new_kid(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let old = w.token(TokenName::Access)?;
    let issued = issuer::client_credentials(&ctx).await?;
    let (a, b) = match (jwt::decode(&old.value), jwt::decode(&issued.access.value)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err(not_applicable("access tokens are not JWTs")),
    };
    w.tokens.insert(TokenName::SecondAccess, issued.access);
    let mut problems = Vec::new();
    if a.kid() == b.kid() {
        problems.push(format!(
            "the new token still carries the old kid {:?}",
            a.kid().unwrap_or("")
        ));
    }
    for m in ["iss", "sub", "aud", "client_id", "scope"] {
        if a.claims.get(m) != b.claims.get(m) {
            problems.push(format!(
                "{m} changed from {} to {}",
                show(a.claims.get(m)),
                show(b.claims.get(m))
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected a token issued after the rotation to carry the new kid and the same identity: {}",
            problems.join("; ")
        )))
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or("(absent)".into(), Value::to_string)
}

#[then(expr = "the {token} still verifies against the JWKS")]
async fn still_verifies(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    let jwks = issuer::jwks(&ctx).await?;
    super::identity::verifies_against(
        &held.value,
        &jwks,
        &format!(
            "expected the {} (signed by the previous key) to keep verifying during the overlap",
            name.words()
        ),
    )
}

#[then("every key id recorded before the rotation still names the same key material")]
async fn kids_keep_their_material(w: &mut KeelWorld) -> Result<(), Problem> {
    let r = rotation(w)?;
    let ctx = w.ctx()?;
    let now = issuer::jwks(&ctx).await?;
    let material = |k: &Value| -> Value {
        let mut m = k.as_object().cloned().unwrap_or_default();
        for drop in ["kid", "use", "alg", "key_ops"] {
            m.remove(drop);
        }
        Value::Object(m)
    };
    let mut problems = Vec::new();
    let now_keys = jwt::jwks_keys(&now);
    for kid in kids(&now) {
        let n = now_keys
            .iter()
            .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
            .count();
        if n > 1 {
            problems.push(format!("the JWKS holds {n} keys with the kid {kid:?}"));
        }
    }
    for old in jwt::jwks_keys(&r.jwks_before) {
        let Some(kid) = old.get("kid").and_then(Value::as_str) else {
            continue;
        };
        for k in now_keys
            .iter()
            .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        {
            if material(k) != material(old) {
                problems.push(format!("the kid {kid:?} now names other key material"));
            }
        }
    }
    w.note(json!({"step": "kids after rotation", "kids": kids(&now)}));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected every kid to keep naming one key: {}",
            problems.join("; ")
        )))
    }
}

#[cucumber::given("the issuer's signing key can be rotated")]
async fn the_signing_key_can_be_rotated(w: &mut KeelWorld) -> Result<(), Problem> {
    let (two_phase, one_step) = w.ctx()?.lifecycle.key_hooks();
    if two_phase || one_step {
        Ok(())
    } else {
        Err(not_applicable(
            "the target declares no key-rotation hooks ([hooks.stage_signing_key] and [hooks.activate_signing_key], or [hooks.rotate_signing_key])",
        ))
    }
}
