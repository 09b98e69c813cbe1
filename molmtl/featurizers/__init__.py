"""molmtl.featurizers (see docs/architecture.md)."""
