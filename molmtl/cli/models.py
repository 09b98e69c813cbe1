"""``molmtl models``: the models shipped with molmtl, which ``molmtl predict`` uses by name."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the models shipped with molmtl: `molmtl predict SMILES` uses the first (the "
        "default) when no --model is given, `--model NAME` picks one. docs/pretrained.md is "
        "their model card."
    )
    parser.add_argument(
        "--json", action="store_true", help="print each model's card facts as JSON instead"
    )


def run(args: argparse.Namespace) -> int:
    from molmtl.pretrained import DEFAULT_MODEL, ShippedModelError, available_models, get_model

    try:
        cards = {name: get_model(name).card() for name in available_models()}
    except ShippedModelError as error:
        print(f"molmtl models: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(cards, indent=2))
        return 0
    for name, card in cards.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        test = card["test"]
        targets = ", ".join(test["mae"])
        print(f"{name}{default}: {get_model(name).summary}")
        print(f"  targets: {targets}")
        print(
            f"  trained {card['epochs']} epochs on {card['split']['sizes']['train']:,} molecules; "
            f"test Δm% {test['delta_m_percent']:+.1f} vs single-task references "
            f"({test['n_molecules']:,} test molecules)"
        )
    return 0
