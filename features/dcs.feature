@dcs
Feature: The DCS (etcd) loses members
  Patroni keeps its leader lock in etcd. One etcd member lost leaves a
  quorum and should change nothing; two lost take the quorum away, and what
  happens to writes then is the finding.

  Background:
    Given the platform is in steady state within 120 seconds
    And every workflow is probed
    And every workflow succeeds for 5 seconds

  @quick @tier1 @tier2 @tier3
  Scenario: Losing one etcd member changes nothing for users
    When one etcd member is lost
    And 20 seconds pass
    And the fault is healed
    Then no workflow is down for more than 2 seconds
    And every workflow meets its tier

  @slow @tier1 @tier2 @tier3
  Scenario: Losing the etcd quorum keeps writes going and loses nothing
    When two etcd members are lost
    And 40 seconds pass
    And the fault is healed
    Then every workflow is available again within 60 seconds
    And no acknowledged write is lost
    And every workflow meets its tier
    And the platform recovers within 120 seconds
