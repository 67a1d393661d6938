@zone
Feature: Zone loss
  A whole zone can be lost, with its database node and its application node,
  and the workflows keep their tiers from the two zones left.

  Background:
    Given the platform is in steady state within 120 seconds
    And every workflow is probed
    And every workflow succeeds for 5 seconds

  @slow @tier1 @tier2 @tier3
  Scenario Outline: Every workflow keeps its tier when the zone of the Postgres primary <fails>
    When the zone of the Postgres primary <fails>
    And the fault lasts 45 seconds
    And the fault is healed
    Then every workflow is available again within 60 seconds
    And no acknowledged write is lost
    And every workflow meets its tier
    And the platform recovers within 120 seconds

    @hang
    Examples: hang
      | fails |
      | hangs |

    @crash
    Examples: crash
      | fails   |
      | crashes |
