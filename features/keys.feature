@area:keys @serial @isolated
Feature: Signing-key rotation
  A signing key is rotated in two phases: the next key is published first (verifiers' JWKS caches
  pick it up), then it starts signing, while the previous key stays published and keeps verifying
  for at least the longest token lifetime. A kid names one key forever. Each scenario proves its
  rotation happened (the JWKS gained a key, new tokens carry another kid). A target with only a
  one-step rotation hook gets the same checks, and a warning instead of the pre-publication check.

  @req:KEY-1 @level:2
  Scenario: A staged key is published before it signs
    Given the issuer's signing key can be rotated
    And an access token from the client credentials grant
    When the next signing key is staged
    Then the JWKS holds the previous keys and the staged one
    And a new access token still carries the previous key id
    When the staged signing key is activated

  @req:KEY-2 @level:2
  Scenario: After activation, tokens signed by the previous key keep verifying
    Given the issuer's signing key can be rotated
    And an access token from the client credentials grant
    When the signing key is rotated
    Then a new access token carries a new key id and the identity of the access token
    And the access token still verifies against the JWKS
    And the access token is active

  @req:KEY-3 @level:2
  Scenario: A key id never changes and never names other key material
    Given the issuer's signing key can be rotated
    And an access token from the client credentials grant
    When the signing key is rotated
    Then every key id recorded before the rotation still names the same key material

  @req:KEY-4 @level:2
  Scenario: A rotation survives a restart
    Given the issuer's signing key can be rotated
    And the issuer can be restarted
    And an access token from the client credentials grant
    When the signing key is rotated
    And the JWKS is recorded
    And the issuer restarts
    Then the JWKS is unchanged
