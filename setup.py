"""The one thing pyproject.toml cannot declare without setuptools' experimental
settings: the triage hot paths in C (handlers/_speedups.c). The build is optional:
without a C compiler, pip installs the package anyway and the Python code runs."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("handlers._speedups", ["handlers/_speedups.c"], optional=True)])
