@area:refresh
Feature: Refresh-token rotation
  A refresh continues a grant: the family, the principal and the client must stay exactly what
  they were, however long the chain. Under rotation every refresh returns a new refresh token,
  and presenting a rotated-out one is treated as theft: refused, and its family revoked (RFC 9700
  §4.14.2), but only its family. These requirements apply to targets that declare their
  refresh policy ([capabilities] refresh_policy = "rotate" or "reuse"). Replays and races run
  alone (@serial): reuse detection revokes families, and an issuer that revokes too much must
  not take the families of scenarios running beside them down with it.

  @req:RFR-1 @level:1
  Scenario: Through a chain of 50 refreshes the family and the principal stay byte-identical
    Given a refresh token issued to the test user
    And the identity of the refresh token has been recorded
    When the refresh token is refreshed 50 times in a chain
    Then every link of the chain names the family and principal of the refresh token

  @req:RFR-2 @level:1 @serial
  Scenario: Replaying a rotated-out refresh token fails and revokes its family's access tokens
    Given a refresh token issued to the test user
    And the refresh token has been refreshed
    And the refreshed access token is active
    When the rotated-out refresh token is presented again
    Then the replay is refused with invalid_grant
    And the refreshed access token is inactive

  @req:RFR-2 @level:1 @serial
  Scenario: Replaying a rotated-out refresh token revokes its family's refresh token
    Given a refresh token issued to the test user
    And the refresh token has been refreshed
    And the refreshed refresh token is active
    When the rotated-out refresh token is presented again
    Then the replay is refused with invalid_grant
    And the refreshed refresh token is inactive

  @req:RFR-3 @level:1 @serial
  Scenario: Reuse detection revokes only the replayed family
    Given a refresh token issued to the test user
    And another refresh token issued to the test user
    And the other refresh token is active
    And the refresh token has been refreshed
    When the rotated-out refresh token is presented again
    Then the replay is refused with invalid_grant
    And the other refresh token is active

  @req:RFR-4 @level:1 @serial
  Scenario: Twenty concurrent refreshes of one refresh token give the outcome the policy says
    Given a refresh token issued to the test user
    When the refresh token is refreshed 20 times concurrently
    Then no concurrent refresh answered with a server error
    And the concurrent refreshes match the declared refresh policy

  @req:RFR-5 @level:1 @serial
  Scenario: A refresh chain continues across a restart and keeps its family
    Given the issuer can be restarted
    And a refresh token issued to the test user
    And the identity of the user access token has been recorded
    And the refresh token has been refreshed
    When the issuer restarts
    And the refreshed refresh token is refreshed
    Then the refreshed access token has the identity of the user access token
