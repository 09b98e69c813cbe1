"""molmtl.predict (see docs/architecture.md)."""
