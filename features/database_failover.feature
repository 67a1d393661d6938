@database
Feature: Postgres primary failover during dispatch
  The warehouse keeps scanning and dispatching when the Postgres primary is
  lost or moved: Patroni promotes a replica that holds every acknowledged
  commit, the app replicas reconnect, and no dispatch the warehouse was told
  is done goes missing.

  Background:
    Given the platform is in steady state within 120 seconds
    And every workflow is probed
    And every workflow succeeds for 5 seconds

  @node @slow @tier1 @tier2 @tier3
  Scenario Outline: Every workflow keeps its tier when the node holding the Postgres primary <fails>
    When the node holding the Postgres primary <fails>
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

  @switchover @tier1 @tier2 @tier3
  Scenario: A planned switchover during dispatch keeps every tier and loses nothing
    When the Postgres primary is switched over to a replica through Patroni
    And 15 seconds pass
    Then every workflow is available again within 60 seconds
    And no acknowledged write is lost
    And every workflow meets its tier

  @crash @slow @rpo @tier1
  Scenario: No acknowledged dispatch is lost when the primary crashes while replication lags
    When replication to every replica stalls for 2 seconds before the node holding the Postgres primary crashes
    And the fault lasts 40 seconds
    And the fault is healed
    Then every workflow is available again within 60 seconds
    And no acknowledged dispatch is lost
    And the platform recovers within 120 seconds
