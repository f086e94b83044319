@area:clock
Feature: Clock
  Token times are what verifiers compare with their own clocks: iat must agree with the issuer's
  own Date header, nbf must not lie after iat, and exp - iat must be the lifetime the issuer
  declares.

  @req:CLK-1 @level:1
  Scenario: Access-token timestamps agree with the response's Date and the declared lifetime
    Given an access token from the client credentials grant
    Then the timestamps of the access token agree with the response's Date and the declared lifetime

  @req:CLK-1 @level:1
  Scenario: User access-token timestamps agree with the response's Date and the declared lifetime
    Given a refresh token issued to the test user
    Then the timestamps of the user access token agree with the response's Date and the declared lifetime
