@area:tampering
Feature: Tampered tokens are rejected
  A token that was changed in any way must not be honoured: not when its checksum or prefix was
  altered, not when its signature was, not when it claims to be unsigned or signed by a stranger.
  Each tampering starts from a genuine token that is active, so a rejection means something.

  @req:NEG-1 @level:1
  Scenario: A refresh token with one checksum character changed is rejected
    Given a refresh token issued to the test user
    Then the refresh token with one checksum character changed is rejected

  @req:NEG-2 @level:1
  Scenario: A refresh token with another prefix and a recomputed checksum is rejected
    Given a refresh token issued to the test user
    Then the refresh token with another prefix and a recomputed checksum is rejected

  @req:NEG-3 @level:1
  Scenario: An access token with one signature byte flipped is rejected
    Given an access token from the client credentials grant
    Then the access token with one signature byte flipped is rejected

  @req:NEG-4 @level:1
  Scenario: An access token re-encoded with alg none is rejected
    Given an access token from the client credentials grant
    Then the access token re-encoded with alg none is rejected

  @req:NEG-5 @level:1
  Scenario: An access token re-signed by a key not in the JWKS is rejected
    Given an access token from the client credentials grant
    Then the access token re-signed by a key not in the JWKS is rejected
