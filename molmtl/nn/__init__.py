"""molmtl.nn (see docs/architecture.md)."""
