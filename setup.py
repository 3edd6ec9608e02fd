"""The optional native forwarding path (mediaserver/sfu/_fastpath.c).

Everything else about the package is in pyproject.toml. ``optional=True``: when the
extension cannot be compiled (no compiler, no Python headers) the install still
succeeds and the server runs the pure-Python forwarding path (mediaserver.sfu.fastpath).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mediaserver.sfu._fastpath",
            sources=["mediaserver/sfu/_fastpath.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
