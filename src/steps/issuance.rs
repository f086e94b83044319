//! Obtaining tokens: client credentials, the authorization-code grant, refresh.

use cucumber::{given, then, when};
use serde_json::json;

use crate::issuer::{self, oauth_error};
use crate::verdict::{Problem, error, fail};
use crate::world::{KeelWorld, TokenName};

#[given("an access token from the client credentials grant")]
async fn an_access_token_from_client_credentials(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let issued = issuer::client_credentials(&ctx).await?;
    w.note(json!({"step": "issued (client_credentials)", "token": issued.access.fingerprint, "name": "access token", "expires_in": issued.expires_in}));
    w.issued_with
        .insert(TokenName::Access, (issued.date.clone(), issued.expires_in));
    w.tokens.insert(TokenName::Access, issued.access);
    Ok(())
}

#[given("a refresh token issued to the test user")]
async fn a_refresh_token_issued_to_the_test_user(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let issued = issuer::user_tokens(&ctx).await?;
    let Some(refresh) = issued.refresh else {
        return Err(error(
            "the authorization-code grant returned no refresh token; declare the refresh policy `none` if the issuer never issues them",
        ));
    };
    w.note(json!({
        "step": "issued (authorization_code)",
        "token": issued.access.fingerprint,
        "name": "user access token",
        "refresh": refresh.fingerprint,
    }));
    w.issued_with.insert(
        TokenName::UserAccess,
        (issued.date.clone(), issued.expires_in),
    );
    w.tokens.insert(TokenName::UserAccess, issued.access);
    w.tokens.insert(TokenName::Refresh, refresh);
    Ok(())
}

async fn refresh(w: &mut KeelWorld, source: TokenName, precondition: bool) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let rt = w.token(source)?;
    let reply = issuer::refresh(&ctx, &rt.value).await?;
    let judge = |m: String| if precondition { error(m) } else { fail(m) };
    if reply.status != 200 {
        return Err(judge(format!(
            "expected the {} to refresh (HTTP 200), got {}{}",
            source.words(),
            reply.describe(),
            oauth_error(&reply)
        )));
    }
    let issued = issuer::parse_token_response(&ctx, &reply, "refresh").map(issuer::mark_user)?;
    // Under a `reuse` policy the same refresh token comes back; with none returned, the old one
    // stays the current one (RFC 6749 §6).
    let next = issued.refresh.unwrap_or_else(|| rt.clone());
    w.note(json!({
        "step": "refreshed",
        "token": issued.access.fingerprint,
        "name": "refreshed access token",
        "refresh": next.fingerprint,
    }));
    w.issued_with.insert(
        TokenName::RefreshedAccess,
        (issued.date.clone(), issued.expires_in),
    );
    w.tokens.insert(TokenName::RefreshedAccess, issued.access);
    w.tokens.insert(TokenName::RefreshedRefresh, next);
    Ok(())
}

#[when(expr = "the {token} is refreshed")]
async fn the_token_is_refreshed(w: &mut KeelWorld, source: TokenName) -> Result<(), Problem> {
    refresh(w, source, false).await
}

#[then(expr = "the {token} still refreshes")]
async fn the_token_still_refreshes(w: &mut KeelWorld, source: TokenName) -> Result<(), Problem> {
    refresh(w, source, false).await
}

#[given(expr = "the {token} has been refreshed")]
async fn the_token_has_been_refreshed(w: &mut KeelWorld, source: TokenName) -> Result<(), Problem> {
    refresh(w, source, true).await
}
