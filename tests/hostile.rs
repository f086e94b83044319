//! A hostile issuer: a raw TCP server (no HTTP library, so that it can trickle, reset, truncate
//! and lie about lengths) that serves a valid RFC 8414 discovery document and then misbehaves
//! on the token endpoint, or on the JWKS, in one way per server instance.
//!
//! For every mode keel must: start the run (discovery works, so exit 2 would be wrong), give at
//! least one error verdict whose message names the cause, keep running every other scenario,
//! finish within a bound computed from the scenario count and the 2 s request deadline, write
//! both reports, never panic, pass nothing that depends on the broken endpoint, exit 1, and
//! never print the client secret (which the issuer echoes back in its error pages).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const SECRET_VAR: &str = "KEEL_HOSTILE_SECRET";
const CLIENT_ID: &str = "keel-ci";
/// The `[http] timeout` of every target file.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// keel's outer deadline adds this to the request timeout (src/client.rs).
const OUTER_SLACK: Duration = Duration::from_millis(500);
/// keel's default `--concurrency`.
const KEEL_CONCURRENCY: usize = 8;
/// keel runs started at once by this test.
const PARALLEL_RUNS: usize = 6;
const LIMIT_MSG: &str = "1048576-byte limit";
const DEADLINE_MSG: &str = "no complete answer within 2s";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    InvalidJson,
    HtmlWith200,
    TextPlainNotObject,
    TruncatedBody,
    HugeBodyContentLength,
    HugeBodyChunked,
    Trickle,
    NeverAnswers,
    ClosesWithoutAnswer,
    ConnectionReset,
    RedirectLoop,
    NotUtf8,
    WrongTypes,
    MissingAccessToken,
    ExpiresIn1e400,
    ExpiresInHugeInteger,
    Http500,
    Http429RetryAfter,
    OneMibToken,
    MalformedBase64Jwt,
    EmptyBody200,
    JsonArray,
    HugeHeaders,
    BadStatusLine,
    JwksDuplicateKids,
    JwksHtml,
}

/// What a mode breaks: scenarios that depend on it must not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broken {
    TokenEndpoint,
    Jwks,
}

impl Mode {
    const ALL: [Mode; 26] = [
        // Slow ones first, so that they overlap with everything else.
        Mode::Trickle,
        Mode::NeverAnswers,
        Mode::HugeBodyChunked,
        Mode::HugeBodyContentLength,
        Mode::InvalidJson,
        Mode::HtmlWith200,
        Mode::TextPlainNotObject,
        Mode::TruncatedBody,
        Mode::ClosesWithoutAnswer,
        Mode::ConnectionReset,
        Mode::RedirectLoop,
        Mode::NotUtf8,
        Mode::WrongTypes,
        Mode::MissingAccessToken,
        Mode::ExpiresIn1e400,
        Mode::ExpiresInHugeInteger,
        Mode::Http500,
        Mode::Http429RetryAfter,
        Mode::OneMibToken,
        Mode::MalformedBase64Jwt,
        Mode::EmptyBody200,
        Mode::JsonArray,
        Mode::HugeHeaders,
        Mode::BadStatusLine,
        Mode::JwksDuplicateKids,
        Mode::JwksHtml,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::InvalidJson => "invalid-json",
            Mode::HtmlWith200 => "html-200",
            Mode::TextPlainNotObject => "text-plain-not-object",
            Mode::TruncatedBody => "truncated-body",
            Mode::HugeBodyContentLength => "50mb-content-length",
            Mode::HugeBodyChunked => "50mb-chunked",
            Mode::Trickle => "trickle-1-byte-per-s",
            Mode::NeverAnswers => "never-answers",
            Mode::ClosesWithoutAnswer => "close-without-answer",
            Mode::ConnectionReset => "connection-reset",
            Mode::RedirectLoop => "redirect-loop-307",
            Mode::NotUtf8 => "not-utf8",
            Mode::WrongTypes => "access-token-a-number",
            Mode::MissingAccessToken => "no-access-token",
            Mode::ExpiresIn1e400 => "expires-in-1e400",
            Mode::ExpiresInHugeInteger => "expires-in-huge-integer",
            Mode::Http500 => "http-500",
            Mode::Http429RetryAfter => "http-429-retry-after",
            Mode::OneMibToken => "1mib-token",
            Mode::MalformedBase64Jwt => "jwt-bad-base64url",
            Mode::EmptyBody200 => "empty-200",
            Mode::JsonArray => "json-array",
            Mode::HugeHeaders => "huge-headers",
            Mode::BadStatusLine => "bad-status-line",
            Mode::JwksDuplicateKids => "jwks-duplicate-kids",
            Mode::JwksHtml => "jwks-html",
        }
    }

    fn broken(self) -> Broken {
        match self {
            Mode::JwksDuplicateKids | Mode::JwksHtml => Broken::Jwks,
            _ => Broken::TokenEndpoint,
        }
    }

    /// The verdicts that may carry the named cause. Garbage is an error (keel could not check);
    /// a JWKS with two keys under one kid is also a defensible failure of IDN-2 (the kid of
    /// the token does not name *a* key), so either verdict is accepted there.
    fn cause_verdicts(self) -> &'static [&'static str] {
        match self {
            Mode::JwksDuplicateKids => &["error", "fail"],
            _ => &["error"],
        }
    }

    /// A regular expression one error message must match: the cause, named.
    fn cause(self) -> String {
        let not_object = "expected a JSON object, got HTTP 200";
        match self {
            Mode::InvalidJson => format!("{not_object} application/json .*expected"),
            Mode::HtmlWith200 => format!("{not_object} text/html"),
            Mode::TextPlainNotObject => format!("{not_object} text/plain[^(]*\\(.*a JSON string"),
            Mode::TruncatedBody => {
                "POST http://[^ ]+/token: .*(?i)(end of file|incomplete|closed|body)".into()
            }
            Mode::HugeBodyContentLength | Mode::HugeBodyChunked | Mode::OneMibToken => {
                format!("POST http://[^ ]+/token: response body exceeds the {LIMIT_MSG}")
            }
            Mode::Trickle | Mode::NeverAnswers => {
                format!("POST http://[^ ]+/token: {DEADLINE_MSG}")
            }
            Mode::ClosesWithoutAnswer | Mode::ConnectionReset => {
                "POST http://[^ ]+/token: .*(?i)(reset|closed|connection|incomplete)".into()
            }
            Mode::RedirectLoop => "POST http://[^ ]+/token -> HTTP 307".into(),
            Mode::NotUtf8 => format!("{not_object} application/json .*(?i)(unicode|utf-?8)"),
            Mode::WrongTypes => "access_token is not a non-empty string".into(),
            Mode::MissingAccessToken => "no access_token in the response".into(),
            Mode::ExpiresIn1e400 => format!("{not_object} application/json .*(?i)out of range"),
            // keel must not silently drop an expires_in it cannot read as seconds.
            Mode::ExpiresInHugeInteger => "expires_in".into(),
            Mode::Http500 => "POST http://[^ ]+/token -> HTTP 500".into(),
            Mode::Http429RetryAfter => "POST http://[^ ]+/token -> HTTP 429".into(),
            // The token looks like a JWT (eyJ..., three segments) but cannot be decoded.
            Mode::MalformedBase64Jwt => "(?i)base64".into(),
            Mode::EmptyBody200 => format!("{not_object} application/json \\(0 bytes\\)"),
            Mode::JsonArray => format!("{not_object} application/json .*a JSON array"),
            Mode::HugeHeaders => "POST http://[^ ]+/token: .*(?i)(too large|header)".into(),
            Mode::BadStatusLine => "POST http://[^ ]+/token: .*(?i)(invalid|parse)".into(),
            Mode::JwksDuplicateKids => "holds 2 keys with kid \"k1\"".into(),
            Mode::JwksHtml => {
                "JWKS: GET http://[^ ]+/jwks: expected a JSON object, got HTTP 200 text/html".into()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The hostile issuer.

struct Keys {
    /// The key that signs the tokens of the JWKS modes.
    signer: aws_lc_rs::signature::Ed25519KeyPair,
    signer_x: String,
    /// Another key, published under the signer's kid in the duplicate-kid mode.
    other_x: String,
}

struct Issuer {
    mode: Mode,
    base: String,
    keys: Keys,
    token_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
    counter: AtomicUsize,
    /// The client secret as the issuer received it (which it then echoes where it can).
    secret_seen: Mutex<Option<String>>,
}

fn okp(x: &str, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
}

/// RFC 7638 thumbprint of an Ed25519 JWK.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

impl Issuer {
    fn jwt(&self, kid: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let header = B64.encode(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}).to_string());
        let claims = B64.encode(
            json!({
                "iss": self.base, "sub": "svc-keel-ci", "aud": "api", "client_id": CLIENT_ID,
                "iat": now, "exp": now + 600, "jti": format!("jti-{n}-{}", rand_hex()),
            })
            .to_string(),
        );
        let input = format!("{header}.{claims}");
        let sig = B64.encode(self.keys.signer.sign(input.as_bytes()).as_ref());
        format!("{input}.{sig}")
    }

    fn jwks(&self) -> Value {
        match self.mode {
            Mode::JwksDuplicateKids => json!({"keys": [
                okp(&self.keys.signer_x, "k1"),
                okp(&self.keys.other_x, "k1"),
            ]}),
            _ => json!({"keys": [okp(&self.keys.signer_x, &thumbprint(&self.keys.signer_x))]}),
        }
    }

    fn kid(&self) -> String {
        match self.mode {
            Mode::JwksDuplicateKids => "k1".into(),
            _ => thumbprint(&self.keys.signer_x),
        }
    }
}

fn rand_hex() -> String {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

impl Request {
    /// The client secret from `Authorization: Basic`, which the hostile issuer echoes.
    fn secret(&self) -> String {
        let Some(v) = self.headers.get("authorization") else {
            return String::new();
        };
        let Some(b) = v.strip_prefix("Basic ") else {
            return String::new();
        };
        let decoded = STANDARD.decode(b.trim()).unwrap_or_default();
        let text = String::from_utf8_lossy(&decoded).into_owned();
        let secret = text
            .split_once(':')
            .map(|(_, s)| s.to_owned())
            .unwrap_or_default();
        url_decode(&secret)
    }

    fn authorization(&self) -> String {
        self.headers
            .get("authorization")
            .cloned()
            .unwrap_or_default()
    }
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let h = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(h, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request, body included (and discarded). None if the peer went away.
async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 1024 * 1024 {
            return None;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - head_end - 4;
    while have < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        have += n;
    }
    Some(Request {
        method,
        path,
        headers,
    })
}

fn head(status: &str, content_type: Option<&str>, extra: &[String]) -> String {
    let mut h = format!(
        "HTTP/1.1 {status}\r\nDate: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        httpdate::fmt_http_date(SystemTime::now())
    );
    if let Some(ct) = content_type {
        h.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for e in extra {
        h.push_str(e);
        h.push_str("\r\n");
    }
    h
}

async fn respond(
    sock: &mut TcpStream,
    status: &str,
    content_type: Option<&str>,
    extra: &[String],
    body: &[u8],
) {
    let mut out = head(status, content_type, extra).into_bytes();
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    let _ = sock.write_all(&out).await;
    let _ = sock.flush().await;
    let _ = sock.shutdown().await;
}

const JSON: Option<&str> = Some("application/json");

async fn handle(mut sock: TcpStream, issuer: Arc<Issuer>) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let base = issuer.base.clone();
    match (
        req.method.as_str(),
        req.path.split('?').next().unwrap_or(""),
    ) {
        ("GET", "/.well-known/oauth-authorization-server") => {
            let doc = json!({
                "issuer": base,
                "token_endpoint": format!("{base}/token"),
                "introspection_endpoint": format!("{base}/introspect"),
                "revocation_endpoint": format!("{base}/revoke"),
                "jwks_uri": format!("{base}/jwks"),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "response_types_supported": ["token"],
            });
            respond(&mut sock, "200 OK", JSON, &[], doc.to_string().as_bytes()).await;
        }
        ("GET", "/jwks") => {
            issuer.jwks_hits.fetch_add(1, Ordering::Relaxed);
            if issuer.mode == Mode::JwksHtml {
                let page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=\"/login\"><input name=\"user\"></form></body></html>";
                respond(
                    &mut sock,
                    "200 OK",
                    Some("text/html; charset=utf-8"),
                    &[],
                    page.as_bytes(),
                )
                .await;
            } else {
                respond(
                    &mut sock,
                    "200 OK",
                    Some("application/jwk-set+json"),
                    &[],
                    issuer.jwks().to_string().as_bytes(),
                )
                .await;
            }
        }
        ("POST", "/token") => {
            issuer.token_hits.fetch_add(1, Ordering::Relaxed);
            token_endpoint(&mut sock, &issuer, &req).await;
        }
        ("POST", "/introspect" | "/revoke") => {
            // Down for maintenance, and chatty about what it was sent.
            let page = format!(
                "<html><body><h1>503 Service Unavailable</h1><pre>{}</pre></body></html>",
                req.authorization()
            );
            respond(
                &mut sock,
                "503 Service Unavailable",
                Some("text/html"),
                &[],
                page.as_bytes(),
            )
            .await;
        }
        _ => {
            respond(
                &mut sock,
                "404 Not Found",
                Some("text/plain"),
                &[],
                b"not found",
            )
            .await
        }
    }
}

async fn token_endpoint(sock: &mut TcpStream, issuer: &Issuer, req: &Request) {
    let secret = req.secret();
    issuer
        .secret_seen
        .lock()
        .unwrap()
        .get_or_insert_with(|| secret.clone());
    let opaque = format!(
        "hostile-{}-{}",
        issuer.counter.fetch_add(1, Ordering::Relaxed),
        rand_hex()
    );
    match issuer.mode {
        Mode::InvalidJson => {
            let body = format!(
                r#"{{"access_token": "{opaque}" "token_type": "Bearer", "expires_in": 3600"#
            );
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::HtmlWith200 => {
            let page = format!(
                "<!DOCTYPE html>\n<html><head><title>Oops</title></head><body><h1>Something went wrong</h1>\
                 <p>We could not sign you in with client secret {secret} ({}).</p></body></html>",
                req.authorization()
            );
            respond(
                sock,
                "200 OK",
                Some("text/html; charset=utf-8"),
                &[],
                page.as_bytes(),
            )
            .await;
        }
        Mode::TextPlainNotObject => {
            let body =
                format!("\"access_token={opaque}&token_type=Bearer&client_secret={secret}\"");
            respond(
                sock,
                "200 OK",
                Some("text/plain; charset=utf-8"),
                &[],
                body.as_bytes(),
            )
            .await;
        }
        Mode::TruncatedBody => {
            let mut out = head("200 OK", JSON, &["Content-Length: 4096".into()]).into_bytes();
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(format!(r#"{{"access_token": "{opaque}", "token_ty"#).as_bytes());
            let _ = sock.write_all(&out).await;
            let _ = sock.flush().await;
            let _ = sock.shutdown().await;
        }
        Mode::HugeBodyContentLength | Mode::HugeBodyChunked => {
            let total: usize = 50 * 1024 * 1024;
            let chunked = issuer.mode == Mode::HugeBodyChunked;
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {total}")
            };
            let mut out = head("200 OK", JSON, &[framing]).into_bytes();
            out.extend_from_slice(b"\r\n");
            if sock.write_all(&out).await.is_err() {
                return;
            }
            let prefix = br#"{"access_token": ""#;
            let suffix = br#"", "token_type": "Bearer"}"#;
            let piece = 64 * 1024;
            let mut sent = 0;
            while sent < total {
                let n = piece.min(total - sent);
                let mut data = vec![b'A'; n];
                if sent == 0 {
                    data[..prefix.len()].copy_from_slice(prefix);
                }
                if sent + n == total {
                    data[n - suffix.len()..].copy_from_slice(suffix);
                }
                let mut frame = Vec::with_capacity(n + 16);
                if chunked {
                    frame.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                }
                frame.extend_from_slice(&data);
                if chunked {
                    frame.extend_from_slice(b"\r\n");
                }
                if sock.write_all(&frame).await.is_err() {
                    return;
                }
                sent += n;
            }
            if chunked {
                let _ = sock.write_all(b"0\r\n\r\n").await;
            }
            let _ = sock.shutdown().await;
        }
        Mode::Trickle => {
            let body = format!(
                r#"{{"access_token": "{opaque}", "token_type": "Bearer", "expires_in": 3600}}"#
            );
            let mut out =
                head("200 OK", JSON, &[format!("Content-Length: {}", body.len())]).into_bytes();
            out.extend_from_slice(b"\r\n");
            if sock.write_all(&out).await.is_err() {
                return;
            }
            for b in body.bytes() {
                if sock.write_all(&[b]).await.is_err() || sock.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Mode::NeverAnswers => {
            // Hold the connection open, answer nothing, until keel gives up.
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(600), async {
                while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        Mode::ClosesWithoutAnswer => {
            let _ = sock.shutdown().await;
        }
        Mode::ConnectionReset => {
            // SO_LINGER 0: closing sends RST instead of FIN (a zero linger never blocks the drop,
            // which is what the deprecation warns about).
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
        }
        Mode::RedirectLoop => {
            let location = format!("Location: {}/token", issuer.base);
            respond(
                sock,
                "307 Temporary Redirect",
                Some("text/plain"),
                &[location],
                b"redirecting to myself",
            )
            .await;
        }
        Mode::NotUtf8 => {
            let mut body = br#"{"access_token": "tok-"#.to_vec();
            body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0x80]);
            body.extend_from_slice(br#"", "token_type": "Bearer", "expires_in": 3600}"#);
            respond(sock, "200 OK", JSON, &[], &body).await;
        }
        Mode::WrongTypes => {
            let body = r#"{"access_token": 1234567890, "token_type": 42, "expires_in": "soon", "scope": ["a"]}"#;
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::MissingAccessToken => {
            let body = r#"{"token_type": "Bearer", "expires_in": 3600, "scope": "read"}"#;
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::ExpiresIn1e400 => {
            let body = format!(
                r#"{{"access_token": "{opaque}", "token_type": "Bearer", "expires_in": 1e400}}"#
            );
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::ExpiresInHugeInteger => {
            let body = format!(
                r#"{{"access_token": "{opaque}", "token_type": "Bearer", "expires_in": 99999999999999999999999}}"#
            );
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::Http500 => {
            let body = json!({
                "error": "server_error",
                "error_description": format!("database unavailable while checking client_secret {secret}"),
            });
            respond(
                sock,
                "500 Internal Server Error",
                JSON,
                &[],
                body.to_string().as_bytes(),
            )
            .await;
        }
        Mode::Http429RetryAfter => {
            let body = json!({
                "error": "slow_down",
                "error_description": format!("rate limited ({}); retry in an hour", req.authorization()),
            });
            respond(
                sock,
                "429 Too Many Requests",
                JSON,
                &["Retry-After: 3600".into()],
                body.to_string().as_bytes(),
            )
            .await;
        }
        Mode::OneMibToken => {
            let token = "A".repeat(1024 * 1024);
            let body = format!(
                r#"{{"access_token": "{token}", "token_type": "Bearer", "expires_in": 3600}}"#
            );
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::MalformedBase64Jwt => {
            let body =
                r#"{"access_token": "eyJ!!.@@.##", "token_type": "Bearer", "expires_in": 3600}"#;
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::EmptyBody200 => respond(sock, "200 OK", JSON, &[], b"").await,
        Mode::JsonArray => {
            let body = format!(
                r#"[{{"access_token": "{opaque}", "token_type": "Bearer", "expires_in": 3600}}]"#
            );
            respond(sock, "200 OK", JSON, &[], body.as_bytes()).await;
        }
        Mode::HugeHeaders => {
            let filler = "x".repeat(100);
            let extra: Vec<String> = (0..20_000)
                .map(|i| format!("X-Filler-{i}: {filler}"))
                .collect();
            let body = format!(
                r#"{{"access_token": "{opaque}", "token_type": "Bearer", "expires_in": 3600}}"#
            );
            respond(sock, "200 OK", JSON, &extra, body.as_bytes()).await;
        }
        Mode::BadStatusLine => {
            let _ = sock
                .write_all(b"HTTP/1.1 two-hundred Fine\r\nContent-Type: application/json\r\n\r\n{}")
                .await;
            let _ = sock.shutdown().await;
        }
        Mode::JwksDuplicateKids | Mode::JwksHtml => {
            let body = json!({
                "access_token": issuer.jwt(&issuer.kid()),
                "token_type": "Bearer",
                "expires_in": 600,
            });
            respond(sock, "200 OK", JSON, &[], body.to_string().as_bytes()).await;
        }
    }
}

async fn start_issuer(mode: Mode) -> Arc<Issuer> {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let signer = Ed25519KeyPair::generate().unwrap();
    let other = Ed25519KeyPair::generate().unwrap();
    let keys = Keys {
        signer_x: B64.encode(signer.public_key().as_ref()),
        other_x: B64.encode(other.public_key().as_ref()),
        signer,
    };
    let issuer = Arc::new(Issuer {
        mode,
        base,
        keys,
        token_hits: AtomicUsize::new(0),
        jwks_hits: AtomicUsize::new(0),
        counter: AtomicUsize::new(0),
        secret_seen: Mutex::new(None),
    });
    let i = issuer.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(handle(sock, i.clone()));
        }
    });
    issuer
}

// ---------------------------------------------------------------------------------------------
// Which scenarios depend on what, read from the feature files.

struct ScenarioDeps {
    /// Scenario name as a regex (outline placeholders match anything).
    name: regex::Regex,
    token: bool,
    jwks: bool,
}

fn scenario_deps() -> Vec<ScenarioDeps> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("features");
    let token_step =
        regex::Regex::new(r"(?i)access tokens?\b|refresh token|idempotency-key|api key").unwrap();
    let placeholder = regex::Regex::new(r"<[^>]+>").unwrap();
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "feature"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut background: Vec<String> = Vec::new();
        let mut current: Option<(String, Vec<String>)> = None;
        let mut in_background = false;
        let mut flush = |cur: &mut Option<(String, Vec<String>)>, bg: &[String]| {
            if let Some((name, steps)) = cur.take() {
                let all: Vec<&String> = bg.iter().chain(steps.iter()).collect();
                let pattern = regex::escape(&name);
                let pattern = placeholder.replace_all(&pattern, ".+").into_owned();
                out.push(ScenarioDeps {
                    name: regex::Regex::new(&format!("^{pattern}$")).unwrap(),
                    token: all.iter().any(|s| token_step.is_match(s)),
                    jwks: all.iter().any(|s| s.contains("JWKS")),
                });
            }
        };
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with("Background:") {
                flush(&mut current, &background);
                in_background = true;
            } else if let Some(name) = l
                .strip_prefix("Scenario Outline:")
                .or_else(|| l.strip_prefix("Scenario:"))
            {
                flush(&mut current, &background);
                in_background = false;
                current = Some((name.trim().to_owned(), Vec::new()));
            } else if l.starts_with("Feature:") {
                flush(&mut current, &background);
                background.clear();
                in_background = false;
            } else if ["Given ", "When ", "Then ", "And ", "But "]
                .iter()
                .any(|k| l.starts_with(k))
            {
                if in_background {
                    background.push(l.to_owned());
                } else if let Some((_, steps)) = current.as_mut() {
                    steps.push(l.to_owned());
                }
            }
        }
        flush(&mut current, &background);
    }
    assert!(!out.is_empty(), "no scenarios found in {}", dir.display());
    out
}

/// (serial count, all scenario names), from `keel list`.
fn scenario_list() -> (usize, Vec<String>) {
    let o = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("list")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "keel list: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let scen: Vec<&str> = text.lines().filter(|l| l.starts_with("  ")).collect();
    let serial = scen.iter().filter(|l| l.contains("@serial")).count();
    // `  FILE:LINE  NAME  @TAGS`
    let names = scen
        .iter()
        .map(|l| l.split("  ").nth(2).unwrap_or("").to_owned())
        .collect();
    (serial, names)
}

// ---------------------------------------------------------------------------------------------
// Running keel.

struct Outcome {
    mode: Mode,
    code: Option<i32>,
    secs: f64,
    killed: bool,
    first_error: String,
    /// pass/fail/error/not-applicable/warn counts.
    counts: String,
    problems: Vec<String>,
}

fn run_mode(
    mode: Mode,
    issuer: &Issuer,
    deps: &[ScenarioDeps],
    names: &[String],
    bound: Duration,
    canary: &str,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.toml");
    std::fs::write(
        &target,
        format!(
            "[issuer]\nurl = \"{}\"\n\n[client]\nid = \"{CLIENT_ID}\"\nsecret_env = \"{SECRET_VAR}\"\n\n[http]\ntimeout = \"2s\"\n",
            issuer.base
        ),
    )
    .unwrap();
    let junit = dir.path().join("keel.xml");
    let report = dir.path().join("keel.json");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("run")
        .arg("--target")
        .arg(&target)
        .arg("--junit")
        .arg(&junit)
        .arg("--report-json")
        .arg(&report)
        .env(SECRET_VAR, canary)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // A hard stop well past the bound, so that a hanging keel fails this test instead of
    // hanging it.
    let hard_stop = bound + Duration::from_secs(10);
    let mut killed = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > hard_stop {
            let _ = child.kill();
            killed = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let mut problems = Vec::new();
    let mut p = |s: String| problems.push(s);

    if killed {
        // keel prints a line per finished scenario: name those that never finished.
        let unfinished: Vec<&String> = names
            .iter()
            .filter(|n| !stdout.contains(n.as_str()))
            .collect();
        p(format!(
            "keel was still running after {:.0}s (bound {:.0}s) and was killed; unfinished scenarios: {unfinished:?}",
            elapsed.as_secs_f64(),
            bound.as_secs_f64()
        ));
    } else if elapsed > bound {
        p(format!(
            "took {:.1}s, more than the bound of {:.0}s",
            elapsed.as_secs_f64(),
            bound.as_secs_f64()
        ));
    }
    match status.code() {
        Some(1) => {}
        other => p(format!("exit code {other:?}, expected 1")),
    }
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        if text.contains("panicked") {
            p(format!(
                "{what} shows a panic: {}",
                excerpt(text, "panicked")
            ));
        }
        if text.contains(canary) {
            p(format!("{what} carries the client secret"));
        }
    }
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{canary}"));
    let mut first_error = String::new();
    let mut counts = String::from("-");
    match std::fs::read_to_string(&junit) {
        Err(e) => p(format!("no JUnit report: {e}")),
        Ok(x) => {
            if !x.contains("<testsuites") {
                p("the JUnit report has no <testsuites>".into());
            }
            let mut r = quick_xml::Reader::from_str(&x);
            loop {
                match r.read_event() {
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => {
                        p(format!("the JUnit report is not well-formed XML: {e}"));
                        break;
                    }
                }
            }
            if x.contains(canary) || x.contains(&basic) {
                p("the JUnit report carries the client secret".into());
            }
        }
    }
    match std::fs::read_to_string(&report) {
        Err(e) => p(format!("no JSON report: {e}")),
        Ok(x) => {
            if x.contains(canary) || x.contains(&basic) {
                p("the JSON report carries the client secret".into());
            }
            match serde_json::from_str::<Value>(&x) {
                Err(e) => p(format!("the JSON report does not parse: {e}")),
                Ok(v) => judge_report(
                    mode,
                    &v,
                    deps,
                    names.len(),
                    &mut first_error,
                    &mut counts,
                    &mut p,
                ),
            }
        }
    }
    if issuer.token_hits.load(Ordering::Relaxed) == 0 {
        p("keel never called the token endpoint".into());
    }
    if mode.broken() == Broken::Jwks && issuer.jwks_hits.load(Ordering::Relaxed) == 0 {
        p("keel never fetched the JWKS".into());
    }
    if issuer.secret_seen.lock().unwrap().as_deref() != Some(canary) {
        p("the issuer never received the client secret, so the leak check proves nothing".into());
    }
    if !problems.is_empty() {
        problems.push(format!("stdout (tail): {}", tail(&stdout, 800)));
        problems.push(format!("stderr (tail): {}", tail(&stderr, 1500)));
    }
    Outcome {
        mode,
        code: status.code(),
        secs: elapsed.as_secs_f64(),
        killed,
        first_error,
        counts,
        problems,
    }
}

fn judge_report(
    mode: Mode,
    v: &Value,
    deps: &[ScenarioDeps],
    total: usize,
    first_error: &mut String,
    counts: &mut String,
    p: &mut impl FnMut(String),
) {
    let scenarios = v["scenarios"].as_array().cloned().unwrap_or_default();
    if scenarios.len() != total {
        p(format!(
            "the report has {} scenarios, keel list has {total}: keel did not run them all",
            scenarios.len()
        ));
    }
    let count = |v: &str| scenarios.iter().filter(|s| s["verdict"] == v).count();
    *counts = format!(
        "{}/{}/{}/{}/{}",
        count("pass"),
        count("fail"),
        count("error"),
        count("not-applicable"),
        count("warn")
    );
    let cause = regex::Regex::new(&mode.cause()).unwrap();
    let mut named = false;
    for s in &scenarios {
        let name = s["name"].as_str().unwrap_or("");
        let verdict = s["verdict"].as_str().unwrap_or("");
        let message = s["message"].as_str().unwrap_or("");
        if verdict == "error" && first_error.is_empty() {
            *first_error = message.to_owned();
        }
        if mode.cause_verdicts().contains(&verdict) && cause.is_match(message) {
            if !named {
                // The table shows the message that names the cause, when there is one.
                *first_error = message.to_owned();
            }
            named = true;
        }
        if message.contains("keel itself panicked") {
            p(format!("keel panicked in {name:?}: {message}"));
        }
        if verdict == "pass" {
            let d = deps.iter().find(|d| d.name.is_match(name));
            let depends = match (d, mode.broken()) {
                (None, _) => true,
                (Some(d), Broken::TokenEndpoint) => d.token,
                (Some(d), Broken::Jwks) => d.jwks,
            };
            if depends {
                p(format!(
                    "{name:?} passed although it depends on the broken {:?}",
                    mode.broken()
                ));
            }
        }
    }
    if !named {
        let errors: Vec<String> = scenarios
            .iter()
            .filter(|s| s["verdict"] != "pass" && s["verdict"] != "not-applicable")
            .map(|s| {
                format!(
                    "{} {}: {}",
                    s["verdict"],
                    s["name"],
                    s["message"].as_str().unwrap_or("")
                )
            })
            .take(6)
            .collect();
        p(format!(
            "no {} verdict names the cause (/{}/); non-passing verdicts: {errors:#?}",
            mode.cause_verdicts().join(" or "),
            mode.cause()
        ));
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let i = text.find(needle).unwrap_or(0);
    let start = text[..i]
        .char_indices()
        .rev()
        .nth(300)
        .map_or(0, |(j, _)| j);
    text[start..].chars().take(600).collect()
}

fn tail(text: &str, n: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}

fn shorten(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

#[test]
fn a_hostile_issuer_gets_named_errors_in_bounded_time_and_never_a_panic_or_a_leak() {
    let (serial, names) = scenario_list();
    let total = names.len();
    let concurrent = total - serial;
    // A correct keel spends at most about one request deadline per scenario before the broken
    // endpoint stops it: serial scenarios one after another, the others KEEL_CONCURRENCY at a
    // time; plus fixed slack for start-up and the 2,000-issuance scenario against fast modes.
    // The runs of this test share the machine, hence the generous slack.
    let per_request = REQUEST_TIMEOUT + OUTER_SLACK;
    let rounds = serial + concurrent.div_ceil(KEEL_CONCURRENCY);
    let bound = per_request * rounds as u32 + Duration::from_secs(20);
    let deps = scenario_deps();
    let canary = format!("cnry-{}-{}", rand_hex(), rand_hex());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // KEEL_HOSTILE_MODES=name,name runs only those modes (for diagnosis).
    let only: Option<Vec<String>> = std::env::var("KEEL_HOSTILE_MODES")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|n| n == m.name()))
        })
        .collect();
    let issuers: Vec<Arc<Issuer>> = modes
        .iter()
        .map(|m| rt.block_on(start_issuer(*m)))
        .collect();

    let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(
        issuers.clone(),
    )));
    let results = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_RUNS {
            let (queue, results, deps, names, canary) =
                (queue.clone(), results.clone(), &deps, &names, &canary);
            s.spawn(move || {
                loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some(issuer) = next else { break };
                    let o = run_mode(issuer.mode, &issuer, deps, names, bound, canary);
                    results.lock().unwrap().push(o);
                }
            });
        }
    });
    drop(rt);

    let mut results = std::mem::take(&mut *results.lock().unwrap());
    results.sort_by_key(|o| Mode::ALL.iter().position(|m| *m == o.mode));
    let mut table = format!(
        "\nhostile issuer: {} modes, {total} scenarios each, bound {:.0}s (P/F/E/NA/W: pass, fail, error, not applicable, warn)\n{:<26} {:>5} {:>7} {:>12}  first error message (the one naming the cause, if any)\n",
        results.len(),
        bound.as_secs_f64(),
        "mode",
        "exit",
        "seconds",
        "P/F/E/NA/W"
    );
    for o in &results {
        let code = match (o.killed, o.code) {
            (true, _) => "kill".to_owned(),
            (false, Some(c)) => c.to_string(),
            (false, None) => "sig".to_owned(),
        };
        table.push_str(&format!(
            "{:<26} {:>5} {:>7.1} {:>12}  {}\n",
            o.mode.name(),
            code,
            o.secs,
            o.counts,
            shorten(&o.first_error, 150)
        ));
    }
    eprintln!("{table}");
    let failures: Vec<String> = results
        .iter()
        .filter(|o| !o.problems.is_empty())
        .map(|o| format!("[{}]\n  - {}", o.mode.name(), o.problems.join("\n  - ")))
        .collect();
    assert_eq!(results.len(), modes.len());
    assert!(
        failures.is_empty(),
        "{} of {} modes misbehaved:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}
