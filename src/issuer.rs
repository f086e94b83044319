//! OAuth 2.0 operations against the issuer under test, built on [`crate::client`].
//!
//! Each function returns the issuer's answer in a form the steps can judge; transport problems
//! and garbage are [`Problem::Error`] with the request named. Tokens are held in [`Held`], whose
//! `Debug` shows only a fingerprint.

use serde_json::{Map, Value};

use crate::client::{Auth, Reply};
use crate::context::{Context, Creds};
use crate::target::AuthMethod;
use crate::verdict::{Problem, error, not_applicable};

/// The kind of a held token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
    /// An API key.
    ApiKey,
}

/// A live token. Never printed: use [`Held::fingerprint`].
#[derive(Clone)]
pub struct Held {
    /// Access or refresh.
    pub kind: TokenKind,
    /// The token itself.
    pub value: String,
    /// Its keyed fingerprint.
    pub fingerprint: String,
    /// Scope granted with it, if the response said.
    pub scope: Option<String>,
    /// Issued to the user-token client (`[user_tokens]` may name its own client).
    pub user: bool,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({:?}, {})", self.kind, self.fingerprint)
    }
}

/// A successful token response.
#[derive(Debug)]
pub struct Issued {
    /// The access token.
    pub access: Held,
    /// The refresh token, if any.
    pub refresh: Option<Held>,
    /// `expires_in`, if present.
    pub expires_in: Option<i64>,
    /// The response's `Date` header.
    pub date: Option<String>,
}

fn hold(ctx: &Context, kind: TokenKind, value: &str, scope: Option<String>) -> Held {
    Held {
        kind,
        value: value.to_owned(),
        fingerprint: ctx.fingerprint(value),
        scope,
        user: false,
    }
}

/// Sends a form to the token endpoint with client authentication.
pub async fn token_request(
    ctx: &Context,
    creds: &Creds,
    form: &[(&str, &str)],
) -> Result<Reply, Problem> {
    token_request_with(ctx, creds, form, &[]).await
}

/// A token request with the client's extra parameters (`token_params`) and extra headers.
async fn token_request_with(
    ctx: &Context,
    creds: &Creds,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Reply, Problem> {
    let mut body: Vec<(&str, &str)> = form.to_vec();
    for (k, v) in &creds.params {
        if !body.iter().any(|(bk, _)| bk == k) {
            body.push((k, v));
        }
    }
    post_with(ctx, creds, &ctx.endpoints.token, &body, headers).await
}

/// A form POST with the client's authentication, to any issuer URL.
pub async fn post_authenticated(
    ctx: &Context,
    creds: &Creds,
    url: &str,
    form: &[(&str, &str)],
) -> Result<Reply, Problem> {
    post_with(ctx, creds, url, form, &[]).await
}

/// HTTP Basic credentials (if any) and the form parameters that authenticate a client.
type ClientAuth = (Option<(String, String)>, Vec<(String, String)>);

/// Client authentication for a form, per the client's method: the `Auth` to send and the form
/// parameters to add. Only [`post_with`] calls it.
fn authenticate(ctx: &Context, creds: &Creds) -> Result<ClientAuth, Problem> {
    match creds.method {
        AuthMethod::ClientSecretBasic => Ok((
            Some((creds.id.clone(), creds.secret.expose().to_owned())),
            Vec::new(),
        )),
        AuthMethod::ClientSecretPost => Ok((
            None,
            vec![
                ("client_id".into(), creds.id.clone()),
                ("client_secret".into(), creds.secret.expose().to_owned()),
            ],
        )),
        AuthMethod::PrivateKeyJwt => {
            let assertion = client_assertion(ctx, creds)?;
            Ok((
                None,
                vec![
                    ("client_id".into(), creds.id.clone()),
                    (
                        "client_assertion_type".into(),
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                    ),
                    ("client_assertion".into(), assertion),
                ],
            ))
        }
    }
}

/// An RFC 7523 §3 client assertion: iss = sub = client id, aud = the issuer and its token
/// endpoint, a fresh jti, one minute of life, signed with the client's private key.
fn client_assertion(ctx: &Context, creds: &Creds) -> Result<String, Problem> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = creds.secret.expose().as_bytes();
    let (alg_name, kid) = creds.assertion.clone().unwrap_or_default();
    let bad = |e: jsonwebtoken::errors::Error| {
        error(format!(
            "the private key for private_key_jwt cannot be used ({e:?}): put a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----) in the variable named by secret_env"
        ))
    };
    let (alg, key) = if alg_name.starts_with("ES")
        || (alg_name.is_empty() && EncodingKey::from_ec_pem(pem).is_ok())
    {
        let alg = if alg_name == "ES384" {
            Algorithm::ES384
        } else {
            Algorithm::ES256
        };
        (alg, EncodingKey::from_ec_pem(pem).map_err(bad)?)
    } else if alg_name == "EdDSA" || (alg_name.is_empty() && EncodingKey::from_ed_pem(pem).is_ok())
    {
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(pem).map_err(bad)?,
        )
    } else {
        let alg = match alg_name.as_str() {
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            _ => Algorithm::RS256,
        };
        (alg, EncodingKey::from_rsa_pem(pem).map_err(bad)?)
    };
    let mut header = Header::new(alg);
    header.kid = kid;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = serde_json::json!({
        "iss": creds.id, "sub": creds.id,
        "aud": [ctx.endpoints.issuer, ctx.endpoints.token],
        "jti": format!("{:032x}", rand::random::<u128>()),
        "iat": now, "exp": now + 60,
    });
    jsonwebtoken::encode(&header, &claims, &key).map_err(bad)
}

/// A form POST with client authentication and extra headers.
async fn post_with(
    ctx: &Context,
    creds: &Creds,
    url: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Reply, Problem> {
    let (basic, extra) = authenticate(ctx, creds)?;
    let mut body: Vec<(&str, &str)> = form.to_vec();
    for (k, v) in &extra {
        body.push((k, v));
    }
    let auth = match &basic {
        Some((id, secret)) => Auth::Basic(id, secret),
        None => Auth::None,
    };
    Ok(ctx.client.post_form(url, &body, auth, headers).await?)
}

/// Reads a successful token response, or explains the failure (RFC 6749 §5.2 error included).
pub fn parse_token_response(ctx: &Context, reply: &Reply, what: &str) -> Result<Issued, Problem> {
    if reply.status != 200 {
        return Err(error(format!(
            "{what}: {}{}",
            reply.describe(),
            oauth_error(reply)
        )));
    }
    let body = reply
        .json_object()
        .map_err(|e| error(format!("{what}: {e}")))?;
    let access = match body.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(error(format!(
                "{what}: {}: access_token is not a non-empty string",
                reply.describe()
            )));
        }
        None => {
            return Err(error(format!(
                "{what}: {}: no access_token in the response",
                reply.describe()
            )));
        }
    };
    let scope = body.get("scope").and_then(Value::as_str).map(str::to_owned);
    let refresh = match body.get("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => {
            Some(hold(ctx, TokenKind::Refresh, s, scope.clone()))
        }
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(error(format!(
                "{what}: {}: refresh_token is not a string",
                reply.describe()
            )));
        }
    };
    let expires_in = match body.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v >= 0) => n.as_i64(),
        Some(v) => {
            return Err(error(format!(
                "{what}: {}: expires_in is {}, not a non-negative integer number of seconds (RFC 6749 §5.1)",
                reply.describe(),
                v.to_string().chars().take(40).collect::<String>()
            )));
        }
    };
    // A token shaped like a JWS (eyJ… with two dots) that does not decode is malformed, not
    // opaque: say so instead of letting later steps fail for an obscure reason.
    if access.starts_with("eyJ")
        && access.matches('.').count() == 2
        && let Err(e) = crate::token::jwt::decode(&access)
    {
        return Err(error(format!(
            "{what}: {}: the access token looks like a JWT but is malformed: {e}",
            reply.describe()
        )));
    }
    Ok(Issued {
        access: hold(ctx, TokenKind::Access, &access, scope),
        refresh,
        expires_in,
        date: reply.header("date").map(str::to_owned),
    })
}

/// ` (invalid_grant: description)` from an RFC 6749 §5.2 body, or empty.
pub fn oauth_error(reply: &Reply) -> String {
    match reply.json_object() {
        Ok(m) => {
            let code = m.get("error").and_then(Value::as_str).unwrap_or("");
            let desc = m
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            match (code, desc) {
                ("", _) => String::new(),
                (c, "") => format!(" ({c})"),
                (c, d) => format!(" ({c}: {})", d.chars().take(200).collect::<String>()),
            }
        }
        Err(_) => String::new(),
    }
}

/// The `error` member of an RFC 6749 §5.2 body.
pub fn oauth_error_code(reply: &Reply) -> Option<String> {
    reply
        .json_object()
        .ok()?
        .get("error")?
        .as_str()
        .map(str::to_owned)
}

/// Client-credentials grant.
pub async fn client_credentials(ctx: &Context) -> Result<Issued, Problem> {
    client_credentials_as(ctx, &ctx.creds, None, None).await
}

/// Client-credentials grant for `creds`, optionally with a scope and an `Idempotency-Key`;
/// returns the raw reply when `raw` callers need the status.
pub async fn client_credentials_reply(
    ctx: &Context,
    creds: &Creds,
    scope: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<Reply, Problem> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope.or(creds.scope.as_deref()) {
        form.push(("scope", s));
    }
    let headers: Vec<(&str, &str)> = idempotency_key
        .map(|k| ("idempotency-key", k))
        .into_iter()
        .collect();
    token_request_with(ctx, creds, &form, &headers).await
}

/// Client-credentials grant for `creds` (see [`client_credentials_reply`]).
pub async fn client_credentials_as(
    ctx: &Context,
    creds: &Creds,
    scope: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<Issued, Problem> {
    let reply = client_credentials_reply(ctx, creds, scope, idempotency_key).await?;
    parse_token_response(ctx, &reply, "client-credentials grant")
}

/// Validates an API key at the target's validation URL; the answer object.
pub async fn validate_api_key(ctx: &Context, key: &str) -> Result<Map<String, Value>, Problem> {
    let Some((api, _)) = &ctx.api_keys else {
        return Err(not_applicable("the target declares no [api_keys] resource"));
    };
    let reply = post_authenticated(ctx, &ctx.creds, &api.validate, &[("api_key", key)]).await?;
    if reply.status != 200 {
        return Err(error(format!(
            "API-key validation: {}{}",
            reply.describe(),
            oauth_error(&reply)
        )));
    }
    reply
        .json_object()
        .map_err(|e| error(format!("API-key validation: {e}")))
}

/// Holds an API key.
pub fn hold_api_key(ctx: &Context, key: &str) -> Held {
    hold(ctx, TokenKind::ApiKey, key, None)
}

/// User tokens (an access token with a refresh token) the way the target declares:
/// authorization code, password grant, or a command that prints a token response.
pub async fn user_tokens(ctx: &Context) -> Result<Issued, Problem> {
    use crate::target::UserTokenMethod;
    let Some(ut) = &ctx.user_tokens else {
        return Err(not_applicable(
            "the target declares no [user_tokens], so keel cannot obtain user tokens or refresh tokens",
        ));
    };
    match ut.method {
        UserTokenMethod::AuthorizationCode => authorization_code(ctx).await.map(mark_user),
        UserTokenMethod::Password => {
            let username = ut.username.clone().unwrap_or_default();
            let var = ut.password_env.clone().unwrap_or_default();
            let password = std::env::var(&var).map_err(|_| {
                error(format!(
                    "environment variable {var} (the test user's password) is not set"
                ))
            })?;
            let mut form = vec![
                ("grant_type", "password"),
                ("username", username.as_str()),
                ("password", password.as_str()),
            ];
            if let Some(s) = &ut.scope {
                form.push(("scope", s));
            }
            let reply = token_request(ctx, ctx.user_creds(), &form).await?;
            parse_token_response(ctx, &reply, "password grant").map(mark_user)
        }
        UserTokenMethod::Command => {
            let cmd = ut.run.clone().unwrap_or_default();
            let out = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .map_err(|_| {
                error(format!(
                    "user-token command `{cmd}` did not finish within 60s"
                ))
            })?
            .map_err(|e| error(format!("user-token command `{cmd}` could not run: {e}")))?;
            if !out.status.success() {
                return Err(error(format!(
                    "user-token command `{cmd}` failed ({})",
                    out.status
                )));
            }
            // The command's output is a token response: treat it like one from the token endpoint.
            let reply = Reply {
                method: "RUN",
                url: format!("command `{cmd}`"),
                status: 200,
                headers: Default::default(),
                body: out.stdout,
            };
            parse_token_response(ctx, &reply, "user-token command").map(mark_user)
        }
    }
}

/// Marks the tokens of a response as the user-token client's.
pub fn mark_user(mut issued: Issued) -> Issued {
    issued.access.user = true;
    if let Some(r) = issued.refresh.as_mut() {
        r.user = true;
    }
    issued
}

/// Authorization-code grant with PKCE against an issuer that approves the test user itself.
pub async fn authorization_code(ctx: &Context) -> Result<Issued, Problem> {
    use base64::Engine as _;
    let Some(ut) = &ctx.user_tokens else {
        return Err(not_applicable(
            "the target declares no [user_tokens], so keel cannot obtain user tokens or refresh tokens",
        ));
    };
    let Some(authz) = &ctx.endpoints.authorization else {
        return Err(error(
            "[user_tokens] is declared but the issuer has no authorization endpoint",
        ));
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode(rand::random::<[u8; 32]>());
    let challenge = b64.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    let state = b64.encode(rand::random::<[u8; 12]>());
    let mut url = url::Url::parse(authz)
        .map_err(|e| error(format!("authorization endpoint {authz:?}: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &ctx.user_creds().id)
            .append_pair("redirect_uri", &ut.redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        if let Some(s) = &ut.scope {
            q.append_pair("scope", s);
        }
        if let Some(h) = &ut.login_hint {
            q.append_pair("login_hint", h);
        }
    }
    let reply = ctx.client.get(url.as_str()).await?;
    if !(300..400).contains(&reply.status) {
        return Err(error(format!(
            "authorization request: expected a redirect carrying the code (automatic consent), got {}{}",
            reply.describe(),
            oauth_error(&reply)
        )));
    }
    let location = reply.header("location").ok_or_else(|| {
        error(format!(
            "authorization request: {} without a Location header",
            reply.describe()
        ))
    })?;
    let loc = url::Url::parse(location)
        .or_else(|_| url.join(location))
        .map_err(|e| error(format!("authorization request: unreadable Location: {e}")))?;
    let pairs: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    if let Some(e) = pairs.get("error") {
        return Err(error(format!(
            "authorization request: the issuer redirected with error {e:?}"
        )));
    }
    if pairs.get("state") != Some(&state) {
        return Err(error(
            "authorization request: the redirect does not carry the state keel sent",
        ));
    }
    let code = pairs
        .get("code")
        .ok_or_else(|| error("authorization request: the redirect carries no code"))?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", ut.redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let reply = token_request(ctx, ctx.user_creds(), &form).await?;
    parse_token_response(ctx, &reply, "authorization-code grant")
}

/// Presents `refresh_token` at the token endpoint; returns the raw reply.
pub async fn refresh(ctx: &Context, refresh_token: &str) -> Result<Reply, Problem> {
    token_request(
        ctx,
        ctx.user_creds(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The outcome of introspection.
#[derive(Debug, Clone)]
pub struct Introspection {
    /// The response object.
    pub body: Map<String, Value>,
    /// `active`, if it is a boolean.
    pub active: Option<bool>,
}

/// RFC 7662 introspection of `token`.
pub async fn introspect(
    ctx: &Context,
    token: &str,
    hint: Option<&str>,
) -> Result<Introspection, Problem> {
    let Some(url) = &ctx.endpoints.introspection else {
        return Err(not_applicable(
            "the issuer has no introspection endpoint (none discovered or declared)",
        ));
    };
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    let reply = post_authenticated(ctx, &ctx.creds, url, &form).await?;
    if reply.status != 200 {
        return Err(error(format!(
            "introspection: {}{}",
            reply.describe(),
            oauth_error(&reply)
        )));
    }
    let body = reply
        .json_object()
        .map_err(|e| error(format!("introspection: {e}")))?;
    let active = body.get("active").and_then(Value::as_bool);
    Ok(Introspection { body, active })
}

/// RFC 7009 revocation of `token`; returns the raw reply.
pub async fn revoke(ctx: &Context, token: &str, hint: Option<&str>) -> Result<Reply, Problem> {
    revoke_as(ctx, &ctx.creds, token, hint).await
}

/// RFC 7009 revocation of `token` by the client that holds it.
pub async fn revoke_held(ctx: &Context, held: &Held, hint: Option<&str>) -> Result<Reply, Problem> {
    let creds = if held.user {
        ctx.user_creds()
    } else {
        &ctx.creds
    };
    revoke_as(ctx, creds, &held.value, hint).await
}

/// RFC 7009 revocation as `creds`.
pub async fn revoke_as(
    ctx: &Context,
    creds: &Creds,
    token: &str,
    hint: Option<&str>,
) -> Result<Reply, Problem> {
    let Some(url) = &ctx.endpoints.revocation else {
        return Err(not_applicable(
            "the issuer has no revocation endpoint (none discovered or declared)",
        ));
    };
    let mut form = vec![("token", token)];
    if let Some(h) = hint {
        form.push(("token_type_hint", h));
    }
    post_authenticated(ctx, creds, url, &form).await
}

/// The JWKS document.
pub async fn jwks(ctx: &Context) -> Result<Value, Problem> {
    let Some(url) = &ctx.endpoints.jwks else {
        return Err(not_applicable(
            "the issuer publishes no JWKS (no jwks_uri discovered or declared)",
        ));
    };
    let reply = ctx.client.get(url).await?;
    if reply.status != 200 {
        return Err(error(format!("JWKS: {}", reply.describe())));
    }
    let body = reply
        .json_object()
        .map_err(|e| error(format!("JWKS: {e}")))?;
    if !body.get("keys").is_some_and(Value::is_array) {
        return Err(error(format!(
            "JWKS: {} has no \"keys\" array",
            reply.describe()
        )));
    }
    Ok(Value::Object(body))
}
