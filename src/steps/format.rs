//! Token format: declared prefix and shape, embedded checksum.

use cucumber::then;
use serde_json::json;

use crate::target::TokenFormat;
use crate::token::{checksum, prefixed::Anatomy};
use crate::verdict::{Problem, fail, not_applicable};
use crate::world::{KeelWorld, TokenName};

fn declared_prefixed(
    w: &KeelWorld,
    name: TokenName,
) -> Result<crate::target::PrefixedFormat, Problem> {
    let ctx = w.ctx()?;
    if matches!(name, TokenName::ApiKey | TokenName::RolledApiKey) {
        return match ctx.api_keys.as_ref().and_then(|(_, f)| f.clone()) {
            Some(TokenFormat::Prefixed(f)) => Ok(f),
            _ => Err(not_applicable(
                "the target declares no prefixed format for API keys ([capabilities.api_key])",
            )),
        };
    }
    match &ctx.refresh_format {
        Some(TokenFormat::Prefixed(f)) => Ok(f.clone()),
        Some(TokenFormat::Opaque) => Err(not_applicable(
            "the target declares its refresh tokens opaque, without a prefix or checksum",
        )),
        None => Err(not_applicable(
            "the target declares no refresh-token format ([capabilities.refresh_token])",
        )),
    }
}

#[then(expr = "the {token} has the declared prefix and shape")]
async fn has_the_declared_prefix_and_shape(
    w: &mut KeelWorld,
    name: TokenName,
) -> Result<(), Problem> {
    let format = declared_prefixed(w, name)?;
    let held = w.token(name)?;
    let Some(a) = Anatomy::split(&held.value, format.public_id_length) else {
        return Err(fail(format!(
            "expected the {} to be a prefixed token ({}…), got {} characters that are not ASCII or too short for a checksum",
            name.words(),
            format.prefix,
            held.value.len()
        )));
    };
    let problems = a.conformance(&held.value, &format);
    w.note(json!({"step": "shape", "token": held.fingerprint, "prefix": a.prefix, "public_id_length": a.public_id.len(), "secret_length": a.secret.len(), "problems": problems}));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected the {} to match the declared format: {}",
            name.words(),
            problems.join("; ")
        )))
    }
}

#[then(expr = "the checksum of the {token} is valid")]
async fn the_checksum_is_valid(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let _format = declared_prefixed(w, name)?;
    let held = w.token(name)?;
    let ok = checksum::verify(&held.value);
    w.note(json!({"step": "checksum", "token": held.fingerprint, "valid": ok}));
    if ok {
        Ok(())
    } else {
        let len = held.value.len();
        let found = held.value.get(len.saturating_sub(6)..).unwrap_or("");
        let body = held.value.get(..len.saturating_sub(6)).unwrap_or("");
        Err(fail(format!(
            "expected the last 6 characters of the {} to be CRC-32/base62 of everything before them ({}), got {found:?}",
            name.words(),
            checksum::checksum(body)
        )))
    }
}

#[then(
    expr = "keel's offline validator rejects every single-character substitution of the {token}"
)]
async fn rejects_every_substitution(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let _format = declared_prefixed(w, name)?;
    let held = w.token(name)?;
    if !checksum::verify(&held.value) {
        return Err(fail(format!(
            "the {} does not carry a valid checksum to begin with",
            name.words()
        )));
    }
    let (tried, missed) = checksum::single_substitutions(&held.value);
    w.note(json!({"step": "substitutions", "token": held.fingerprint, "tried": tried, "undetected": missed.len()}));
    if missed.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected every one of {tried} single-character substitutions to fail the checksum; these passed (position, character): {missed:?}"
        )))
    }
}
