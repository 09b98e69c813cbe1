"""Featurizer registry: names → classes, and rebuilding a featurizer from a stored spec."""

from __future__ import annotations

from typing import Any

from molmtl.featurizers._base import Featurizer, FeaturizerSpecError
from molmtl.featurizers.features import markdown_table
from molmtl.registry import Registry

#: featurizer name → class; a featurizer module registers itself with ``@register("name")``
FEATURIZERS: Registry[type[Featurizer]] = Registry("featurizer")
register = FEATURIZERS.register


def available() -> list[str]:
    """Names accepted by :func:`get`, sorted."""
    return sorted(FEATURIZERS.names())


def get(name: str = "2d", **options: Any) -> Featurizer:
    """The featurizer registered as ``name``, built with ``options``.

    Raises:
        ValueError: unknown name (the message lists the available ones), or an option the
            featurizer does not take (the message lists those it takes).
    """
    return FEATURIZERS.build(name, **options)


def _first_difference(stored: Any, current: Any, path: str) -> str | None:
    if isinstance(stored, dict) and isinstance(current, dict):
        for key in sorted(set(stored) | set(current), key=str):
            if key not in stored or key not in current:
                return f"{path}.{key}"
            found = _first_difference(stored[key], current[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(stored, list | tuple) and isinstance(current, list | tuple):
        if len(stored) != len(current):
            return f"{path} (length {len(stored)} stored vs {len(current)} now)"
        for i, (a, b) in enumerate(zip(stored, current, strict=True)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if stored == current else f"{path} (stored {stored!r}, this code {current!r})"


def from_spec(spec: dict[str, Any]) -> Featurizer:
    """Rebuild the featurizer that produced ``spec`` and check that this code reproduces it.

    Raises:
        FeaturizerSpecError: unknown name, bad options, or a field that differs (named in
            the message, e.g. ``spec.node_features[2].columns``).
    """
    if not isinstance(spec, dict) or "name" not in spec:
        raise FeaturizerSpecError(f"a featurizer spec is a dict with a 'name', got {spec!r:.200}")
    try:
        featurizer = get(spec["name"], **spec.get("options", {}))
    except ValueError as error:
        raise FeaturizerSpecError(str(error)) from None
    difference = _first_difference(spec, featurizer.spec, "spec")
    if difference:
        raise FeaturizerSpecError(
            f"stored featurizer spec differs from what this code produces at {difference}; "
            "the model was trained with other features (retrain, or use the molmtl version that trained it)"
        )
    return featurizer


def feature_tables() -> str:
    """Markdown tables of every registered featurizer's node and edge features (for docs/data.md)."""
    sections = []
    for name in available():
        featurizer = get(name)
        sections.append(
            f"### `{name}` featurizer (version {featurizer.version}): "
            f"node_dim {featurizer.node_dim}, edge_dim {featurizer.edge_dim}\n\n"
            f"Node features:\n\n{markdown_table(featurizer.node_features)}\n\n"
            f"Edge features:\n\n{markdown_table(featurizer.edge_features)}\n"
        )
    return "\n".join(sections)
