//! Refresh-token rotation: chains, replays, other families, races.

use cucumber::{given, then, when};
use serde_json::{Value, json};

use crate::identity::{self, Identity};
use crate::issuer::{self, Held, oauth_error, oauth_error_code};
use crate::target::RefreshPolicy;
use crate::verdict::{Problem, error, fail, not_applicable};
use crate::world::{KeelWorld, TokenName};

/// One refresh of a chain: the tokens it returned and the identity of the new refresh token.
#[derive(Clone, Debug)]
pub struct Link {
    /// The new refresh token (the same one under `reuse`).
    pub refresh: Held,
    /// Its identity right after the refresh.
    pub identity: Identity,
}

/// The principal-and-grant members a refresh must carry over.
const CARRIED: &[&str] = &["iss", "sub", "client_id", "family_id", "scope", "username"];

fn policy(w: &KeelWorld) -> Result<RefreshPolicy, Problem> {
    match w.ctx()?.refresh_policy {
        Some(RefreshPolicy::None) => Err(not_applicable(
            "the target declares refresh_policy = \"none\"",
        )),
        Some(p) => Ok(p),
        None => Err(not_applicable(
            "the target declares no refresh policy ([capabilities] refresh_policy)",
        )),
    }
}

#[given("another refresh token issued to the test user")]
async fn another_refresh_token(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let issued = issuer::user_tokens(&ctx).await?;
    let rt = issued
        .refresh
        .ok_or_else(|| error("the authorization-code grant returned no refresh token"))?;
    w.note(json!({"step": "issued another family", "token": rt.fingerprint}));
    w.tokens.insert(TokenName::OtherRefresh, rt);
    Ok(())
}

#[when(expr = "the refresh token is refreshed {int} times in a chain")]
async fn refreshed_in_a_chain(w: &mut KeelWorld, n: usize) -> Result<(), Problem> {
    let policy = policy(w)?;
    let ctx = w.ctx()?;
    let mut current = w.token(TokenName::Refresh)?;
    w.chain.clear();
    for i in 1..=n {
        let reply = issuer::refresh(&ctx, &current.value).await?;
        if reply.status != 200 {
            return Err(fail(format!(
                "expected refresh {i} of {n} in the chain to succeed, got {}{}",
                reply.describe(),
                oauth_error(&reply)
            )));
        }
        let issued =
            issuer::parse_token_response(&ctx, &reply, "refresh").map(issuer::mark_user)?;
        let next = match (issued.refresh, policy) {
            (Some(rt), _) => rt,
            (None, RefreshPolicy::Reuse) => current.clone(),
            (None, _) => {
                return Err(fail(format!(
                    "expected refresh {i} to return a new refresh token (policy rotate), got none"
                )));
            }
        };
        let intro = issuer::introspect(&ctx, &next.value, Some("refresh_token")).await?;
        if intro.active != Some(true) {
            return Err(fail(format!(
                "the refresh token returned by refresh {i} is not active"
            )));
        }
        let id = identity::of(&ctx, &next, Some(&intro.body));
        w.tokens.insert(TokenName::RefreshedAccess, issued.access);
        w.chain.push(Link {
            refresh: next.clone(),
            identity: id,
        });
        current = next;
    }
    w.tokens.insert(TokenName::RefreshedRefresh, current);
    Ok(())
}

#[then("every link of the chain names the family and principal of the refresh token")]
async fn every_link_names_the_family(w: &mut KeelWorld) -> Result<(), Problem> {
    let policy = policy(w)?;
    let before = w
        .recorded
        .get(&TokenName::Refresh)
        .cloned()
        .ok_or_else(|| error("no identity of the refresh token was recorded"))?;
    let pick = |id: &Identity| -> Identity {
        id.iter()
            .filter(|(k, _)| {
                k.starts_with("introspection.")
                    && CARRIED.contains(&k.rsplit('.').next().unwrap_or(""))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let want = pick(&before);
    let mut seen_ids: Vec<Value> = before.get("token.public_id").into_iter().cloned().collect();
    let mut families: Vec<Value> = Vec::new();
    let mut problems = Vec::new();
    for (i, link) in w.chain.iter().enumerate() {
        let got = pick(&link.identity);
        if let Some(f) = link.identity.get("introspection.family_id")
            && !families.contains(f)
        {
            families.push(f.clone());
        }
        let changes = identity::diff(&want, &got);
        if !changes.is_empty() && problems.len() < 3 {
            problems.push(format!("refresh {}: {}", i + 1, changes.join("; ")));
        }
        if policy == RefreshPolicy::Rotate {
            match link
                .identity
                .get("token.public_id")
                .or_else(|| link.identity.get("introspection.jti"))
            {
                Some(pid) if seen_ids.contains(pid) => problems.push(format!(
                    "refresh {} returned a refresh token whose public id was already used",
                    i + 1
                )),
                Some(pid) => seen_ids.push(pid.clone()),
                None => {}
            }
        }
    }
    let links = w.chain.len();
    w.note(json!({"step": "chain", "links": links, "distinct_public_ids": seen_ids.len(), "family_id": families, "identity": want}));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected every link of the {links}-refresh chain to keep the family and principal: {}",
            problems.join(" | ")
        )))
    }
}

#[when("the rotated-out refresh token is presented again")]
async fn the_rotated_out_token_is_presented_again(w: &mut KeelWorld) -> Result<(), Problem> {
    if policy(w)? != RefreshPolicy::Rotate {
        return Err(not_applicable(
            "the target does not rotate refresh tokens, so there is no rotated-out token to replay",
        ));
    }
    let ctx = w.ctx()?;
    let old = w.token(TokenName::Refresh)?;
    let reply = issuer::refresh(&ctx, &old.value).await?;
    let code = oauth_error_code(&reply);
    w.note(json!({"step": "replayed the rotated-out refresh token", "status": reply.status, "error": code}));
    w.replies = vec![(reply.status, code, None)];
    Ok(())
}

#[then("the replay is refused with invalid_grant")]
async fn the_replay_is_refused(w: &mut KeelWorld) -> Result<(), Problem> {
    match w.replies.first() {
        Some((400, Some(code), _)) if code == "invalid_grant" => Ok(()),
        Some((status, code, _)) => Err(fail(format!(
            "expected the replayed refresh token to be refused with 400 invalid_grant (RFC 6749 §5.2), got HTTP {status} {}",
            code.clone().unwrap_or_else(|| "(no error code)".into())
        ))),
        None => Err(error("no replay was made")),
    }
}

#[when(expr = "the refresh token is refreshed {int} times concurrently")]
async fn refreshed_concurrently(w: &mut KeelWorld, n: usize) -> Result<(), Problem> {
    let _ = policy(w)?;
    let ctx = w.ctx()?;
    let rt = w.token(TokenName::Refresh)?;
    let requests = (0..n).map(|_| issuer::refresh(&ctx, &rt.value));
    let replies = futures::future::join_all(requests).await;
    w.replies.clear();
    for r in replies {
        let reply = r?;
        let code = oauth_error_code(&reply);
        let refresh = if reply.status == 200 {
            issuer::parse_token_response(&ctx, &reply, "concurrent refresh")
                .map(issuer::mark_user)?
                .refresh
        } else {
            None
        };
        w.replies.push((reply.status, code, refresh));
    }
    let ok = w.replies.iter().filter(|r| r.0 == 200).count();
    let invalid_grant = w
        .replies
        .iter()
        .filter(|r| r.1.as_deref() == Some("invalid_grant"))
        .count();
    w.note(json!({"step": format!("{n} concurrent refreshes"), "ok": ok, "invalid_grant": invalid_grant}));
    Ok(())
}

#[then("no concurrent refresh answered with a server error")]
async fn no_server_error(w: &mut KeelWorld) -> Result<(), Problem> {
    let bad: Vec<u16> = w
        .replies
        .iter()
        .map(|r| r.0)
        .filter(|s| *s >= 500)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected no 5xx among {} concurrent refreshes, got {} ({bad:?})",
            w.replies.len(),
            bad.len()
        )))
    }
}

#[then("the concurrent refreshes match the declared refresh policy")]
async fn concurrent_refreshes_match_the_policy(w: &mut KeelWorld) -> Result<(), Problem> {
    let policy = policy(w)?;
    let ctx = w.ctx()?;
    let n = w.replies.len();
    let ok: Vec<&(u16, Option<String>, Option<Held>)> =
        w.replies.iter().filter(|r| r.0 == 200).collect();
    let refused = w
        .replies
        .iter()
        .filter(|r| r.0 == 400 && r.1.as_deref() == Some("invalid_grant"))
        .count();
    match policy {
        RefreshPolicy::Rotate => {
            if ok.len() != 1 || refused != n - 1 {
                return Err(fail(format!(
                    "expected exactly one of {n} concurrent refreshes to succeed and {} to be refused with invalid_grant (policy rotate), got {} successes and {refused} invalid_grant",
                    n - 1,
                    ok.len()
                )));
            }
            // The losers presented a rotated-out token: reuse detection revokes the family,
            // the winner's new refresh token included.
            let Some(winner) = ok[0].2.clone() else {
                return Err(fail(
                    "the successful concurrent refresh returned no new refresh token (policy rotate)",
                ));
            };
            let intro = issuer::introspect(&ctx, &winner.value, Some("refresh_token")).await?;
            w.note(json!({"step": "winner after the race", "token": winner.fingerprint, "active": intro.active}));
            if intro.active != Some(false) {
                return Err(fail(
                    "expected the family to be revoked after the race (the losers replayed a rotated-out token), but the winner's refresh token is still active",
                ));
            }
            Ok(())
        }
        RefreshPolicy::Reuse => {
            if ok.len() != n {
                return Err(fail(format!(
                    "expected all {n} concurrent refreshes to succeed (policy reuse), got {}",
                    ok.len()
                )));
            }
            Ok(())
        }
        RefreshPolicy::None => Err(not_applicable("no refresh tokens")),
    }
}
