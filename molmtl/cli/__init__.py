"""The ``molmtl`` command line: a thin argparse layer over the Python API (see :mod:`molmtl.cli.main`)."""
