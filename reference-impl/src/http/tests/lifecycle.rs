//! Router-level tests of the lifecycle features: signing-key rotation, API keys with secret
//! roll, Idempotency-Key on client credentials, and the fault modes that break each.

use super::*;

impl Issuer {
    async fn admin(&self, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::post(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// An admin call with the right token that must succeed.
    async fn admin_ok(&self, path: &str) -> Value {
        let (status, headers, body) = self.admin(path, Some(ADMIN)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        body
    }

    async fn jwks_kids(&self) -> Vec<String> {
        let (_, _, body) = self.get("/jwks").await;
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn active_kid(&self) -> Value {
        self.get("/health").await.2["active_kid"].clone()
    }

    /// Creates an API key for keel-ci: `(api_key, id)`.
    async fn create_api_key(&self, name: &str) -> (String, String) {
        let (status, headers, body) = self
            .post("/api-keys", Some(("keel-ci", SECRET)), &[("name", name)])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(body["client_id"], "keel-ci");
        (
            body["api_key"].as_str().unwrap().to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn validate(&self, key: &str) -> Value {
        let (status, _, body) = self
            .post(
                "/api-keys/validate",
                Some(("keel-ci-2", SECRET2)),
                &[("api_key", key)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn roll(&self, id: &str, client: (&str, &str)) -> (StatusCode, Value) {
        let (status, _, body) = self
            .post(&format!("/api-keys/{id}/roll"), Some(client), &[])
            .await;
        (status, body)
    }

    /// A client-credentials request for keel-ci with an `Idempotency-Key` header.
    async fn token_idem(&self, key: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.token_idem_as(("keel-ci", SECRET), key, form).await
    }

    async fn token_idem_as(
        &self,
        client: (&str, &str),
        key: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let cred = STANDARD.encode(format!("{}:{}", client.0, client.1));
        let req = Request::post("/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, format!("Basic {cred}"))
            .header("Idempotency-Key", key)
            .body(Body::from(body))
            .unwrap();
        let (status, _, body) = self.send(req).await;
        (status, body)
    }
}

const CC: (&str, &str) = ("grant_type", "client_credentials");

fn kid_of(jwt: &str) -> Value {
    jwt_part(jwt, 0)["kid"].clone()
}

fn at(body: &Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admin_endpoints_need_a_configured_token() {
    let iss = Issuer::start_with(
        None,
        Config {
            admin_token: None,
            ..config()
        },
    )
    .await;
    for path in [
        "/admin/keys/stage",
        "/admin/keys/activate",
        "/admin/keys/rotate",
    ] {
        assert_eq!(iss.admin(path, Some(ADMIN)).await.0, StatusCode::NOT_FOUND);
    }

    let iss = Issuer::start(None).await;
    let (status, headers, _) = iss.admin("/admin/keys/stage", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, _, _) = iss.admin("/admin/keys/stage", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A client's Basic credentials are not admin credentials.
    let (status, _, _) = iss
        .post("/admin/keys/stage", Some(("keel-ci", SECRET)), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(iss.jwks_kids().await.len(), 1);
}

#[tokio::test]
async fn key_rotation_prepublishes_activates_and_persists() {
    let iss = Issuer::start(None).await;
    let at0 = iss.client_credentials().await;
    let kid0 = kid_of(&at0);
    assert_eq!(iss.active_kid().await, kid0);

    // Stage: published at once, does not sign.
    let kid1 = iss.admin_ok("/admin/keys/stage").await["kid"].clone();
    assert_ne!(kid1, kid0);
    let (_, _, jwks) = iss.get("/jwks").await;
    let staged = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid1)
        .expect("staged key is published");
    assert_eq!(
        kid1,
        json!(crate::keys::ed25519_thumbprint(
            staged["x"].as_str().unwrap()
        ))
    );
    assert_eq!(iss.jwks_kids().await.len(), 2);
    assert_eq!(kid_of(&iss.client_credentials().await), kid0);
    assert_eq!(iss.active_kid().await, kid0);
    let (status, _, body) = iss.admin("/admin/keys/stage", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Activate: the staged key signs, the old one is retired but still verifies.
    let body = iss.admin_ok("/admin/keys/activate").await;
    assert_eq!(body, json!({"kid": kid1, "retired": kid0}));
    let at1 = iss.client_credentials().await;
    assert_eq!(kid_of(&at1), kid1);
    assert_eq!(iss.active_kid().await, kid1);
    assert_eq!(iss.jwks_kids().await.len(), 2);
    assert_eq!(iss.introspect(&at0).await["active"], true);
    assert_eq!(iss.introspect(&at1).await["active"], true);
    let (status, _, _) = iss.admin("/admin/keys/activate", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Everything persists.
    let jwks = iss.get("/jwks").await.2;
    let iss = iss.restart(true).await;
    assert_eq!(iss.get("/jwks").await.2, jwks);
    assert_eq!(iss.active_kid().await, kid1);
    assert_eq!(kid_of(&iss.client_credentials().await), kid1);
    assert_eq!(iss.introspect(&at0).await["active"], true);

    // Rotate = stage + activate.
    let body = iss.admin_ok("/admin/keys/rotate").await;
    assert_eq!(body["retired"], kid1);
    let kid2 = body["kid"].clone();
    assert_eq!(kid_of(&iss.client_credentials().await), kid2);
    assert_eq!(iss.jwks_kids().await.len(), 3);

    // A staged key survives a restart as staged.
    let kid3 = iss.admin_ok("/admin/keys/stage").await["kid"].clone();
    let iss = iss.restart(true).await;
    assert!(
        iss.jwks_kids()
            .await
            .contains(&kid3.as_str().unwrap().to_owned())
    );
    assert_eq!(kid_of(&iss.client_credentials().await), kid2);
    assert_eq!(
        iss.admin_ok("/admin/keys/activate").await,
        json!({"kid": kid3, "retired": kid2})
    );
}

#[tokio::test]
async fn retired_key_is_dropped_after_the_overlap() {
    let iss = Issuer::start_with(
        None,
        Config {
            key_overlap_seconds: Some(1),
            ..config()
        },
    )
    .await;
    let at0 = iss.client_credentials().await;
    let kid0 = kid_of(&at0);
    iss.admin_ok("/admin/keys/rotate").await;
    assert!(
        iss.jwks_kids()
            .await
            .contains(&kid0.as_str().unwrap().to_owned())
    );
    assert_eq!(iss.introspect(&at0).await["active"], true);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(iss.jwks_kids().await.len(), 1);
    assert_eq!(iss.introspect(&at0).await, json!({"active": false}));
    let iss = iss.restart(true).await;
    assert_eq!(iss.jwks_kids().await.len(), 1);
    assert_eq!(iss.introspect(&at0).await, json!({"active": false}));
}

#[tokio::test]
async fn api_keys_issue_validate_roll_and_revoke() {
    let iss = Issuer::start(None).await;
    let (k1, id) = iss.create_api_key("ci").await;
    assert!(k1.starts_with("kak_") && k1.len() == 58, "{k1}");
    assert_eq!(id.len(), 16);
    assert_eq!(&k1[4..20], id);
    assert_eq!(
        crate::tokens::OpaqueFormat::API_KEY
            .parse(&k1)
            .unwrap()
            .public_id,
        id
    );
    assert_eq!(
        iss.validate(&k1).await,
        json!({"valid": true, "id": id, "client_id": "keel-ci", "name": "ci"})
    );

    // Every kind of wrong key is exactly {"valid": false}.
    let f = crate::tokens::OpaqueFormat::API_KEY;
    let parts = f.parse(&k1).unwrap();
    let other_secret = crate::tokens::random_base62(32);
    let wrong_prefix = crate::tokens::OpaqueFormat {
        prefix: "kat_",
        ..f
    }
    .format(&parts.public_id, &parts.secret);
    let bad_checksum = format!("{}000000", &k1[..52]);
    for bad in [
        bad_checksum.as_str(),
        &wrong_prefix,
        &k1.replacen("kak_", "krt_", 1),
        &f.format(&crate::tokens::random_base62(16), &parts.secret),
        &f.format(&parts.public_id, &other_secret),
        "kak_short",
        "",
    ] {
        if bad.is_empty() {
            continue;
        }
        assert_eq!(iss.validate(bad).await, json!({"valid": false}), "{bad}");
    }
    let (status, _, _) = iss.post("/api-keys", Some(("keel-ci", SECRET)), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = iss
        .post("/api-keys", Some(("keel-ci", "nope")), &[("name", "x")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Only the owner may roll.
    assert_eq!(
        iss.roll(&id, ("keel-ci-2", SECRET2)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        iss.roll("0000000000000000", ("keel-ci", SECRET)).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = iss.roll(&id, ("keel-ci", SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id);
    let k2 = body["api_key"].as_str().unwrap().to_owned();
    assert_ne!(k2, k1);
    assert_eq!(&k2[4..20], id);
    let until = body["previous_valid_until"].as_i64().unwrap();
    assert!((until - crate::now() - 60).abs() <= 2, "{until}");
    assert_eq!(iss.validate(&k2).await["valid"], true);
    assert_eq!(iss.validate(&k1).await["valid"], true);

    // A second roll keeps only the latest previous secret.
    let k3 = iss.roll(&id, ("keel-ci", SECRET)).await.1["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(iss.validate(&k1).await, json!({"valid": false}));
    assert_eq!(iss.validate(&k2).await["valid"], true);
    assert_eq!(iss.validate(&k3).await["valid"], true);

    // Persisted.
    let iss = iss.restart(true).await;
    assert_eq!(iss.validate(&k3).await["id"], id);

    // Revocation through /revoke (owner only).
    let (status, _, _) = iss
        .post("/revoke", Some(("keel-ci-2", SECRET2)), &[("token", &k3)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(iss.validate(&k3).await["valid"], true);
    assert_eq!(iss.revoke(&k3).await.0, StatusCode::OK);
    assert_eq!(iss.validate(&k3).await, json!({"valid": false}));
    assert_eq!(iss.validate(&k2).await, json!({"valid": false}));
    assert_eq!(
        iss.roll(&id, ("keel-ci", SECRET)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn api_key_previous_secret_expires_after_the_grace() {
    let iss = Issuer::start_with(
        None,
        Config {
            api_key_grace_seconds: 0,
            ..config()
        },
    )
    .await;
    let (k1, id) = iss.create_api_key("ci").await;
    let (status, body) = iss.roll(&id, ("keel-ci", SECRET)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(iss.validate(&k1).await, json!({"valid": false}));
    assert_eq!(
        iss.validate(body["api_key"].as_str().unwrap()).await["valid"],
        true
    );
}

#[tokio::test]
async fn idempotency_key_on_client_credentials() {
    let iss = Issuer::start(None).await;
    let (status, first) = iss.token_idem("k-1", &[CC, ("scope", "read")]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = iss.token_idem("k-1", &[("scope", "read"), CC]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    // The authentication method is not part of the request.
    let (status, _, post) = iss
        .post(
            "/token",
            None,
            &[
                CC,
                ("scope", "read"),
                ("client_id", "keel-ci"),
                ("client_secret", SECRET),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(at(&post), at(&first), "no header: a new token");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            CC,
            ("scope", "read"),
            ("client_id", "keel-ci"),
            ("client_secret", SECRET),
        ])
        .finish();
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("Idempotency-Key", "\"k-1\"")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(iss.send(req).await.2, first);

    // Same key, different request.
    let (status, body) = iss.token_idem("k-1", &[CC, ("scope", "write")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"error": "invalid_request",
               "error_description": "Idempotency-Key reused with a different request"})
    );
    let (status, _) = iss.token_idem("k-1", &[CC]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Another key, and the same key from another client, are separate.
    let (_, other) = iss.token_idem("k-2", &[CC, ("scope", "read")]).await;
    assert_ne!(at(&other), at(&first));
    let (status, theirs) = iss
        .token_idem_as(("keel-ci-2", SECRET2), "k-1", &[CC, ("scope", "write")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(at(&theirs), at(&first));
    // Malformed keys.
    assert_eq!(
        iss.token_idem("\"\"", &[CC]).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        iss.token_idem(&"x".repeat(300), &[CC]).await.0,
        StatusCode::BAD_REQUEST
    );

    // Survives a restart.
    let iss = iss.restart(true).await;
    assert_eq!(
        iss.token_idem("k-1", &[CC, ("scope", "read")]).await.1,
        first
    );
    let claims = jwt_part(&at(&first), 1);
    assert_eq!(iss.introspect(&at(&first)).await["jti"], claims["jti"]);

    // After a rotation: the same claims under the new key; the old JWT stays valid.
    let rotated = iss.admin_ok("/admin/keys/rotate").await;
    let (_, replay) = iss.token_idem("k-1", &[CC, ("scope", "read")]).await;
    assert_ne!(at(&replay), at(&first));
    assert_eq!(jwt_part(&at(&replay), 1), claims);
    assert_eq!(kid_of(&at(&replay)), rotated["kid"]);
    assert_eq!(iss.introspect(&at(&first)).await["active"], true);
    assert_eq!(iss.introspect(&at(&replay)).await["jti"], claims["jti"]);

    // Other grants ignore the header.
    let (_, rt) = iss.user_tokens().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
    ];
    assert_eq!(iss.token_idem("k-r", &form).await.0, StatusCode::OK);
    assert_eq!(
        iss.token_idem("k-r", &form).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_idempotent_requests_share_one_token() {
    let iss = Arc::new(Issuer::start(None).await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let iss = Arc::clone(&iss);
        tasks.push(tokio::spawn(
            async move { iss.token_idem("same", &[CC]).await },
        ));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        tokens.insert(at(&body));
    }
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn fault_activate_on_stage() {
    let iss = Issuer::start(Some(Fault::ActivateOnStage)).await;
    let at0 = iss.client_credentials().await;
    let kid1 = iss.admin_ok("/admin/keys/stage").await["kid"].clone();
    let at1 = iss.client_credentials().await;
    assert_eq!(kid_of(&at1), kid1, "the staged key signs at once");
    assert_eq!(iss.introspect(&at1).await["active"], true);
    let body = iss.admin_ok("/admin/keys/activate").await;
    assert_eq!(body["kid"], kid1);
    assert_eq!(iss.introspect(&at0).await["active"], true);
    assert_eq!(iss.jwks_kids().await.len(), 2);
}

#[tokio::test]
async fn fault_rotate_without_overlap() {
    let iss = Issuer::start(Some(Fault::RotateWithoutOverlap)).await;
    let at0 = iss.client_credentials().await;
    let kid1 = iss.admin_ok("/admin/keys/stage").await["kid"].clone();
    assert_eq!(
        iss.jwks_kids().await.len(),
        2,
        "pre-publication still works"
    );
    iss.admin_ok("/admin/keys/activate").await;
    assert_eq!(
        iss.jwks_kids().await,
        vec![kid1.as_str().unwrap().to_owned()]
    );
    assert_eq!(iss.introspect(&at0).await, json!({"active": false}));
    assert_eq!(
        iss.introspect(&iss.client_credentials().await).await["active"],
        true
    );
}

#[tokio::test]
async fn fault_kid_reused() {
    let iss = Issuer::start(Some(Fault::KidReused)).await;
    let at0 = iss.client_credentials().await;
    assert_eq!(kid_of(&at0), crate::keys::REUSED_KID);
    assert_eq!(iss.admin_ok("/admin/keys/stage").await["kid"], "reused-kid");
    let (_, _, jwks) = iss.get("/jwks").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], keys[1]["kid"]);
    assert_ne!(keys[0]["x"], keys[1]["x"]);
    iss.admin_ok("/admin/keys/activate").await;
    let at1 = iss.client_credentials().await;
    assert_eq!(kid_of(&at1), crate::keys::REUSED_KID);
    let x_of = |jwt: &str| jwt.split('.').nth(2).unwrap().to_owned();
    assert_ne!(x_of(&at1), x_of(&at0));
    // Both still verify (every key with the kid is tried), and survive a restart.
    assert_eq!(iss.introspect(&at0).await["active"], true);
    assert_eq!(iss.introspect(&at1).await["active"], true);
    let iss = iss.restart(true).await;
    assert_eq!(iss.jwks_kids().await, vec!["reused-kid", "reused-kid"]);
    assert_eq!(iss.introspect(&at0).await["active"], true);
    assert_eq!(iss.introspect(&at1).await["active"], true);
}

#[tokio::test]
async fn fault_roll_changes_public_id() {
    let iss = Issuer::start(Some(Fault::RollChangesPublicId)).await;
    let (k1, id) = iss.create_api_key("ci").await;
    let (status, body) = iss.roll(&id, ("keel-ci", SECRET)).await;
    assert_eq!(status, StatusCode::OK);
    let new_id = body["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    let k2 = body["api_key"].as_str().unwrap();
    assert_eq!(iss.validate(k2).await["id"], new_id);
    assert_eq!(iss.validate(k2).await["name"], "ci");
    assert_eq!(iss.validate(&k1).await["id"], id);

    // The old id still stops working after the grace.
    let iss = Issuer::start_with(
        Some(Fault::RollChangesPublicId),
        Config {
            api_key_grace_seconds: 0,
            ..config()
        },
    )
    .await;
    let (k1, id) = iss.create_api_key("ci").await;
    iss.roll(&id, ("keel-ci", SECRET)).await;
    assert_eq!(iss.validate(&k1).await, json!({"valid": false}));
}

#[tokio::test]
async fn fault_roll_keeps_old_secret() {
    let iss = Issuer::start_with(
        Some(Fault::RollKeepsOldSecret),
        Config {
            api_key_grace_seconds: 0,
            ..config()
        },
    )
    .await;
    let (k1, id) = iss.create_api_key("ci").await;
    let (status, body) = iss.roll(&id, ("keel-ci", SECRET)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], id);
    assert_eq!(iss.validate(&k1).await["valid"], true);
    assert_eq!(
        iss.validate(body["api_key"].as_str().unwrap()).await["valid"],
        true
    );
}

#[tokio::test]
async fn fault_idempotency_ignored() {
    let iss = Issuer::start(Some(Fault::IdempotencyIgnored)).await;
    let (_, a) = iss.token_idem("k", &[CC]).await;
    let (_, b) = iss.token_idem("k", &[CC]).await;
    assert_ne!(at(&a), at(&b));
    let (status, _) = iss.token_idem("k", &[CC, ("scope", "write")]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn fault_memory_idempotency() {
    let iss = Issuer::start(Some(Fault::MemoryIdempotency)).await;
    let (_, a) = iss.token_idem("k", &[CC]).await;
    assert_eq!(iss.token_idem("k", &[CC]).await.1, a);
    assert_eq!(
        iss.token_idem("k", &[CC, ("scope", "write")]).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let iss = iss.restart(true).await;
    let (status, b) = iss.token_idem("k", &[CC]).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(at(&b), at(&a));
    // The token itself persisted.
    assert_eq!(iss.introspect(&at(&a)).await["active"], true);
}

#[tokio::test]
async fn fault_short_jti() {
    let iss = Issuer::start(Some(Fault::ShortJti)).await;
    let mut jtis = std::collections::HashSet::new();
    // ~93% chance of at least one collision among 150 three-hex-digit ids; every request
    // must still succeed.
    for _ in 0..150 {
        let jti = jwt_part(&iss.client_credentials().await, 1)["jti"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(jti.len(), 3);
        assert!(jti.bytes().all(|b| b.is_ascii_hexdigit()));
        jtis.insert(jti);
    }
    assert!(jtis.len() <= 150);
    let last = iss.client_credentials().await;
    assert_eq!(iss.introspect(&last).await["active"], true);
}

#[tokio::test]
async fn fault_skewed_iat() {
    let iss = Issuer::start(Some(Fault::SkewedIat)).await;
    let before = crate::now();
    let token = iss.client_credentials().await;
    let claims = jwt_part(&token, 1);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before - 600 - iat).abs() <= 2, "iat {iat}, now {before}");
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 600);
    let intro = iss.introspect(&token).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["iat"], iat);
    assert_eq!(iss.revoke(&token).await.0, StatusCode::OK);
    assert_eq!(iss.introspect(&token).await, json!({"active": false}));

    // Without the fault, iat is now.
    let iss = Issuer::start(None).await;
    let iat = jwt_part(&iss.client_credentials().await, 1)["iat"]
        .as_i64()
        .unwrap();
    assert!((iat - crate::now()).abs() <= 2);
}
