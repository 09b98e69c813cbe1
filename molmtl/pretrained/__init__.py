"""Models shipped inside molmtl, so properties can be predicted without training first.

Each shipped model is a folder of this package holding the two files of a run directory that
prediction needs, ``config.json`` and the tensor-only ``model.pt``, and ``card.json``: the facts
of its model card (data, split, training, test MAE per target; docs/pretrained.md). The SHA-256
of every file is recorded in :mod:`molmtl.pretrained._checksums`, in the code, so a copy whose
files were changed, even consistently with each other, is refused before anything is read.

>>> from molmtl.predict import Predictor
>>> Predictor.pretrained().predict(["CCO"])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from molmtl._version import __version__
from molmtl.pretrained._checksums import SHA256
from molmtl.registry import Registry
from molmtl.rundir import RunDirError, sha256_of

CARD_FILE = "card.json"
#: what ``molmtl predict`` and ``Predictor.pretrained()`` use when no model is named
DEFAULT_MODEL = "qm9-2d-dbmtl"


class ShippedModelError(RunDirError):
    """A shipped model is unknown, missing from the installation, or its files were changed."""


@dataclass(frozen=True)
class ShippedModel:
    """One model folder of this package.

    Attributes:
        name: the folder's name, what ``molmtl predict --model NAME`` accepts.
        summary: one line for ``molmtl models``.
        sha256: file name → expected hex SHA-256, for every file of the folder.
    """

    name: str
    summary: str
    sha256: dict[str, str]

    @contextlib.contextmanager
    def folder(self) -> Iterator[Path]:
        """The model's folder on disk, its files checked against :attr:`sha256`.

        Raises:
            ShippedModelError: a file is missing or its checksum differs.
        """
        with resources.as_file(resources.files(__name__) / self.name) as path:
            self.verify(Path(path))
            yield Path(path)

    def verify(self, path: Path) -> None:
        """Raise :class:`ShippedModelError` unless ``path`` holds the recorded files unchanged."""
        if not self.sha256:
            raise ShippedModelError(f"shipped model {self.name!r} has no recorded files")
        for file_name, expected in self.sha256.items():
            file = path / file_name
            if not file.is_file():
                raise ShippedModelError(
                    f"shipped model {self.name!r}: {file} is missing; reinstall molmtl"
                )
            if sha256_of(file) != expected:
                raise ShippedModelError(
                    f"shipped model {self.name!r}: {file} does not match the checksum recorded "
                    f"in molmtl {__version__} (the file was modified or truncated); reinstall molmtl"
                )

    def card(self) -> dict[str, Any]:
        """The facts of the model card (``card.json``), checked like the other files."""
        with self.folder() as path:
            return json.loads((path / CARD_FILE).read_text(encoding="utf-8"))


#: name → :class:`ShippedModel`
MODELS: Registry[ShippedModel] = Registry("shipped model")
MODELS.register(
    "qm9-2d-dbmtl",
    ShippedModel(
        name="qm9-2d-dbmtl",
        summary="QM9, 11 targets, 2D GINE from SMILES (no conformer), DB-MTL; CPU-trained",
        sha256=SHA256["qm9-2d-dbmtl"],
    ),
)


def available_models() -> list[str]:
    """Names of the models shipped with this molmtl."""
    return MODELS.names()


def get_model(name: str | None = None) -> ShippedModel:
    """The shipped model ``name`` (default :data:`DEFAULT_MODEL`).

    Raises:
        ShippedModelError: no shipped model has that name.
    """
    name = DEFAULT_MODEL if name is None else name
    if name not in MODELS:
        raise ShippedModelError(
            f"no shipped model named {name!r}; shipped models: {available_models()}"
        )
    return MODELS.get(name)


__all__ = [
    "CARD_FILE",
    "DEFAULT_MODEL",
    "MODELS",
    "ShippedModel",
    "ShippedModelError",
    "available_models",
    "get_model",
]
