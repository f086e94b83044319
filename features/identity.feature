@area:identity
Feature: Identity references
  Every token names its issuer, subject, client and itself, and those references are readable
  from the token (a JWT's claims, a prefixed token's public id) and from introspection alike.

  @req:IDN-1 @level:1
  Scenario: Client-credentials access tokens carry their identity references
    Given an access token from the client credentials grant
    Then the access token carries the identity references iss, sub, aud, client_id, iat, exp, jti

  @req:IDN-1 @level:1
  Scenario: User access tokens carry their identity references
    Given a refresh token issued to the test user
    Then the user access token carries the identity references iss, sub, aud, client_id, iat, exp, jti

  @req:IDN-2 @level:1
  Scenario: The key id of an access token names a JWKS key that verifies it
    Given an access token from the client credentials grant
    Then the key id of the access token names a key in the JWKS that verifies its signature

  @req:IDN-3 @level:2
  Scenario: Every JWKS key has its RFC 7638 thumbprint as key id
    Then every key in the JWKS has its RFC 7638 thumbprint as key id

  @req:IDN-4 @level:1
  Scenario: What an access token says of itself agrees with introspection
    Given an access token from the client credentials grant
    Then the identity in the access token agrees with its introspection

  @req:IDN-4 @level:1
  Scenario: A refresh token's public id is its jti in introspection
    Given a refresh token issued to the test user
    Then the identity in the refresh token agrees with its introspection
