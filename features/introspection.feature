@area:introspection
Feature: Introspection and revocation
  RFC 7662 introspection tells a resource server whether a token is live and whose it is;
  RFC 7009 revocation ends a token (and, for a refresh token, its grant) at once.

  @req:INT-1 @level:1
  Scenario: Introspection of an active access token has the RFC 7662 shape
    Given an access token from the client credentials grant
    Then the introspection of the access token has the RFC 7662 shape

  @req:INT-1 @level:1
  Scenario: Introspection of an active refresh token has the RFC 7662 shape
    Given a refresh token issued to the test user
    Then the introspection of the refresh token has the RFC 7662 shape

  @req:INT-2 @level:1
  Scenario Outline: Introspection of <what> answers exactly {"active":false}
    Given an access token from the client credentials grant
    Then introspecting <what> answers exactly {"active":false}

    Examples:
      | what                   |
      | an unknown token       |
      | a malformed token      |
      | a revoked access token |

  @req:INT-3 @level:1
  Scenario: A revoked access token is inactive at once
    Given an access token from the client credentials grant
    When the access token is revoked
    Then the access token is inactive

  @req:INT-3 @level:1
  Scenario: Revoking an unknown token answers 200
    Then revoking an unknown token answers 200

  @req:INT-4 @level:1
  Scenario: Revoking a refresh token deactivates the access tokens of its grant
    Given a refresh token issued to the test user
    And the user access token is active
    When the refresh token is revoked
    Then the refresh token is inactive
    And the user access token is inactive
