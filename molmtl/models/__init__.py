"""molmtl.models (see docs/architecture.md)."""
