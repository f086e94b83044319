//! Clock sanity: iat against the response's Date, nbf, and the declared lifetime.

use std::time::{Duration, UNIX_EPOCH};

use cucumber::then;
use serde_json::{Value, json};

use crate::token::jwt;
use crate::verdict::{Problem, error, fail, not_applicable};
use crate::world::{KeelWorld, TokenName};

#[then(
    expr = "the timestamps of the {token} agree with the response's Date and the declared lifetime"
)]
async fn timestamps_agree(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let held = w.token(name)?;
    let d = jwt::decode(&held.value)
        .map_err(|_| not_applicable(format!("the {} is not a JWT", name.words())))?;
    let (date, expires_in) = w.issued_with.get(&name).cloned().unwrap_or_default();
    let date = date.ok_or_else(|| {
        fail("expected a Date header on the token response (RFC 9110 §6.6.1), got none")
    })?;
    let date = httpdate::parse_http_date(&date)
        .map_err(|_| fail(format!("the Date header {date:?} is not an HTTP-date")))?;
    let date_s = date
        .duration_since(UNIX_EPOCH)
        .map_err(|_| error("Date before 1970"))?
        .as_secs() as i64;
    let num = |m: &str| d.claims.get(m).and_then(Value::as_i64);
    let iat = num("iat").ok_or_else(|| fail("the token has no integer iat"))?;
    let exp = num("exp").ok_or_else(|| fail("the token has no integer exp"))?;
    let mut problems = Vec::new();
    let skew = ctx.clock_skew.as_secs() as i64;
    if (iat - date_s).abs() > skew {
        problems.push(format!(
            "iat is {}s from the response's Date (allowed: {skew}s)",
            iat - date_s
        ));
    }
    if let Some(nbf) = num("nbf")
        && nbf > iat
    {
        problems.push(format!("nbf is {}s after iat", nbf - iat));
    }
    let lifetime = ctx
        .access_lifetime
        .map(|l| l.as_secs() as i64)
        .or(expires_in);
    match lifetime {
        Some(l) if exp - iat != l => {
            problems.push(format!("exp - iat is {}s, declared {l}s", exp - iat))
        }
        Some(_) => {}
        None => {
            problems.push("no lifetime declared and no expires_in to compare exp - iat with".into())
        }
    }
    w.note(json!({"step": "timestamps", "lifetime": exp - iat, "iat_within_skew": (iat - date_s).abs() <= skew}));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected sane timestamps on the {}: {}",
            name.words(),
            problems.join("; ")
        )))
    }
}

#[then(expr = "the lifetimes of the {token} are sane")]
async fn lifetimes_are_sane(w: &mut KeelWorld, name: TokenName) -> Result<(), Problem> {
    let held = w.token(name)?;
    let (_, expires_in) = w.issued_with.get(&name).cloned().unwrap_or_default();
    let mut problems = Vec::new();
    if let Some(e) = expires_in
        && e <= 0
    {
        problems.push(format!("expires_in is {e}"));
    }
    if let Ok(d) = jwt::decode(&held.value) {
        let iat = d.claims.get("iat").and_then(Value::as_i64);
        let exp = d.claims.get("exp").and_then(Value::as_i64);
        match (iat, exp) {
            (Some(i), Some(e)) if e <= i => {
                problems.push(format!("exp is not after iat ({}s)", e - i))
            }
            (Some(_), Some(_)) => {}
            _ => problems.push("iat or exp missing".into()),
        }
    }
    let _ = Duration::ZERO;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "expected sane lifetimes on the {}: {}",
            name.words(),
            problems.join("; ")
        )))
    }
}
