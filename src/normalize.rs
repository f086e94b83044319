//! Normalization of ledgers for snapshots: the one place that decides what is volatile.
//!
//! Every volatile value becomes a placeholder numbered by first appearance within its category
//! (`[kid#1]`, `[sub#2]`), so that a snapshot asserts *sameness*: the same kid before and after a
//! restart shows as `[kid#1]` twice. A placeholder is only given after the value's shape has been
//! checked (a kid must be base64url, a fingerprint must be one); a value of unexpected shape
//! becomes `[kid!unexpected-shape#n]`, so the snapshot still fails if the shape changes. Times
//! become `[ts]`. Constant values (client ids, scopes, token types, prefixes) stay literal.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Stateful normalizer: numbering is per category, by first appearance.
#[derive(Default)]
pub struct Normalizer {
    seen: HashMap<&'static str, Vec<String>>,
}

/// Placeholder category for an object key, if its values are volatile.
fn category(key: &str) -> Option<&'static str> {
    let last = key.rsplit('.').next().unwrap_or(key);
    Some(match last {
        k if k.starts_with("kid") => "kid",
        "id" => "jti",
        "sub" => "sub",
        "jti" | "public_id" => "jti",
        "family_id" => "family",
        "iss" | "issuer" => "iss",
        "boot_id_before" | "boot_id_after" | "boot_id" | "boot_ids" => "boot",
        "token" | "fingerprint" | "refresh" => "token",
        "username" => return None,
        _ => return None,
    })
}

fn is_time_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    matches!(
        last,
        "iat" | "exp" | "nbf" | "auth_time" | "duration_ms" | "downtime_ms"
    ) || last.ends_with("_at")
}

fn shape_ok(cat: &str, s: &str) -> bool {
    let b64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match cat {
        "kid" => b64url(s),
        "token" => s
            .strip_prefix("fp:")
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())),
        "iss" => url::Url::parse(s).is_ok(),
        "sub" | "jti" | "family" | "boot" => !s.is_empty() && !s.contains(char::is_whitespace),
        _ => true,
    }
}

impl Normalizer {
    /// A new normalizer with no values seen.
    pub fn new() -> Self {
        Self::default()
    }

    fn placeholder(&mut self, cat: &'static str, value: &str) -> String {
        let shape = if shape_ok(cat, value) {
            ""
        } else {
            "!unexpected-shape"
        };
        let list = self.seen.entry(cat).or_default();
        let n = match list.iter().position(|v| v == value) {
            Some(i) => i + 1,
            None => {
                list.push(value.to_owned());
                list.len()
            }
        };
        format!("[{cat}{shape}#{n}]")
    }

    /// Normalizes `v`, numbering placeholders across every call on this normalizer.
    pub fn normalize(&mut self, v: &Value) -> Value {
        self.walk(None, v)
    }

    fn walk(&mut self, key: Option<&str>, v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, val) in m {
                    out.insert(k.clone(), self.walk(Some(k), val));
                }
                Value::Object(out)
            }
            Value::Array(a) => {
                let mut items: Vec<Value> = a.iter().map(|x| self.walk(key, x)).collect();
                // An array of placeholders is a set (the order of a JWKS, say, means nothing):
                // sort it so that the snapshot does not depend on it.
                if items
                    .iter()
                    .all(|v| v.as_str().is_some_and(|s| s.starts_with('[')))
                {
                    items.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                }
                Value::Array(items)
            }
            Value::Number(_) if key.is_some_and(is_time_key) => Value::String("[ts]".into()),
            Value::String(s) if key.is_some_and(is_time_key) => {
                Value::String(format!("[ts:{}]", kind_of(s)))
            }
            Value::String(s) => match key.and_then(category) {
                Some(cat) => Value::String(self.placeholder(cat, s)),
                None if looks_like_local_url(s) => Value::String(self.placeholder("url", s)),
                None => v.clone(),
            },
            _ => v.clone(),
        }
    }
}

fn kind_of(s: &str) -> &'static str {
    if s.parse::<i64>().is_ok() {
        "string-number"
    } else {
        "string"
    }
}

fn looks_like_local_url(s: &str) -> bool {
    s.starts_with("http://127.0.0.1:") || s.starts_with("http://localhost:")
}

/// Normalizes one document with a fresh numbering.
pub fn normalize(v: &Value) -> Value {
    Normalizer::new().normalize(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_value_same_placeholder_by_first_appearance() {
        let v = json!([
            {"jwt.kid": "abc", "jwt.sub": "u-1", "token": "fp:0123456789abcdef", "iat": 17},
            {"jwt.kid": "abc", "jwt.sub": "u-2", "token": "fp:0123456789abcdee", "exp": 18},
            {"jwt.kid": "xyz", "jwt.sub": "u-1", "client_id": "keel-ci"}
        ]);
        let n = normalize(&v);
        assert_eq!(n[0]["jwt.kid"], "[kid#1]");
        assert_eq!(n[1]["jwt.kid"], "[kid#1]");
        assert_eq!(n[2]["jwt.kid"], "[kid#2]");
        assert_eq!(n[0]["jwt.sub"], "[sub#1]");
        assert_eq!(n[1]["jwt.sub"], "[sub#2]");
        assert_eq!(n[2]["jwt.sub"], "[sub#1]");
        assert_eq!(n[0]["token"], "[token#1]");
        assert_eq!(n[1]["token"], "[token#2]");
        assert_eq!(n[0]["iat"], "[ts]");
        assert_eq!(n[2]["client_id"], "keel-ci");
    }

    #[test]
    fn unexpected_shapes_are_marked() {
        let n = normalize(&json!({"jwt.kid": "has space", "token": "raw-token-value"}));
        assert_eq!(n["jwt.kid"], "[kid!unexpected-shape#1]");
        assert_eq!(n["token"], "[token!unexpected-shape#1]");
    }

    #[test]
    fn local_urls_and_issuers_are_placeholders() {
        let n = normalize(
            &json!({"jwt.iss": "http://127.0.0.1:4242", "jwt.aud": "http://127.0.0.1:4242/api"}),
        );
        assert_eq!(n["jwt.iss"], "[iss#1]");
        assert_eq!(n["jwt.aud"], "[url#1]");
    }

    #[test]
    fn string_timestamps_are_flagged_not_hidden() {
        let n = normalize(&json!({"introspection.exp": "1700000000"}));
        assert_eq!(n["introspection.exp"], "[ts:string-number]");
    }
}
