//! Identity references: the non-secret values that name a token and its principal.
//!
//! Read from three places and kept apart by a source prefix, so that a comparison says where a
//! value changed: `jwt.sub` (the token's own claims), `introspection.sub` (RFC 7662), and
//! `token.public_id` (the public segment of a prefixed opaque token).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::context::Context;
use crate::issuer::{Held, TokenKind};
use crate::target::TokenFormat;
use crate::token::{jwt, prefixed};

/// Claims of an access-token JWT that are identity references.
pub const JWT_MEMBERS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "client_id",
    "jti",
    "family_id",
    "scope",
];
/// Introspection members that are identity references.
pub const INTROSPECTION_MEMBERS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "client_id",
    "jti",
    "family_id",
    "scope",
    "username",
    "token_type",
];

/// A token's identity: `source.member` to value.
pub type Identity = BTreeMap<String, Value>;

/// Reads the identity of `held` from the token itself and from `introspection` (if active).
pub fn of(ctx: &Context, held: &Held, introspection: Option<&Map<String, Value>>) -> Identity {
    let mut id = Identity::new();
    if let Ok(d) = jwt::decode(&held.value) {
        for m in JWT_MEMBERS {
            if let Some(v) = d.claims.get(*m) {
                id.insert(format!("jwt.{m}"), v.clone());
            }
        }
        if let Some(kid) = d.kid() {
            id.insert("jwt.kid".into(), Value::String(kid.to_owned()));
        }
    }
    if held.kind == TokenKind::Refresh
        && let Some(TokenFormat::Prefixed(f)) = &ctx.refresh_format
        && let Some(a) = prefixed::Anatomy::split(&held.value, f.public_id_length)
    {
        id.insert("token.prefix".into(), Value::String(a.prefix.to_owned()));
        id.insert(
            "token.public_id".into(),
            Value::String(a.public_id.to_owned()),
        );
    }
    if let Some(body) = introspection
        && body.get("active") == Some(&Value::Bool(true))
    {
        for m in INTROSPECTION_MEMBERS {
            if let Some(v) = body.get(*m) {
                id.insert(format!("introspection.{m}"), v.clone());
            }
        }
    }
    id
}

/// The members whose values differ between `before` and `after` (added or removed included),
/// as `member: before -> after` lines.
pub fn diff(before: &Identity, after: &Identity) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (b, a) = (before.get(k), after.get(k));
            (b != a).then(|| format!("{k}: {} -> {}", show(b), show(a)))
        })
        .collect()
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 80 {
                format!("{}…", &s[..80])
            } else {
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_changed_added_and_removed_members() {
        let mut a = Identity::new();
        a.insert("jwt.sub".into(), "x".into());
        a.insert("jwt.iss".into(), "i".into());
        let mut b = a.clone();
        b.insert("jwt.sub".into(), "y".into());
        b.remove("jwt.iss");
        b.insert("jwt.jti".into(), "j".into());
        let d = diff(&a, &b);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("jwt.sub: \"x\" -> \"y\"")));
        assert!(diff(&a, &a).is_empty());
    }
}
