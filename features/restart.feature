@area:restart @serial
Feature: Restart stability
  A restart of the issuer process (a deploy, a crash, an OOM kill) must not change anything a
  client or resource server relies on: tokens stay valid, identities stay byte-identical, the
  JWKS stays the same, revocations stay in force. Each restart is proven (a new boot id, or
  downtime observed during the hook); a restart without proof is an error, never a pass.
  These scenarios run alone, never beside another scenario.

  @req:RST-1 @level:1
  Scenario: A client-credentials access token active before a restart is active after it
    Given the issuer can be restarted
    And an access token from the client credentials grant
    And the access token is active
    When the issuer restarts
    Then the access token is active

  @req:RST-1 @level:1
  Scenario: User tokens active before a restart are active after it
    Given the issuer can be restarted
    And a refresh token issued to the test user
    And the user access token is active
    And the refresh token is active
    When the issuer restarts
    Then the user access token is active
    And the refresh token is active

  @req:RST-2 @level:1
  Scenario: The identity of a client-credentials access token is byte-identical across a restart
    Given the issuer can be restarted
    And an access token from the client credentials grant
    And the identity of the access token has been recorded
    When the issuer restarts
    Then the identity of the access token is unchanged

  @req:RST-2 @level:1
  Scenario: The identities of user tokens are byte-identical across a restart
    Given the issuer can be restarted
    And a refresh token issued to the test user
    And the identity of the user access token has been recorded
    And the identity of the refresh token has been recorded
    When the issuer restarts
    Then the identity of the user access token is unchanged
    And the identity of the refresh token is unchanged

  @req:RST-3 @level:1
  Scenario: The JWKS is unchanged across a restart
    Given the issuer can be restarted
    And the JWKS has been recorded
    When the issuer restarts
    Then the JWKS is unchanged

  @req:RST-4 @level:1
  Scenario: A revoked access token stays revoked across a restart
    Given the issuer can be restarted
    And an access token from the client credentials grant
    And the access token has been revoked
    When the issuer restarts
    Then the access token is inactive

  @req:RST-4 @level:1
  Scenario: A revoked refresh token stays revoked across a restart
    Given the issuer can be restarted
    And a refresh token issued to the test user
    And the refresh token has been revoked
    When the issuer restarts
    Then the refresh token is inactive

  @req:RST-5 @level:1
  Scenario: A refresh token issued before a restart refreshes after it and keeps the identity
    Given the issuer can be restarted
    And a refresh token issued to the test user
    And the identity of the user access token has been recorded
    When the issuer restarts
    And the refresh token is refreshed
    Then the refreshed access token has the identity of the user access token

  @req:RST-6 @level:1
  Scenario: An access token issued immediately before a hard kill survives it
    Given the issuer can be killed
    And an access token from the client credentials grant
    When the issuer is killed and restarted at once
    Then the access token is active

  @req:RST-6 @level:1
  Scenario: User tokens issued immediately before a hard kill survive it
    Given the issuer can be killed
    And a refresh token issued to the test user
    And the user access token is active
    And the refresh token is active
    When the issuer is killed and restarted at once
    Then the user access token is active
    And the refresh token is active
