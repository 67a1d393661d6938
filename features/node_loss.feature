@node
Feature: Node loss
  Any one node of the cluster can be lost, by a hang (it stops answering, as
  a lost node usually does) or a crash (its processes die at once), and every
  workflow stays within the limits of its tier.

  Background:
    Given the platform is in steady state within 120 seconds
    And every workflow is probed
    And every workflow succeeds for 5 seconds

  @slow @tier1 @tier2 @tier3
  Scenario Outline: Every workflow keeps its tier when <target> <fails>
    When <target> <fails>
    And the fault lasts 45 seconds
    And the fault is healed
    Then every workflow is available again within 60 seconds
    And no acknowledged write is lost
    And every workflow meets its tier
    And the platform recovers within 120 seconds

    @hang
    Examples: a replica's node hangs
      | target                                 | fails |
      | a node holding only a Postgres replica | hangs |

    @crash
    Examples: a replica's node crashes
      | target                                 | fails   |
      | a node holding only a Postgres replica | crashes |

    @hang
    Examples: an application node hangs
      | target              | fails |
      | an application node | hangs |

    @crash
    Examples: an application node crashes
      | target              | fails   |
      | an application node | crashes |
