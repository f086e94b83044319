//! Restarts: the event, its proof, and what must be the same afterwards.

use cucumber::{given, then, when};
use serde_json::{Value, json};

use crate::identity;
use crate::issuer;
use crate::lifecycle::RestartKind;
use crate::token::jwt;
use crate::verdict::{Problem, error, fail};
use crate::world::{KeelWorld, TokenName};

#[given(expr = "the identity of the {token} has been recorded")]
async fn the_identity_has_been_recorded(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let (id, active) = w.observe(name, "recorded").await?;
    if active != Some(true) {
        return Err(error(format!(
            "the {} is not active before the event, so its identity cannot be recorded",
            name.words()
        )));
    }
    w.recorded.insert(name, id);
    Ok(())
}

#[then(expr = "the identity of the {token} is unchanged")]
async fn the_identity_is_unchanged(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let before = w.recorded.get(&name).cloned().ok_or_else(|| {
        error(format!(
            "no identity of the {} was recorded before the event",
            name.words()
        ))
    })?;
    let (after, active) = w.observe(name, "after the event").await?;
    let changes = identity::diff(&before, &after);
    if changes.is_empty() {
        return Ok(());
    }
    let lead = if active == Some(true) {
        format!(
            "expected the identity of the {} to be byte-identical",
            name.words()
        )
    } else {
        format!(
            "expected the identity of the {} to be unchanged, but it is no longer active, so introspection reports none",
            name.words()
        )
    };
    Err(fail(format!("{lead}: {}", changes.join("; "))))
}

#[when("the JWKS is recorded")]
async fn the_jwks_is_recorded(w: &mut KeelWorld) -> Result<(), Problem> {
    the_jwks_has_been_recorded(w).await
}

#[given("the JWKS has been recorded")]
async fn the_jwks_has_been_recorded(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let jwks = issuer::jwks(&ctx).await?;
    let kids: Vec<Value> = jwt::jwks_keys(&jwks)
        .iter()
        .filter_map(|k| k.get("kid").cloned())
        .collect();
    w.note(json!({"step": "JWKS recorded", "kids": kids}));
    w.jwks_before = Some(jwks);
    Ok(())
}

#[then("the JWKS is unchanged")]
async fn the_jwks_is_unchanged(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let before = w
        .jwks_before
        .clone()
        .ok_or_else(|| error("no JWKS was recorded before the event"))?;
    let after = issuer::jwks(&ctx).await?;
    let kids: Vec<Value> = jwt::jwks_keys(&after)
        .iter()
        .filter_map(|k| k.get("kid").cloned())
        .collect();
    w.note(json!({"step": "JWKS after the event", "kids": kids}));
    let describe = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = jwt::jwks_keys(v).iter().map(|k| k.to_string()).collect();
        keys.sort();
        keys
    };
    let (b, a) = (describe(&before), describe(&after));
    if a == b {
        return Ok(());
    }
    let kid_of = |s: &String| -> String {
        serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| v.get("kid").cloned())
            .map_or("(no kid)".into(), |k| k.to_string())
    };
    let gone: Vec<String> = b.iter().filter(|k| !a.contains(k)).map(kid_of).collect();
    let new: Vec<String> = a.iter().filter(|k| !b.contains(k)).map(kid_of).collect();
    Err(fail(format!(
        "expected the same JWKS after the event: keys gone or changed: [{}]; keys new or changed: [{}]",
        gone.join(", "),
        new.join(", ")
    )))
}

async fn restart(w: &mut KeelWorld, kind: RestartKind) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    ctx.lifecycle.supports(kind)?;
    if !w.serial {
        return Err(error(
            "this scenario restarts the issuer but is not tagged @serial; it would disrupt scenarios running beside it",
        ));
    }
    let proof = ctx.lifecycle.restart(&ctx.client, kind).await?;
    w.proofs
        .push(format!("{}: {} ({})", proof.event, proof.proof, proof.how));
    w.note(json!({
        "event": proof.event,
        "proof": proof.proof.split(" at ").next().unwrap_or_default(),
        "boot_ids": [proof.before, proof.after],
    }));
    Ok(())
}

#[when("the issuer restarts")]
async fn the_issuer_restarts(w: &mut KeelWorld) -> Result<(), Problem> {
    restart(w, RestartKind::Graceful).await
}

#[when("the issuer is killed and restarted at once")]
async fn the_issuer_is_killed_and_restarted(w: &mut KeelWorld) -> Result<(), Problem> {
    restart(w, RestartKind::Kill).await
}

/// The members that name the principal and grant (not the token itself), which a refresh must
/// carry over unchanged.
const PRINCIPAL_MEMBERS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "client_id",
    "family_id",
    "scope",
    "username",
];

#[then(expr = "the {token} has the identity of the {token}")]
async fn has_the_identity_of(
    w: &mut KeelWorld,
    new: TokenName,
    old: TokenName,
) -> Result<(), Problem> {
    let before = w
        .recorded
        .get(&old)
        .cloned()
        .ok_or_else(|| error(format!("no identity of the {} was recorded", old.words())))?;
    let after = w.expect_active(new, "refreshed").await?;
    let keep = |id: &identity::Identity| -> identity::Identity {
        id.iter()
            .filter(|(k, _)| {
                let member = k.rsplit('.').next().unwrap_or(k);
                (k.starts_with("jwt.") || k.starts_with("introspection."))
                    && PRINCIPAL_MEMBERS.contains(&member)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let changes = identity::diff(&keep(&before), &keep(&after));
    if changes.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected the {} to name the same principal and grant as the {}: {}",
            new.words(),
            old.words(),
            changes.join("; ")
        )))
    }
}

#[given("the issuer can be restarted")]
async fn the_issuer_can_be_restarted(w: &mut KeelWorld) -> Result<(), Problem> {
    w.ctx()?.lifecycle.supports(RestartKind::Graceful)
}

#[given("the issuer can be killed")]
async fn the_issuer_can_be_killed(w: &mut KeelWorld) -> Result<(), Problem> {
    w.ctx()?.lifecycle.supports(RestartKind::Kill)
}
