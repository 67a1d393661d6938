@burst @node
Feature: Shift-change burst
  At a shift change the dock dispatches at five times its usual rate; a node
  lost then must not cost more than at a quiet hour.

  Background:
    Given the platform is in steady state within 120 seconds
    And every workflow is probed
    And every workflow succeeds for 5 seconds

  @slow @hang @tier1 @tier2 @tier3
  Scenario: Dispatch at five times its rate rides out the hang of the node holding the Postgres primary
    When dispatch runs at 5 times its rate
    And 5 seconds pass
    And the node holding the Postgres primary hangs
    And the fault lasts 45 seconds
    And the fault is healed
    Then every workflow is available again within 60 seconds
    And no acknowledged write is lost
    And every workflow meets its tier
    And the platform recovers within 120 seconds
