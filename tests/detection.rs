//! keel's own detection, against wiremock issuers that keel did not write: a `sub` that changes
//! after a (simulated, but proven) restart is caught; the same issuer without the change passes;
//! a restart hook that does nothing is an error ("restart not applied"), never a pass.
//!
//! The "restart" is a hook command that creates a flag file; the mock answers with a new boot id
//! (and, in the faulty variant, a new `sub`) once the flag exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET_VAR: &str = "KEEL_DETECTION_SECRET";

fn jwt(iss: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#);
    let claims = b64.encode(
        json!({"iss": iss, "sub": "user-1", "aud": "api", "client_id": "keel-ci", "jti": "jti-1", "iat": 1, "exp": 4_000_000_000u64})
            .to_string(),
    );
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

/// A mock issuer; `sub_changes` makes introspection report another sub after the restart.
async fn issuer(flag: PathBuf, sub_changes: bool) -> MockServer {
    let server = MockServer::start().await;
    let iss = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": iss,
            "token_endpoint": format!("{iss}/token"),
            "introspection_endpoint": format!("{iss}/introspect"),
            "jwks_uri": format!("{iss}/jwks"),
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": []})))
        .mount(&server)
        .await;
    let token = jwt(&iss);
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token, "token_type": "Bearer", "expires_in": 600
        })))
        .mount(&server)
        .await;
    let flag = Arc::new(flag);
    let f = flag.clone();
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(move |_: &Request| {
            let boot = if f.exists() { "boot-2" } else { "boot-1" };
            ResponseTemplate::new(200).set_body_json(json!({"boot_id": boot}))
        })
        .mount(&server)
        .await;
    let iss2 = iss.clone();
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(move |_: &Request| {
            let sub = if sub_changes && flag.exists() {
                "user-2"
            } else {
                "user-1"
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "active": true, "iss": iss2, "sub": sub, "client_id": "keel-ci", "jti": "jti-1",
                "aud": "api", "exp": 4_000_000_000u64, "iat": 1, "token_type": "Bearer"
            }))
        })
        .mount(&server)
        .await;
    server
}

fn target(dir: &Path, iss: &str, hook: &str) -> PathBuf {
    let path = dir.join("target.toml");
    std::fs::write(
        &path,
        format!(
            "[issuer]\nurl = \"{iss}\"\n\n[client]\nid = \"keel-ci\"\nsecret_env = \"{SECRET_VAR}\"\n\n[hooks.restart]\nrun = \"{hook}\"\nready_timeout = \"5s\"\n\n[proof]\nboot_id_url = \"{iss}/health\"\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `keel run --target FILE --req RST-2` and returns (exit code, report).
async fn keel(target: PathBuf, dir: &Path) -> (i32, Value) {
    let report = dir.join("report.json");
    let out = keel_cli(
        vec![
            "run".to_owned(),
            "--quiet".to_owned(),
            "--req".to_owned(),
            "RST-2".to_owned(),
            "--target".to_owned(),
            target.display().to_string(),
            "--report-json".to_owned(),
            report.display().to_string(),
        ],
        "detection-secret",
    )
    .await;
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&text).unwrap(),
    )
}

/// Runs the keel binary with `args` and the client secret in the environment, off the async
/// runtime (the mock issuer lives on it).
async fn keel_cli(args: Vec<String>, secret: impl Into<String>) -> std::process::Output {
    let secret = secret.into();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(&args)
            .env(SECRET_VAR, secret)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn scenario<'a>(report: &'a Value, needle: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no scenario containing {needle:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_that_changes_after_a_restart_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("restarted");
    let server = issuer(flag.clone(), true).await;
    let t = target(
        dir.path(),
        &server.uri(),
        &format!("touch {}", flag.display()),
    );
    let (code, report) = keel(t, dir.path()).await;
    let cc = scenario(&report, "client-credentials access token is byte-identical");
    assert_eq!(cc["verdict"], "fail", "{cc:#}");
    let msg = cc["message"].as_str().unwrap();
    assert!(
        msg.contains("introspection.sub: \"user-1\" -> \"user-2\""),
        "{msg}"
    );
    assert!(
        cc["proofs"][0].as_str().unwrap().contains("boot id"),
        "{cc:#}"
    );
    // The target declares no user tokens, so that scenario does not apply, and says why.
    let user = scenario(&report, "identities of user tokens");
    assert_eq!(user["verdict"], "not-applicable", "{user:#}");
    assert!(user["message"].as_str().unwrap().contains("[user_tokens]"));
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_issuer_without_the_change_passes() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("restarted");
    let server = issuer(flag.clone(), false).await;
    let t = target(
        dir.path(),
        &server.uri(),
        &format!("touch {}", flag.display()),
    );
    let (code, report) = keel(t, dir.path()).await;
    let cc = scenario(&report, "client-credentials access token is byte-identical");
    assert_eq!(cc["verdict"], "pass", "{cc:#}");
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_hook_that_does_nothing_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("restarted");
    let server = issuer(flag, true).await;
    let t = target(dir.path(), &server.uri(), "true");
    let (code, report) = keel(t, dir.path()).await;
    let cc = scenario(&report, "client-credentials access token is byte-identical");
    assert_eq!(cc["verdict"], "error", "{cc:#}");
    assert!(
        cc["message"]
            .as_str()
            .unwrap()
            .contains("restart not applied"),
        "{cc:#}"
    );
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_tokens_echoed_by_an_issuer_never_reach_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let iss = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": iss, "token_endpoint": format!("{iss}/token"),
            "introspection_endpoint": format!("{iss}/introspect"), "revocation_endpoint": format!("{iss}/revoke"),
        })))
        .mount(&server)
        .await;
    // The token endpoint echoes the decoded Basic credentials; introspection and revocation echo
    // the token they were sent.
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(|req: &Request| {
            let auth = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            let decoded = auth
                .strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client", "error_description": format!("bad credentials {decoded} ({auth})")}))
        })
        .mount(&server)
        .await;
    let t = dir.path().join("t.toml");
    std::fs::write(&t, format!("[issuer]\nurl = \"{iss}\"\n\n[client]\nid = \"keel-ci\"\nsecret_env = \"{SECRET_VAR}\"\n")).unwrap();
    let junit = dir.path().join("j.xml");
    let report = dir.path().join("r.json");
    let out = keel_cli(
        vec![
            "run".to_owned(),
            "--target".to_owned(),
            t.display().to_string(),
            "--junit".to_owned(),
            junit.display().to_string(),
            "--report-json".to_owned(),
            report.display().to_string(),
        ],
        "CANARY-SECRET-123456",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let canary_b64 =
        base64::engine::general_purpose::STANDARD.encode("keel-ci:CANARY-SECRET-123456");
    let texts = [
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(&junit).unwrap(),
        std::fs::read_to_string(&report).unwrap(),
    ];
    for t in &texts {
        assert!(
            !t.contains("CANARY-SECRET-123456"),
            "the secret leaked: {t}"
        );
        assert!(!t.contains(&canary_b64), "the Basic credentials leaked");
    }
    assert!(texts[0].contains("[redacted fp:"), "{}", texts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_introspection_that_always_says_inactive_cannot_pass_revocation_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let iss = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": iss, "token_endpoint": format!("{iss}/token"),
            "introspection_endpoint": format!("{iss}/introspect"), "revocation_endpoint": format!("{iss}/revoke"),
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": jwt(&iss), "token_type": "Bearer"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"active": false})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let t = dir.path().join("t.toml");
    std::fs::write(&t, format!("[issuer]\nurl = \"{iss}\"\n\n[client]\nid = \"keel-ci\"\nsecret_env = \"{SECRET_VAR}\"\n")).unwrap();
    let report = dir.path().join("r.json");
    let out = keel_cli(
        vec![
            "run".to_owned(),
            "--quiet".to_owned(),
            "--req".to_owned(),
            "INT-2,INT-3".to_owned(),
            "--target".to_owned(),
            t.display().to_string(),
            "--report-json".to_owned(),
            report.display().to_string(),
        ],
        "x",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let revoked = scenario(&v, "revoked access token is inactive at once");
    assert_eq!(revoked["verdict"], "error", "{revoked:#}");
    assert!(
        revoked["message"]
            .as_str()
            .unwrap()
            .contains("not active before its revocation"),
        "{revoked:#}"
    );
    let int2 = scenario(&v, "a revoked access token answers");
    assert_eq!(int2["verdict"], "error", "{int2:#}");
}

/// `private_key_jwt` (RFC 7523): keel sends a client assertion signed with the key from the
/// environment, with iss = sub = the client id and the token endpoint in aud, and `token_params`
/// ride along on every token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_sends_a_verifiable_client_assertion_and_token_params() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    let public = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();

    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let iss = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": iss, "token_endpoint": format!("{iss}/token")})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": jwt(&iss), "token_type": "Bearer"})),
        )
        .mount(&server)
        .await;
    let t = dir.path().join("t.toml");
    std::fs::write(
        &t,
        format!("[issuer]\nurl = \"{iss}\"\n\n[client]\nid = \"keel-ci\"\nsecret_env = \"{SECRET_VAR}\"\nauth_method = \"private_key_jwt\"\ntoken_params = {{ resource = \"https://api.example\" }}\n"),
    )
    .unwrap();
    let out = keel_cli(
        vec![
            "run".to_owned(),
            "--quiet".to_owned(),
            "--req".to_owned(),
            "IDN-1".to_owned(),
            "--target".to_owned(),
            t.display().to_string(),
        ],
        pem,
    )
    .await;
    let requests = server.received_requests().await.unwrap();
    let token_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == "/token")
        .collect();
    assert!(
        !token_requests.is_empty(),
        "no token request: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for r in token_requests {
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        assert_eq!(
            form.get("client_assertion_type").map(String::as_str),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert_eq!(
            form.get("resource").map(String::as_str),
            Some("https://api.example")
        );
        assert!(!form.contains_key("client_secret") && r.headers.get("authorization").is_none());
        let assertion = form.get("client_assertion").expect("a client assertion");
        let key = jsonwebtoken::DecodingKey::from_ec_der(&public);
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&[format!("{iss}/token")]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &v)
            .expect("the assertion verifies with the client's public key")
            .claims;
        assert_eq!(claims["iss"], "keel-ci");
        assert_eq!(claims["sub"], "keel-ci");
        assert!(claims["jti"].is_string());
    }
}
