"""The Kubernetes platform: faults through the official client."""
