"""The optional C parts of the FastAGI command path: its cores (agi/_speedups.c, whose twins are
in agi/cores.py) and the reader of a call's first read (agi/_headerblock.c, agi/protocol.py).

Everything else about the package is in pyproject.toml. `optional=True`: on a machine with
no C compiler the build goes on without the extension, and agi/cores.py runs its
pure-Python twins (the same behaviour, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("agi._speedups", ["agi/_speedups.c"], optional=True),
        Extension("agi._headerblock", ["agi/_headerblock.c"], optional=True),
    ]
)
