//! Schema migrations and rollbacks: tokens and identities survive both.

use cucumber::{given, when};
use serde_json::json;

use crate::issuer;
use crate::lifecycle::SchemaEvent;
use crate::verdict::{Problem, error};
use crate::world::{KeelWorld, TokenName};

async fn schema(w: &mut KeelWorld, event: SchemaEvent, precondition: bool) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    if !w.serial {
        return Err(error(
            "this scenario migrates the issuer but is not tagged @serial",
        ));
    }
    let proof = match ctx.lifecycle.schema_event(&ctx.client, event).await {
        Ok(p) => p,
        Err(crate::verdict::Problem::Fail(m)) | Err(crate::verdict::Problem::Error(m))
            if precondition =>
        {
            return Err(error(format!("precondition: {m}")));
        }
        Err(e) => return Err(e),
    };
    w.schema_balance += match event {
        SchemaEvent::Migrate => 1,
        SchemaEvent::Rollback => -1,
    };
    w.proofs
        .push(format!("{}: {} ({})", proof.event, proof.proof, proof.how));
    w.note(json!({"event": proof.event, "schema_versions": [proof.before, proof.after]}));
    Ok(())
}

#[given("the issuer's schema has been rolled back one version")]
async fn has_been_rolled_back(w: &mut KeelWorld) -> Result<(), Problem> {
    schema(w, SchemaEvent::Rollback, true).await
}

#[when("the issuer's schema is rolled back one version")]
async fn is_rolled_back(w: &mut KeelWorld) -> Result<(), Problem> {
    schema(w, SchemaEvent::Rollback, false).await
}

#[when("the issuer's schema is migrated")]
async fn is_migrated(w: &mut KeelWorld) -> Result<(), Problem> {
    schema(w, SchemaEvent::Migrate, false).await
}

#[when("a second access token is obtained from the client credentials grant")]
async fn a_second_access_token(w: &mut KeelWorld) -> Result<(), Problem> {
    let ctx = w.ctx()?;
    let issued = issuer::client_credentials(&ctx).await?;
    w.note(
        json!({"step": "issued (client_credentials, second)", "token": issued.access.fingerprint}),
    );
    w.issued_with.insert(
        TokenName::SecondAccess,
        (issued.date.clone(), issued.expires_in),
    );
    w.tokens.insert(TokenName::SecondAccess, issued.access);
    Ok(())
}

#[given("the issuer's schema can be migrated and rolled back")]
async fn the_schema_can_be_migrated_and_rolled_back(w: &mut KeelWorld) -> Result<(), Problem> {
    w.ctx()?.lifecycle.supports_schema()
}
