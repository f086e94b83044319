@area:apikeys
Feature: API keys and secret rolls
  An API key is a prefixed, checksummed token whose public id names it in logs and dashboards.
  Rolling its secret must keep that public id, make the new secret work at once, and retire the
  previous secret when the declared grace period is over (polled, never slept through).

  @req:FMT-1 @level:1
  Scenario: API keys carry the declared prefix and segment shape
    Given an API key issued to the client
    Then the API key has the declared prefix and shape

  @req:FMT-2 @level:1
  Scenario: API keys carry a valid checksum
    Given an API key issued to the client
    Then the checksum of the API key is valid
    And keel's offline validator rejects every single-character substitution of the API key

  @req:ROL-1 @level:2
  Scenario: A roll keeps the public id and both secrets carry valid checksums
    Given an API key issued to the client
    When the API key is rolled
    Then the rolled API key has the public id of the API key
    And the checksum of the rolled API key is valid
    And the checksum of the API key is valid
    And the rolled API key is valid

  @req:ROL-2 @level:2
  Scenario: The previous secret works during the grace period and stops after it
    Given an API key issued to the client
    When the API key is rolled
    Then the API key is valid
    And the rolled API key is valid
    And the API key stops validating once its grace period has passed
    And the rolled API key is valid
