@area:format
Feature: Token format
  Prefixed opaque tokens carry a fixed type prefix, a public id and an embedded checksum, so that
  logs, secret scanners and caches can recognise a token, and refer to it, without the secret.
  These requirements apply to the token kinds whose format the target declares as prefixed.

  Background:
    Given a refresh token issued to the test user

  @req:FMT-1 @level:1
  Scenario: Refresh tokens carry the declared prefix and segment shape
    Then the refresh token has the declared prefix and shape

  @req:FMT-1 @level:1
  Scenario: Refreshed refresh tokens keep the declared prefix and segment shape
    Given the refresh token has been refreshed
    Then the refreshed refresh token has the declared prefix and shape

  @req:FMT-2 @level:1
  Scenario: The embedded checksum is valid and catches every single-character substitution
    Then the checksum of the refresh token is valid
    And keel's offline validator rejects every single-character substitution of the refresh token

  @req:FMT-2 @level:1
  Scenario: A refreshed refresh token carries a valid checksum too
    Given the refresh token has been refreshed
    Then the checksum of the refreshed refresh token is valid
    And keel's offline validator rejects every single-character substitution of the refreshed refresh token
