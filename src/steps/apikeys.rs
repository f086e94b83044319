//! API keys: issue, roll the secret, validate; the public id survives a roll.

use std::time::{Duration, Instant};

use cucumber::{given, then, when};
use serde_json::{Value, json};

use crate::issuer::{self, oauth_error};
use crate::target::TokenFormat;
use crate::token::prefixed::Anatomy;
use crate::verdict::{Problem, error, fail, not_applicable};
use crate::world::{KeelWorld, TokenName};

fn api(w: &KeelWorld) -> Result<(crate::target::ApiKeys, Option<TokenFormat>), Problem> {
    w.ctx()?
        .api_keys
        .clone()
        .ok_or_else(|| not_applicable("the target declares no [api_keys] resource"))
}

fn read_key(
    body: &serde_json::Map<String, Value>,
    what: &str,
) -> Result<(String, String), Problem> {
    let key = body
        .get("api_key")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match (key, id) {
        (Some(k), Some(i)) => Ok((k.to_owned(), i.to_owned())),
        _ => Err(error(format!(
            "{what}: the answer lacks a string \"api_key\" or \"id\""
        ))),
    }
}

#[given("an API key issued to the client")]
async fn an_api_key_issued(w: &mut KeelWorld) -> Result<(), Problem> {
    let (api, _) = api(w)?;
    let ctx = w.ctx()?;
    let reply =
        issuer::post_authenticated(&ctx, &ctx.creds, &api.issue, &[("name", "keel")]).await?;
    if !(200..300).contains(&reply.status) {
        return Err(error(format!(
            "issuing an API key: {}{}",
            reply.describe(),
            oauth_error(&reply)
        )));
    }
    let body = reply
        .json_object()
        .map_err(|e| error(format!("issuing an API key: {e}")))?;
    let (key, id) = read_key(&body, "issuing an API key")?;
    let held = issuer::hold_api_key(&ctx, &key);
    w.note(json!({"step": "API key issued", "token": held.fingerprint, "public_id": id}));
    w.tokens.insert(TokenName::ApiKey, held);
    w.api_key_id = Some(id);
    Ok(())
}

#[when("the API key is rolled")]
async fn the_api_key_is_rolled(w: &mut KeelWorld) -> Result<(), Problem> {
    let (api, _) = api(w)?;
    let ctx = w.ctx()?;
    let id = w
        .api_key_id
        .clone()
        .ok_or_else(|| error("no API key was issued"))?;
    let url = api.roll.replace("{id}", &id);
    let reply = issuer::post_authenticated(&ctx, &ctx.creds, &url, &[]).await?;
    if !(200..300).contains(&reply.status) {
        return Err(fail(format!(
            "expected the roll to succeed, got {}{}",
            reply.describe(),
            oauth_error(&reply)
        )));
    }
    let body = reply
        .json_object()
        .map_err(|e| error(format!("rolling the API key: {e}")))?;
    let (key, new_id) = read_key(&body, "rolling the API key")?;
    let held = issuer::hold_api_key(&ctx, &key);
    w.note(json!({"event": "API key rolled", "token": held.fingerprint, "public_id": new_id}));
    w.proofs
        .push("API key rolled: a new secret came back".into());
    if held.value == w.token(TokenName::ApiKey)?.value {
        return Err(error("roll not applied: the same API key came back"));
    }
    w.tokens.insert(TokenName::RolledApiKey, held);
    w.replies = vec![(reply.status, Some(new_id), None)];
    Ok(())
}

#[then("the rolled API key has the public id of the API key")]
async fn keeps_the_public_id(w: &mut KeelWorld) -> Result<(), Problem> {
    let (_, format) = api(w)?;
    let old_id = w
        .api_key_id
        .clone()
        .ok_or_else(|| error("no API key was issued"))?;
    let new_id = w
        .replies
        .first()
        .and_then(|r| r.1.clone())
        .unwrap_or_default();
    let mut problems = Vec::new();
    if new_id != old_id {
        problems.push(format!(
            "the roll answered id {new_id:?}, the key was {old_id:?}"
        ));
    }
    if let Some(TokenFormat::Prefixed(f)) = format {
        let (a, b) = (
            w.token(TokenName::ApiKey)?,
            w.token(TokenName::RolledApiKey)?,
        );
        let pa = Anatomy::split(&a.value, f.public_id_length).map(|x| x.public_id.to_owned());
        let pb = Anatomy::split(&b.value, f.public_id_length).map(|x| x.public_id.to_owned());
        if pa != pb {
            problems
                .push("the public segment of the rolled key differs from the original's".into());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected a roll to keep the public id: {}",
            problems.join("; ")
        )))
    }
}

#[then(expr = "the {token} is valid")]
async fn the_key_is_valid(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    w.expect_active(name, "validated").await.map(|_| ())
}

#[then("the API key stops validating once its grace period has passed")]
async fn stops_after_grace(w: &mut KeelWorld) -> Result<(), Problem> {
    let (api, _) = api(w)?;
    let ctx = w.ctx()?;
    let old = w.token(TokenName::ApiKey)?;
    // Poll against a deadline: the grace period plus a margin for clocks and request time.
    let deadline = Instant::now() + api.grace + Duration::from_secs(5);
    loop {
        let v = issuer::validate_api_key(&ctx, &old.value).await?;
        if v.get("valid") == Some(&Value::Bool(false)) {
            w.note(json!({"step": "old secret after the grace period", "valid": false}));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "expected the previous secret to stop validating after the declared grace period of {:?}; it still validates",
                api.grace
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
