//! `keel init`: a commented target file from an issuer's metadata, with clear placeholders for
//! what metadata cannot tell.
//!
//! Metadata is a claim, not a proof: `grant_types_supported` says what an issuer may allow, not
//! what the client keel will use is allowed to do, so the generated file says what it could not
//! confirm instead of declaring it.

use serde_json::{Map, Value};

use crate::client::IssuerClient;
use crate::discovery;

/// Why `init` could not write a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// No metadata document answered.
    #[error(
        "no authorization-server metadata at {tried}: {why} (fix: check the issuer URL; keel tries RFC 8414 then OpenID discovery)"
    )]
    NoMetadata {
        /// URLs tried.
        tried: String,
        /// What came back.
        why: String,
    },
}

/// Reads `issuer`'s metadata and renders a target file.
pub async fn init(client: &IssuerClient, issuer: &str) -> Result<String, InitError> {
    let mut why = Vec::new();
    let urls = discovery::well_known_urls(issuer);
    for url in &urls {
        match client.get(url).await {
            Ok(r) if r.status == 200 => match r.json_object() {
                Ok(m) => return Ok(render(issuer, url, &m)),
                Err(e) => why.push(e.to_string()),
            },
            Ok(r) => why.push(r.describe()),
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(InitError::NoMetadata {
        tried: urls.join(", "),
        why: why.join("; "),
    })
}

fn strings(m: &Map<String, Value>, key: &str) -> Vec<String> {
    m.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Renders the target file for metadata `m` found at `url`.
pub fn render(issuer: &str, url: &str, m: &Map<String, Value>) -> String {
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let iss = s("issuer").unwrap_or_else(|| issuer.trim_end_matches('/').to_owned());
    let grants = strings(m, "grant_types_supported");
    let auth = strings(m, "token_endpoint_auth_methods_supported");
    let method = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    .into_iter()
    .find(|x| auth.is_empty() || auth.iter().any(|a| a == x))
    .unwrap_or("client_secret_basic");
    let mut out = String::new();
    out.push_str(&format!(
        "# keel target file, written by `keel init` from {url}.\n\
         # Lines marked TODO need you: metadata cannot tell them. `keel check FILE` validates it.\n\n"
    ));
    out.push_str(&format!("[issuer]\nurl = \"{iss}\"\n"));
    out.push_str(
        "# Discovered endpoints (uncomment to override discovery):\n# [issuer.endpoints]\n",
    );
    for (k, key) in [
        ("token", "token_endpoint"),
        ("introspection", "introspection_endpoint"),
        ("revocation", "revocation_endpoint"),
        ("jwks", "jwks_uri"),
        ("authorization", "authorization_endpoint"),
    ] {
        match s(key) {
            Some(v) => out.push_str(&format!("# {k} = \"{v}\"\n")),
            None => out.push_str(&format!(
                "# {k}: none advertised; requirements that need it will be not applicable\n"
            )),
        }
    }
    out.push_str(&format!(
        "\n[client]\nid = \"TODO-client-id\"              # TODO: a client registered for keel\n\
         secret_env = \"KEEL_CLIENT_SECRET\"     # the secret itself never goes in this file\n\
         auth_method = \"{method}\"  # advertised: {}\n",
        if auth.is_empty() {
            "(nothing advertised)".to_owned()
        } else {
            auth.join(", ")
        }
    ));
    out.push_str(
        "# scope = \"read\"\n# token_params = { resource = \"https://api.example.com\" }\n\n",
    );
    out.push_str("[capabilities]\n");
    out.push_str("# TODO: confirm from a real token; metadata does not say.\n");
    out.push_str("# access_token = \"jwt\"                  # or \"opaque\"\n");
    if grants.iter().any(|g| g == "refresh_token") {
        out.push_str("# refresh_policy = \"rotate\"            # TODO: rotate, reuse or none (refresh_token is advertised, the policy is not)\n");
    } else {
        out.push_str(
            "# refresh_policy = \"none\"              # refresh_token is not advertised\n",
        );
    }
    out.push_str("# access_token_lifetime = \"3600s\"\n");
    out.push_str("# [capabilities.refresh_token]\n# format = \"opaque\"                      # or \"prefixed\" with prefix, public_id_length, checksum = \"crc32-base62\"\n\n");
    out.push_str(&format!(
        "# How keel gets user tokens. grant_types_supported says: {}.\n\
         # keel does not trust that list alone: the client must be allowed the grant, and an\n\
         # authorization-code flow must be approved without a browser. Unconfirmed, so commented:\n",
        if grants.is_empty() { "(nothing)".to_owned() } else { grants.join(", ") }
    ));
    if grants.iter().any(|g| g == "password") {
        out.push_str("# [user_tokens]\n# method = \"password\"\n# username = \"TODO\"\n# password_env = \"KEEL_USER_PASSWORD\"\n");
    }
    if grants.iter().any(|g| g == "authorization_code") {
        out.push_str("# [user_tokens]\n# method = \"authorization_code\"       # only if the issuer approves the test user itself\n# redirect_uri = \"TODO\"\n# login_hint = \"TODO\"\n");
    }
    out.push_str("# [user_tokens]\n# method = \"command\"                    # a script printing a token response as JSON\n# run = \"TODO\"\n\n");
    out.push_str(
        "# Lifecycle hooks: TODO, each a shell command (run = \"...\") or an HTTP call\n\
         # (http = { url = \"...\", method = \"POST\", bearer_env = \"...\" }).\n\
         # [hooks.restart]\n# run = \"systemctl restart my-issuer\"\n# ready_timeout = \"30s\"\n\
         # [hooks.kill]            # SIGKILL and start: checks durability (RST-6)\n\
         # [hooks.migrate] / [hooks.rollback] / [hooks.stage_signing_key] / [hooks.activate_signing_key] / [hooks.rotate_signing_key]\n\n\
         # How keel proves an event happened (else it needs to observe downtime during the hook):\n\
         # [proof]\n# boot_id_url = \"TODO\"                # JSON with an id that changes at every start\n\
         # boot_id_pointer = \"/boot_id\"\n# schema_version_url = \"TODO\"          # needed by migrate and rollback hooks\n\n\
         [http]\ntimeout = \"10s\"\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_file_that_parses() {
        let m = serde_json::json!({
            "issuer": "https://auth.example.com",
            "token_endpoint": "https://auth.example.com/token",
            "grant_types_supported": ["client_credentials", "refresh_token", "password"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        });
        let text = render(
            "https://auth.example.com",
            "https://auth.example.com/.well-known/x",
            m.as_object().unwrap(),
        );
        assert!(text.contains("auth_method = \"client_secret_post\""));
        assert!(text.contains("method = \"password\""));
        assert!(text.contains("does not trust"));
        // The file parses; the only problem is the placeholder that the user must fill in.
        let e = crate::target::parse(std::path::Path::new("t.toml"), &text, |_| Some("s".into()))
            .unwrap_err();
        assert!(e.message.contains("TODO placeholder"), "{e}");
        let filled = text.replace("TODO-client-id", "keel-ci");
        let (f, _) = crate::target::parse(std::path::Path::new("t.toml"), &filled, |_| {
            Some("s".into())
        })
        .unwrap();
        assert_eq!(f.issuer.url.get_ref(), "https://auth.example.com");
    }
}
