//! Form parsing and client authentication (`client_secret_basic`, `client_secret_post`).

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::OAuthError;
use crate::config::{Client, Config};
use crate::tokens::ct_eq;

/// Parses an `application/x-www-form-urlencoded` body or query. Empty values count as absent
/// (RFC 6749 §3.1); a repeated parameter is an `invalid_request`.
pub(crate) fn parse_form(raw: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if v.is_empty() {
            continue;
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k:?} given more than once"
            )));
        }
    }
    Ok(out)
}

/// Decodes one `application/x-www-form-urlencoded` component (RFC 6749 §2.3.1: Basic
/// credentials are form-encoded before base64).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Authenticates the client of a token, introspection or revocation request.
pub(crate) fn authenticate<'c>(
    config: &'c Config,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<&'c Client, OAuthError> {
    let (id, secret, basic) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
            let value = value.to_str().map_err(|_| bad())?;
            let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "only HTTP Basic client authentication is supported in the header",
                    true,
                ));
            }
            let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
            let id = form_decode(id).ok_or_else(bad)?;
            let secret = form_decode(secret).ok_or_else(bad)?;
            if form.contains_key("client_secret") {
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method used",
                ));
            }
            if form.get("client_id").is_some_and(|form_id| *form_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id, secret, true)
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone(), false),
            _ => {
                return Err(OAuthError::invalid_client(
                    "client authentication required",
                    false,
                ));
            }
        },
    };
    match config.client(&id) {
        Some(client) if ct_eq(client.secret.as_bytes(), secret.as_bytes()) => Ok(client),
        _ => Err(OAuthError::invalid_client(
            "client authentication failed",
            basic,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        assert!(parse_form(b"a=1&a=2").is_err());
        let f = parse_form(b"a=1&b=&c=x+y").unwrap();
        assert_eq!(f.get("c").map(String::as_str), Some("x y"));
        assert!(!f.contains_key("b"));
    }
}
