"""The optional C cores of the FastAGI command path (agi/_speedups.c; agi/cores.py).

Everything else about the package is in pyproject.toml. `optional=True`: on a machine with
no C compiler the build goes on without the extension, and agi/cores.py runs its
pure-Python twins (the same behaviour, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("agi._speedups", ["agi/_speedups.c"], optional=True),
    ]
)
