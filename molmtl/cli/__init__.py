"""molmtl.cli (see docs/architecture.md)."""
