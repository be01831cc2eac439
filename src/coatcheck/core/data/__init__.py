"""Data files shipped with coatcheck, read with :mod:`importlib.resources`."""
