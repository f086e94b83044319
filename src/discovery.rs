//! Endpoint discovery: RFC 8414 authorization-server metadata, then OpenID Connect discovery,
//! with explicit endpoints from the target file taking precedence.

use serde_json::{Map, Value};

use crate::client::{HttpError, IssuerClient};
use crate::target::Endpoints;

/// The endpoints keel will use.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Resolved {
    /// Issuer identifier.
    pub issuer: String,
    /// Token endpoint.
    pub token: String,
    /// Introspection endpoint.
    pub introspection: Option<String>,
    /// Revocation endpoint.
    pub revocation: Option<String>,
    /// JWKS.
    pub jwks: Option<String>,
    /// Authorization endpoint.
    pub authorization: Option<String>,
    /// The metadata document URL it came from, if any.
    pub metadata_url: Option<String>,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer could not be reached at all.
    #[error(
        "issuer unreachable: {0} (fix: check [issuer] url in the target file, and that the issuer is running and reachable from here)"
    )]
    Unreachable(HttpError),
    /// No metadata and no explicit token endpoint.
    #[error(
        "no authorization-server metadata at {tried} ({why}) and no [issuer.endpoints] token in the target file"
    )]
    NoMetadata {
        /// URLs tried.
        tried: String,
        /// What came back.
        why: String,
    },
    /// The metadata names another issuer (RFC 8414 §3.3).
    #[error(
        "metadata at {url} names issuer {found:?}, but the target file says {expected:?} (RFC 8414 §3.3)"
    )]
    IssuerMismatch {
        /// Metadata URL.
        url: String,
        /// Found.
        found: String,
        /// Expected.
        expected: String,
    },
}

/// The two well-known URLs for `issuer`, RFC 8414 §3.1 first.
pub fn well_known_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = Vec::new();
    if let Ok(u) = url::Url::parse(trimmed) {
        let path = u.path().trim_end_matches('/');
        let origin = u.origin().ascii_serialization();
        urls.push(format!(
            "{origin}/.well-known/oauth-authorization-server{path}"
        ));
    }
    urls.push(format!("{trimmed}/.well-known/openid-configuration"));
    urls
}

/// Discovers endpoints for `issuer`, overridden by `explicit`.
pub async fn discover(
    client: &IssuerClient,
    issuer: &str,
    explicit: &Endpoints,
) -> Result<Resolved, DiscoveryError> {
    let mut found: Option<(String, Map<String, Value>)> = None;
    let mut why = Vec::new();
    let urls = well_known_urls(issuer);
    for url in &urls {
        match client.get(url).await {
            Ok(reply) if reply.status == 200 => match reply.json_object() {
                Ok(m) => {
                    found = Some((url.clone(), m));
                    break;
                }
                Err(e) => why.push(e.to_string()),
            },
            Ok(reply) => why.push(reply.describe()),
            Err(e @ (HttpError::Transport { .. } | HttpError::Timeout { .. })) => {
                if explicit.token.is_none() {
                    return Err(DiscoveryError::Unreachable(e));
                }
                why.push(e.to_string());
            }
            Err(e) => why.push(e.to_string()),
        }
    }
    let str_of =
        |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let (metadata_url, meta) = match found {
        Some((u, m)) => (Some(u), m),
        None => (None, Map::new()),
    };
    if let (Some(url), Some(found_iss)) = (&metadata_url, str_of(&meta, "issuer"))
        && found_iss.trim_end_matches('/') != issuer.trim_end_matches('/')
    {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.clone(),
            found: found_iss,
            expected: issuer.to_owned(),
        });
    }
    let token = explicit
        .token
        .clone()
        .or_else(|| str_of(&meta, "token_endpoint"));
    let Some(token) = token else {
        return Err(DiscoveryError::NoMetadata {
            tried: urls.join(", "),
            why: why.join("; "),
        });
    };
    Ok(Resolved {
        issuer: issuer.trim_end_matches('/').to_owned(),
        token,
        introspection: explicit
            .introspection
            .clone()
            .or_else(|| str_of(&meta, "introspection_endpoint")),
        revocation: explicit
            .revocation
            .clone()
            .or_else(|| str_of(&meta, "revocation_endpoint")),
        jwks: explicit.jwks.clone().or_else(|| str_of(&meta, "jwks_uri")),
        authorization: explicit
            .authorization
            .clone()
            .or_else(|| str_of(&meta, "authorization_endpoint")),
        metadata_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_inserts_the_well_known_segment_before_the_path() {
        assert_eq!(
            well_known_urls("https://a.example/tenant1"),
            vec![
                "https://a.example/.well-known/oauth-authorization-server/tenant1".to_owned(),
                "https://a.example/tenant1/.well-known/openid-configuration".to_owned(),
            ]
        );
        assert_eq!(
            well_known_urls("http://127.0.0.1:8080")[0],
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
    }
}
