"""Thin helpers over the Kubernetes API client."""
