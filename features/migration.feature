@area:migration @serial @isolated
Feature: Schema migrations and rollbacks
  A schema migration (and its rollback, when a deploy is reverted) must carry every token and
  every identity across unchanged: tokens stay active, identities stay byte-identical, refresh
  tokens still refresh, revocations stay in force, and tokens issued afterwards name the same
  subjects. Each migration and rollback is proven by the schema version the issuer reports.

  @req:MIG-1 @level:2
  Scenario: Tokens issued before a migration keep their identity after it
    Given the issuer's schema can be migrated and rolled back
    And the issuer's schema has been rolled back one version
    And an access token from the client credentials grant
    And a refresh token issued to the test user
    And the identity of the access token has been recorded
    And the identity of the user access token has been recorded
    When the issuer's schema is migrated
    Then the identity of the access token is unchanged
    And the identity of the user access token is unchanged
    And the refresh token still refreshes

  @req:MIG-1 @level:2
  Scenario: A refresh token's identity is unchanged by a migration
    Given the issuer's schema can be migrated and rolled back
    And the issuer's schema has been rolled back one version
    And a refresh token issued to the test user
    And the identity of the refresh token has been recorded
    When the issuer's schema is migrated
    Then the identity of the refresh token is unchanged

  @req:MIG-1 @level:2
  Scenario: Tokens revoked before a migration stay revoked after it
    Given the issuer's schema can be migrated and rolled back
    And the issuer's schema has been rolled back one version
    And an access token from the client credentials grant
    And the access token has been revoked
    When the issuer's schema is migrated
    Then the access token is inactive

  @req:MIG-3 @level:2
  Scenario: Tokens issued after a migration name the same subject, with sane lifetimes
    Given the issuer's schema can be migrated and rolled back
    And the issuer's schema has been rolled back one version
    And an access token from the client credentials grant
    And the identity of the access token has been recorded
    When the issuer's schema is migrated
    And a second access token is obtained from the client credentials grant
    Then the second access token has the identity of the access token
    And the lifetimes of the second access token are sane

  @req:MIG-2 @level:2
  Scenario: Tokens issued before a rollback keep their identity after it
    Given the issuer's schema can be migrated and rolled back
    And an access token from the client credentials grant
    And a refresh token issued to the test user
    And the identity of the access token has been recorded
    When the issuer's schema is rolled back one version
    Then the identity of the access token is unchanged
    And the refresh token still refreshes
    When the issuer's schema is migrated

  @req:MIG-2 @level:2
  Scenario: A refresh token's identity is unchanged by a rollback
    Given the issuer's schema can be migrated and rolled back
    And a refresh token issued to the test user
    And the identity of the refresh token has been recorded
    When the issuer's schema is rolled back one version
    Then the identity of the refresh token is unchanged
    When the issuer's schema is migrated
