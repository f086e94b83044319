//! Tampered tokens: each built from a genuine, active token and presented to the issuer.

use cucumber::then;
use serde_json::json;

use crate::issuer::{self, TokenKind, oauth_error, oauth_error_code};
use crate::target::{AccessTokenFormat, TokenFormat};
use crate::token::{jwt, prefixed};
use crate::verdict::{Problem, error, fail, not_applicable};
use crate::world::{KeelWorld, TokenName};

/// Checks that the genuine token is active, so that a rejection of its tampered twin means
/// something.
async fn genuine_is_active(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let (_, active) = w.observe(name, "genuine token").await?;
    if active == Some(true) {
        Ok(())
    } else {
        Err(error(format!(
            "the genuine {} is not active, so a rejection of its tampered copy would prove nothing",
            name.words()
        )))
    }
}

/// Presents a tampered refresh token to introspection and to the token endpoint.
async fn refresh_rejected(w: &mut KeelWorld, what: &str, tampered: String) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let intro = issuer::introspect(&ctx, &tampered, Some("refresh_token")).await?;
    let reply = issuer::refresh(&ctx, &tampered).await?;
    let code = oauth_error_code(&reply);
    w.note(json!({"step": format!("presented {what}"), "introspection_active": intro.active, "refresh_status": reply.status, "refresh_error": code}));
    let mut wrong = Vec::new();
    if intro.active != Some(false) {
        wrong.push(format!(
            "introspection says active: {}",
            intro
                .active
                .map_or("(not a boolean)".into(), |a| a.to_string())
        ));
    }
    if reply.status == 200 {
        wrong.push("the token endpoint accepted it and issued tokens (HTTP 200)".to_owned());
    } else if !(400..500).contains(&reply.status) || code.as_deref() != Some("invalid_grant") {
        wrong.push(format!(
            "the token endpoint answered {}{} instead of 400 invalid_grant (RFC 6749 §5.2)",
            reply.describe(),
            oauth_error(&reply)
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected the refresh token with {what} to be rejected: {}",
            wrong.join("; ")
        )))
    }
}

fn prefixed_format(w: &KeelWorld) -> Result<crate::target::PrefixedFormat, Problem> {
    match &w.ctx()?.refresh_format {
        Some(TokenFormat::Prefixed(f)) => Ok(f.clone()),
        _ => Err(not_applicable(
            "the target declares no prefixed, checksummed refresh-token format",
        )),
    }
}

#[then("the refresh token with one checksum character changed is rejected")]
async fn checksum_altered_is_rejected(w: &mut KeelWorld) -> Result<(), Problem> {
    let _f = prefixed_format(w)?;
    genuine_is_active(w, TokenName::Refresh).await?;
    let genuine = w.token(TokenName::Refresh)?;
    let tampered = prefixed::alter_checksum(&genuine.value).ok_or_else(|| {
        error("the refresh token is too short or not ASCII, so its checksum cannot be altered")
    })?;
    refresh_rejected(w, "one checksum character changed", tampered).await
}

#[then("the refresh token with another prefix and a recomputed checksum is rejected")]
async fn prefix_swapped_is_rejected(w: &mut KeelWorld) -> Result<(), Problem> {
    let f = prefixed_format(w)?;
    genuine_is_active(w, TokenName::Refresh).await?;
    let genuine = w.token(TokenName::Refresh)?;
    let tampered = prefixed::swap_prefix(&genuine.value, f.public_id_length)
        .ok_or_else(|| error("the refresh token has no prefix that keel could swap"))?;
    refresh_rejected(w, "another prefix and a recomputed checksum", tampered).await
}

async fn jwt_rejected(
    w: &mut KeelWorld,
    name: TokenName,
    what: &str,
    tamper: fn(&str) -> Result<String, jwt::JwtError>,
) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    if held.kind != TokenKind::Access {
        return Err(error(format!(
            "the {} is not an access token",
            name.words()
        )));
    }
    match (ctx.access_format, jwt::looks_like_jwt(&held.value)) {
        (Some(AccessTokenFormat::Opaque), _) | (None, false) => {
            return Err(not_applicable(format!("the {} is not a JWT", name.words())));
        }
        (Some(AccessTokenFormat::Jwt), false) => {
            return Err(fail(format!(
                "the target declares JWT access tokens, but the {} is not a JWT",
                name.words()
            )));
        }
        _ => {}
    }
    genuine_is_active(w, name).await?;
    let tampered = tamper(&held.value).map_err(|e| {
        error(format!(
            "keel could not tamper with the {}: {e}",
            name.words()
        ))
    })?;
    let intro = issuer::introspect(&ctx, &tampered, Some("access_token")).await?;
    w.note(json!({"step": format!("presented {what}"), "introspection_active": intro.active}));
    match intro.active {
        Some(false) => Ok(()),
        Some(true) => Err(fail(format!(
            "expected the {} {what} to be rejected, introspection says active: true",
            name.words()
        ))),
        None => Err(fail(format!(
            "expected the {} {what} to be rejected with active: false, introspection has no boolean \"active\"",
            name.words()
        ))),
    }
}

#[then(expr = "the {token} with one signature byte flipped is rejected")]
async fn flipped_signature_is_rejected(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    jwt_rejected(
        w,
        name,
        "with one signature byte flipped",
        jwt::flip_signature_byte,
    )
    .await
}

#[then(expr = "the {token} re-encoded with alg none is rejected")]
async fn alg_none_is_rejected(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    jwt_rejected(w, name, "re-encoded with alg none", jwt::with_alg_none).await
}

#[then(expr = "the {token} re-signed by a key not in the JWKS is rejected")]
async fn unknown_key_is_rejected(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    jwt_rejected(
        w,
        name,
        "re-signed by a key not in the JWKS",
        jwt::resign_with_unknown_key,
    )
    .await
}
