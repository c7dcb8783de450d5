"""API types. The pydantic models are the single source of the CRD schemas (see crd.py)."""
