"""One module per balancing method; they are found through :mod:`molmtl.balancing._registry`."""
