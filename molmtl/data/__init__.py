"""molmtl.data (see docs/architecture.md)."""
