@area:idempotency
Feature: Deterministic issuance
  A retried request must not mint a second identity: with an Idempotency-Key (IETF httpapi
  idempotency-key draft) the same request gives the same token, a different request under the
  same key is refused with 422, and the guarantee survives a restart. Without a key, every token
  has its own id and every principal its own subject.

  @req:IDM-1 @level:2
  Scenario: The same Idempotency-Key and request give the same token identity
    When an access token is requested with an Idempotency-Key
    And the same request is sent again with the same Idempotency-Key
    Then both responses carry the same token identity

  @req:IDM-2 @level:2
  Scenario: The same Idempotency-Key with a different request is refused with 422
    When an access token is requested with an Idempotency-Key
    And a different request is sent with the same Idempotency-Key
    Then it is refused with 422

  @req:IDM-3 @level:2 @serial
  Scenario: Idempotency survives a restart
    Given the issuer can be restarted
    When an access token is requested with an Idempotency-Key
    And the issuer restarts
    And the same request is sent again with the same Idempotency-Key
    Then both responses carry the same token identity

  @req:IDM-4 @level:1
  Scenario: 2,000 issuances give 2,000 distinct token ids
    When 2000 access tokens are issued
    Then all their token ids are distinct

  @req:IDM-4 @level:1
  Scenario: Distinct clients never share a subject
    Then the access tokens of two different clients name different subjects
