@replica
Feature: Ingress and app replicas killed during traffic
  A killed ingress or app replica is restarted by its node; meanwhile the
  load balancers route around it and users barely notice.

  Background:
    Given the platform is in steady state within 120 seconds
    And every workflow is probed
    And every workflow succeeds for 5 seconds

  @quick @tier1 @tier2 @tier3
  Scenario Outline: Killing <replica> replica keeps every tier
    When <replica> replica is killed
    And 15 seconds pass
    And the fault is healed
    Then every workflow is available again within 30 seconds
    And no acknowledged write is lost
    And every workflow meets its tier

    @ingress
    Examples: ingress
      | replica    |
      | an ingress |

    @app
    Examples: app
      | replica |
      | an app  |
