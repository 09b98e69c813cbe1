"""docs/data.md shows the feature tables the code produces."""

from pathlib import Path

from molmtl.featurizers import feature_tables

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def test_feature_tables_in_docs_are_current():
    text = DOC.read_text()
    start = text.index("<!-- feature-tables:start -->\n") + len("<!-- feature-tables:start -->\n")
    end = text.index("<!-- feature-tables:end -->")
    assert text[start:end] == feature_tables(), (
        "regenerate with molmtl.featurizers.feature_tables()"
    )
