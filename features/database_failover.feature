@database @tier1
Feature: Postgres primary failover during dispatch
  The warehouse keeps scanning and dispatching when the node that holds the
  Postgres primary is lost: Patroni promotes the synchronous standby, the
  app replicas reconnect, and no dispatch the warehouse was told is done
  goes missing.

  Background:
    Given the platform is in steady state within 120 seconds
    And warehouse scanning and dispatch are probed
    And every workflow succeeds for 5 seconds

  @node @slow
  Scenario Outline: Tier-1 workflows ride out the loss of the node holding the Postgres primary
    When the node holding the Postgres primary <fails>
    And the fault lasts 45 seconds
    And the fault is healed
    Then every workflow is available again within 60 seconds
    And no acknowledged dispatch is lost
    And every workflow meets its tier

    @hang
    Examples: hang
      | fails |
      | hangs |

    @crash
    Examples: crash
      | fails   |
      | crashes |
