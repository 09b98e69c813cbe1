"""molmtl.training (see docs/architecture.md)."""
