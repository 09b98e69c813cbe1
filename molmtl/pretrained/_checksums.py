"""SHA-256 of every file of every shipped model: written by scripts/package_pretrained.py."""

SHA256: dict[str, dict[str, str]] = {
    "qm9-2d-dbmtl": {
        "card.json": "0d6c6dcf1fa0b8ca80fc2ba765b31d4d7dd1defa2b2a18f1e449d6d095b5d0a4",
        "config.json": "5ad02264b934347739706cb9e17b3258294edd7c0288140ac52a08ae51a6b8d7",
        "model.pt": "882236bb21047827ddc3495b8451ad2d5e9d4800f75c0b1c846ecfa258db2c2e",
    },
}
