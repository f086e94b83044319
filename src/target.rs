//! Target files: the issuer under test, how to reach and authenticate to it, what it claims,
//! and the hooks that trigger lifecycle events.
//!
//! Parsing is strict (`deny_unknown_fields`) so that a misspelt key is an error with a line
//! number, never a silently ignored setting. Secrets are named by environment variable and read
//! at load time, so a missing one stops the run before any request is sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A problem with a target file, with the line it is on and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}{}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), fix.as_ref().map(|f| format!(" (fix: {f})")).unwrap_or_default())]
pub struct TargetError {
    /// The target file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: Option<String>,
}

/// The target file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Where the issuer is.
    pub issuer: IssuerSection,
    /// The client keel authenticates as.
    pub client: ClientSection,
    /// What the issuer claims about its tokens.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// How keel obtains user (authorization-code) tokens, which carry refresh tokens.
    pub user_tokens: Option<UserTokens>,
    /// Lifecycle hooks.
    #[serde(default)]
    pub hooks: Hooks,
    /// How a lifecycle event is proven.
    #[serde(default)]
    pub proof: Proof,
    /// HTTP limits.
    #[serde(default)]
    pub http: HttpSettings,
    /// A second client, for requirements that compare two principals.
    pub second_client: Option<ClientSection>,
    /// The API-key resource (keel's reference protocol).
    pub api_keys: Option<ApiKeys>,
    /// Where each identity reference can be read: `jwt`, `introspection` or `none`
    /// (e.g. `sub = "introspection"`); undeclared ones are read from the JWT, or from
    /// introspection for opaque tokens.
    #[serde(default)]
    pub identity: std::collections::BTreeMap<String, Location>,
}

/// Where an identity reference is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// A claim of the JWT access token.
    Jwt,
    /// A member of the RFC 7662 introspection response.
    Introspection,
    /// Not exposed at all (a warning, not a failure: the target says so).
    None,
}

/// `[api_keys]`: issue, validate and roll API keys (the reference issuer's protocol: form
/// POSTs, client-authenticated; `roll` contains `{id}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeys {
    /// Issue URL (form `name=`), answering `{"api_key", "id"}`.
    pub issue: String,
    /// Validate URL (form `api_key=`), answering `{"valid": bool, "id"}`.
    pub validate: String,
    /// Roll URL with `{id}`, answering `{"api_key", "id"}`.
    pub roll: String,
    /// Grace period of the previous secret after a roll.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

/// `[issuer]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    /// The issuer identifier; discovery starts from it.
    pub url: toml::Spanned<String>,
    /// Endpoints that override (or replace) discovery.
    #[serde(default)]
    pub endpoints: Endpoints,
}

/// `[issuer.endpoints]`: each overrides discovery.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Token endpoint.
    pub token: Option<String>,
    /// RFC 7662 introspection endpoint.
    pub introspection: Option<String>,
    /// RFC 7009 revocation endpoint.
    pub revocation: Option<String>,
    /// JWKS URL.
    pub jwks: Option<String>,
    /// Authorization endpoint.
    pub authorization: Option<String>,
}

/// How the client authenticates at the token, introspection and revocation endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// Credentials in the form body.
    ClientSecretPost,
    /// An RFC 7523 client assertion signed with the private key (PEM) held in `secret_env`.
    PrivateKeyJwt,
}

/// `[client]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Client id.
    pub id: String,
    /// The environment variable that holds the client secret.
    pub secret_env: toml::Spanned<String>,
    /// Client authentication method.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// Scope to request, if the issuer needs one.
    pub scope: Option<String>,
    /// Extra token-request parameters (RFC 8707 `resource`, `audience`, ...).
    #[serde(default)]
    pub token_params: std::collections::BTreeMap<String, String>,
    /// (private_key_jwt) The JWS algorithm; default from the key type (ES256, EdDSA, RS256).
    pub signing_alg: Option<String>,
    /// (private_key_jwt) The `kid` to put in the assertion header.
    pub key_id: Option<String>,
}

/// `[capabilities]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// The access-token format; when absent keel reads what it gets.
    pub access_token: Option<AccessTokenFormat>,
    /// The refresh-token format; when absent, format requirements on refresh tokens are not
    /// applicable.
    pub refresh_token: Option<TokenFormat>,
    /// What a refresh does to the refresh token; when absent, rotation requirements are not
    /// applicable.
    pub refresh_policy: Option<RefreshPolicy>,
    /// The access-token lifetime the issuer promises (`exp - iat`); when absent, `expires_in`
    /// is used.
    #[serde(default, with = "humantime_serde")]
    pub access_token_lifetime: Option<Duration>,
    /// How far `iat` may be from the response's `Date` header.
    #[serde(default, with = "humantime_serde")]
    pub clock_skew: Option<Duration>,
    /// Whether `Idempotency-Key` is honoured on client-credentials requests.
    #[serde(default)]
    pub idempotency: bool,
    /// The format of API keys (with `[api_keys]`).
    pub api_key: Option<TokenFormat>,
    /// Whether introspection answers for refresh tokens (RFC 7662 allows an issuer to answer
    /// inactive for every refresh token); when false, checks that need it are not applicable.
    #[serde(default = "yes")]
    pub refresh_token_introspection: bool,
}

fn yes() -> bool {
    true
}

/// What the issuer does with a refresh token when it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPolicy {
    /// Every refresh returns a new refresh token; the old one is rotated out (RFC 9700 §4.14.2).
    Rotate,
    /// The same refresh token comes back and stays valid.
    Reuse,
    /// No refresh tokens are issued.
    None,
}

/// How access tokens look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessTokenFormat {
    /// A JWS-signed JWT.
    Jwt,
    /// An opaque string.
    Opaque,
}

/// How an opaque token kind looks.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenFormat {
    /// No structure keel can rely on.
    Opaque,
    /// A fixed prefix, a public id, a secret, and an embedded checksum.
    Prefixed(PrefixedFormat),
}

/// The declared layout of prefixed tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixedFormat {
    /// The fixed type prefix, separator included (`krt_`).
    pub prefix: String,
    /// Length of the public id that follows the prefix.
    pub public_id_length: usize,
    /// Length of the secret, if fixed.
    pub secret_length: Option<usize>,
    /// The checksum scheme of the last segment.
    pub checksum: ChecksumScheme,
}

/// Embedded checksum schemes keel can validate offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumScheme {
    /// CRC-32/IEEE of everything before it, base62 `0-9A-Za-z`, padded to 6 (GitHub's).
    Crc32Base62,
}

/// `[user_tokens]`: the authorization-code grant against an issuer that approves the test user
/// without a browser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTokens {
    /// How: `authorization_code`, `password` or `command`.
    pub method: UserTokenMethod,
    /// (authorization_code) Registered redirect URI; keel never follows it, it reads the code
    /// from `Location`.
    #[serde(default)]
    pub redirect_uri: String,
    /// (authorization_code) `login_hint` naming the test user.
    pub login_hint: Option<String>,
    /// Scope to request.
    pub scope: Option<String>,
    /// (password) The test user's name.
    pub username: Option<String>,
    /// (password) The environment variable holding the test user's password.
    pub password_env: Option<String>,
    /// (command) A shell command that prints an RFC 6749 §5.1 token response (JSON) on stdout.
    pub run: Option<String>,
    /// The client that obtains, refreshes and revokes user tokens, if not `[client]` (issuers
    /// that allow one grant type per client).
    pub client_id: Option<String>,
    /// That client's secret variable.
    pub secret_env: Option<toml::Spanned<String>>,
    /// That client's authentication method.
    pub auth_method: Option<AuthMethod>,
}

/// How user tokens are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserTokenMethod {
    /// RFC 6749 §4.1 with PKCE (RFC 7636), consent given automatically by the issuer.
    AuthorizationCode,
    /// RFC 6749 §4.3, where the target still supports it.
    Password,
    /// A hook command that prints a token response.
    Command,
}

/// `[hooks]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// A restart of the issuer (graceful or not: whatever the command does).
    pub restart: Option<Hook>,
    /// A hard kill (SIGKILL or equivalent) followed by a start.
    pub kill: Option<Hook>,
    /// Publish the next signing key without signing with it (phase 1 of 2).
    pub stage_signing_key: Option<Hook>,
    /// Start signing with the staged key (phase 2 of 2).
    pub activate_signing_key: Option<Hook>,
    /// One-step rotation, for issuers without pre-publication.
    pub rotate_signing_key: Option<Hook>,
    /// Migrate the schema one version up (and restart the issuer on it).
    pub migrate: Option<Hook>,
    /// Roll the schema back one version (and restart the issuer on it).
    pub rollback: Option<Hook>,
}

/// One lifecycle hook: a shell command, then readiness polling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Run with `sh -c`.
    pub run: Option<String>,
    /// Or: an HTTP call.
    pub http: Option<HttpHook>,
    /// How long the issuer may take to answer again after the command returns.
    #[serde(default = "default_ready_timeout", with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// How long the command itself may run.
    #[serde(default = "default_hook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// A hook that is an HTTP call rather than a command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHook {
    /// `POST` unless given.
    #[serde(default = "default_method")]
    pub method: String,
    /// The URL to call.
    pub url: String,
    /// An environment variable holding a bearer token for the call.
    pub bearer_env: Option<String>,
}

fn default_method() -> String {
    "POST".to_owned()
}

impl Hook {
    /// What the hook does, for messages (never a secret).
    pub fn describe(&self) -> String {
        match (&self.run, &self.http) {
            (Some(cmd), _) => format!("hook `{cmd}`"),
            (None, Some(h)) => format!("hook {} {}", h.method, h.url),
            (None, None) => "empty hook".to_owned(),
        }
    }
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `[proof]`: how keel proves a restart happened.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// A URL whose JSON carries an id that changes with every process start.
    pub boot_id_url: Option<String>,
    /// JSON pointer (RFC 6901) to the boot id in that document.
    #[serde(default = "default_boot_pointer")]
    pub boot_id_pointer: String,
    /// A URL whose JSON carries the schema version (proof of a migration or rollback).
    pub schema_version_url: Option<String>,
    /// JSON pointer to the schema version in that document.
    #[serde(default = "default_schema_pointer")]
    pub schema_version_pointer: String,
}

fn default_schema_pointer() -> String {
    "/schema_version".to_owned()
}

impl Default for Proof {
    fn default() -> Self {
        Self {
            boot_id_url: None,
            boot_id_pointer: default_boot_pointer(),
            schema_version_url: None,
            schema_version_pointer: default_schema_pointer(),
        }
    }
}

fn default_boot_pointer() -> String {
    "/boot_id".to_owned()
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Deadline for one request, body included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Cap on a response body, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// A PEM bundle of CA certificates to trust besides the system's (an issuer behind a
    /// private CA); relative to the target file.
    pub ca_bundle: Option<PathBuf>,
    /// How many non-serial scenarios run at once against this target.
    pub concurrency: Option<usize>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            max_body_bytes: default_max_body(),
            ca_bundle: None,
            concurrency: None,
        }
    }
}

fn default_timeout() -> Duration {
    crate::client::DEFAULT_TIMEOUT
}

fn default_max_body() -> usize {
    crate::client::DEFAULT_MAX_BODY
}

/// A client secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A loaded target file with its secret read from the environment.
#[derive(Debug)]
pub struct LoadedTarget {
    /// The file as parsed.
    pub file: TargetFile,
    /// Where it came from.
    pub path: PathBuf,
    /// The client secret.
    pub secret: Secret,
    /// The second client's secret, if a second client is declared.
    pub second_secret: Option<Secret>,
    /// The user-token client's secret, if `[user_tokens]` names its own client.
    pub user_secret: Option<Secret>,
}

/// Reads, parses and validates a target file, and reads its secret from the environment.
pub fn load(path: &Path) -> Result<LoadedTarget, TargetError> {
    let text = std::fs::read_to_string(path).map_err(|e| TargetError {
        path: path.to_owned(),
        line: None,
        message: format!("cannot read the target file: {e}"),
        fix: Some("pass the path of an existing TOML file to --target".into()),
    })?;
    let env = |name: &str| std::env::var(name).ok();
    let (file, secret) = parse(path, &text, env)?;
    let second_secret = match &file.second_client {
        Some(c) => Some(read_secret(path, &text, &c.secret_env, env)?),
        None => None,
    };
    let user_secret = match file
        .user_tokens
        .as_ref()
        .and_then(|u| u.secret_env.as_ref())
    {
        Some(var) => Some(read_secret(path, &text, var, env)?),
        None => None,
    };
    Ok(LoadedTarget {
        file,
        path: path.to_owned(),
        secret,
        second_secret,
        user_secret,
    })
}

/// Reads the secret named by `var` from `env`, or names the line of the variable and the fix.
fn read_secret(
    path: &Path,
    text: &str,
    var: &toml::Spanned<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secret, TargetError> {
    let line = text[..var.span().start.min(text.len())]
        .matches('\n')
        .count()
        + 1;
    let name = var.get_ref();
    let err = |message: String| TargetError {
        path: path.to_owned(),
        line: Some(line),
        message,
        fix: Some(format!(
            "export {name}=<the client secret> before running keel"
        )),
    };
    match env(name) {
        Some(s) if !s.is_empty() => Ok(Secret::new(s)),
        Some(_) => Err(err(format!("environment variable {name} is empty"))),
        None => Err(err(format!(
            "environment variable {name} (the client secret) is not set"
        ))),
    }
}

/// Checks a target file and returns every problem found, each with its line and fix
/// (`keel check`). An unparsable file gives one problem: the first syntax error.
pub fn check(path: &Path) -> Vec<TargetError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![TargetError {
                path: path.to_owned(),
                line: None,
                message: format!("cannot read the target file: {e}"),
                fix: Some("pass the path of an existing TOML file".into()),
            }];
        }
    };
    match syntax(path, &text) {
        Err(e) => vec![e],
        Ok(file) => semantic(path, &text, &file, |name| std::env::var(name).ok()),
    }
}

/// Parses and validates target-file text; `env` looks up environment variables.
pub fn parse(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(TargetFile, Secret), TargetError> {
    let file = syntax(path, text)?;
    let errs = semantic(path, text, &file, &env);
    if let Some(e) = errs.into_iter().next() {
        return Err(e);
    }
    let secret = read_secret(path, text, &file.client.secret_env, &env)?;
    Ok((file, secret))
}

/// Parses the TOML of a target file, naming the line of the first syntax or shape error.
fn syntax(path: &Path, text: &str) -> Result<TargetFile, TargetError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    toml::from_str::<TargetFile>(text).map_err(|e| {
        let message = e.message().trim().to_owned();
        let fix = if message.starts_with("unknown field") {
            Some("remove or rename the key; `keel run --help` lists the target-file keys".into())
        } else if message.starts_with("missing field") {
            Some("add the key; see the example target file in the README".into())
        } else {
            Some("correct the TOML syntax or value at that line".into())
        };
        TargetError {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(s.start)),
            message,
            fix,
        }
    })
}

/// Every problem of a parsed target file beyond its syntax: URLs, secrets in the environment,
/// hook shapes, user-token settings. `keel check` prints them all; a run stops at the first.
fn semantic(
    path: &Path,
    text: &str,
    file: &TargetFile,
    env: impl Fn(&str) -> Option<String>,
) -> Vec<TargetError> {
    let mut errs = Vec::new();
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    for (i, l) in text.lines().enumerate() {
        let code = l.split('#').next().unwrap_or("");
        if code.contains("TODO") {
            errs.push(TargetError {
                path: path.to_owned(),
                line: Some(i + 1),
                message: "a TODO placeholder from `keel init` is still there".into(),
                fix: Some("replace it with the real value".into()),
            });
        }
    }
    let err = |span: std::ops::Range<usize>, message: String, fix: &str| TargetError {
        path: path.to_owned(),
        line: Some(line_of(span.start)),
        message,
        fix: Some(fix.to_owned()),
    };
    let url = file.issuer.url.get_ref();
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => {
            errs.push(err(
                file.issuer.url.span(),
                format!("issuer url {url:?} is not an http(s) URL"),
                "write the issuer identifier, e.g. url = \"https://auth.example.com\"",
            ));
        }
    }
    if let Err(e) = read_secret(path, text, &file.client.secret_env, &env) {
        errs.push(e);
    }
    if let Some(c) = &file.second_client
        && let Err(e) = read_secret(path, text, &c.secret_env, &env)
    {
        errs.push(e);
    }
    if let Some(ca) = &file.http.ca_bundle {
        let ca_path = if ca.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(ca)
        } else {
            ca.clone()
        };
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("ca_bundle"))
            .map(|i| i + 1);
        let problem = match std::fs::read(&ca_path) {
            Err(e) => Some(format!(
                "cannot read the CA bundle {}: {e}",
                ca_path.display()
            )),
            Ok(bytes)
                if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") =>
            {
                Some(format!(
                    "the CA bundle {} holds no PEM certificate",
                    ca_path.display()
                ))
            }
            Ok(_) => None,
        };
        if let Some(message) = problem {
            errs.push(TargetError {
                path: path.to_owned(),
                line,
                message,
                fix: Some("point [http] ca_bundle at a PEM file of CA certificates (relative to the target file)".into()),
            });
        }
    }
    if let Some(ut) = &file.user_tokens {
        let line = text
            .lines()
            .position(|l| l.trim() == "[user_tokens]")
            .map(|i| i + 1);
        let missing = |what: &str, fix: &str| TargetError {
            path: path.to_owned(),
            line,
            message: format!(
                "[user_tokens] method = \"{}\" needs {what}",
                match ut.method {
                    UserTokenMethod::AuthorizationCode => "authorization_code",
                    UserTokenMethod::Password => "password",
                    UserTokenMethod::Command => "command",
                }
            ),
            fix: Some(fix.to_owned()),
        };
        match ut.method {
            UserTokenMethod::AuthorizationCode if ut.redirect_uri.is_empty() => {
                errs.push(missing(
                    "redirect_uri",
                    "add redirect_uri = \"<a registered redirect URI>\"",
                ));
            }
            UserTokenMethod::Password if ut.username.is_none() || ut.password_env.is_none() => {
                errs.push(missing(
                    "username and password_env",
                    "add username = \"...\" and password_env = \"<variable holding the password>\"",
                ));
            }
            UserTokenMethod::Command if ut.run.is_none() => {
                errs.push(missing(
                    "run",
                    "add run = \"<command printing a token response as JSON>\"",
                ));
            }
            _ => {}
        }
        if ut.client_id.is_some() && ut.secret_env.is_none() {
            errs.push(TargetError {
                path: path.to_owned(),
                line,
                message: "[user_tokens] client_id needs its secret_env".into(),
                fix: Some("add secret_env = \"<variable holding that client's secret>\" under [user_tokens]".into()),
            });
        }
        if let Some(var) = &ut.password_env
            && env(var).is_none_or(|v| v.is_empty())
        {
            errs.push(TargetError {
                path: path.to_owned(),
                line,
                message: format!(
                    "environment variable {var} (the test user's password) is not set"
                ),
                fix: Some(format!("export {var}=<the password> before running keel")),
            });
        }
    }
    let hooks = [
        ("restart", &file.hooks.restart),
        ("kill", &file.hooks.kill),
        ("stage_signing_key", &file.hooks.stage_signing_key),
        ("activate_signing_key", &file.hooks.activate_signing_key),
        ("rotate_signing_key", &file.hooks.rotate_signing_key),
        ("migrate", &file.hooks.migrate),
        ("rollback", &file.hooks.rollback),
    ];
    for (name, hook) in hooks {
        if let Some(h) = hook
            && h.run.is_some() == h.http.is_some()
        {
            let line = text
                .lines()
                .position(|l| l.trim() == format!("[hooks.{name}]"))
                .map(|i| i + 1);
            errs.push(TargetError {
                path: path.to_owned(),
                line,
                message: format!(
                    "[hooks.{name}] needs exactly one of `run` (a shell command) or `http` (a call)"
                ),
                fix: Some(format!(
                    "write run = \"...\" or http = {{ url = \"...\" }} under [hooks.{name}]"
                )),
            });
        }
    }
    if file.hooks.stage_signing_key.is_some() != file.hooks.activate_signing_key.is_some() {
        errs.push(TargetError {
            path: path.to_owned(),
            line: None,
            message: "[hooks.stage_signing_key] and [hooks.activate_signing_key] come as a pair"
                .into(),
            fix: Some(
                "declare both, or use [hooks.rotate_signing_key] for a one-step rotation".into(),
            ),
        });
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[issuer]
url = "https://auth.example.com"

[client]
id = "keel-ci"
secret_env = "KEEL_CLIENT_SECRET"
auth_method = "client_secret_basic"

[hooks.restart]
run = "systemctl restart my-issuer"
ready_timeout = "30s"
"#;

    fn env_with_secret(name: &str) -> Option<String> {
        (name == "KEEL_CLIENT_SECRET").then(|| "s3cret".to_owned())
    }

    #[test]
    fn the_readme_example_parses() {
        let (f, s) = parse(Path::new("t.toml"), MINIMAL, env_with_secret).unwrap();
        assert_eq!(f.client.id, "keel-ci");
        assert_eq!(s.expose(), "s3cret");
        assert_eq!(
            f.hooks.restart.unwrap().ready_timeout,
            Duration::from_secs(30)
        );
        assert!(f.capabilities.refresh_token.is_none());
    }

    #[test]
    fn an_unknown_key_names_its_line() {
        let text = MINIMAL.replace("auth_method", "auth_metod");
        let e = parse(Path::new("t.toml"), &text, env_with_secret).unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.to_string().contains("unknown field `auth_metod`"), "{e}");
    }

    #[test]
    fn a_missing_secret_names_the_variable_and_line() {
        let e = parse(Path::new("t.toml"), MINIMAL, |_| None).unwrap_err();
        assert_eq!(e.line, Some(7));
        assert!(e.to_string().contains("KEEL_CLIENT_SECRET"), "{e}");
    }

    #[test]
    fn a_missing_required_field_is_reported() {
        let text = MINIMAL.replace("id = \"keel-ci\"\n", "");
        let e = parse(Path::new("t.toml"), &text, env_with_secret).unwrap_err();
        assert!(e.to_string().contains("missing field `id`"), "{e}");
    }

    #[test]
    fn prefixed_format_parses() {
        let text = format!(
            "{MINIMAL}\n[capabilities.refresh_token]\nformat = \"prefixed\"\nprefix = \"krt_\"\npublic_id_length = 16\nchecksum = \"crc32-base62\"\n"
        );
        let (f, _) = parse(Path::new("t.toml"), &text, env_with_secret).unwrap();
        assert!(matches!(
            f.capabilities.refresh_token,
            Some(TokenFormat::Prefixed(_))
        ));
    }
}
