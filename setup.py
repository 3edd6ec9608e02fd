"""The optional native forwarding path (mediaserver/sfu/csrc/*.c → mediaserver.sfu._fastpath).

Everything else about the package is in pyproject.toml. ``optional=True``: when the
extension cannot be compiled (no compiler, no Python headers) the install still
succeeds and the server runs the pure-Python forwarding path (mediaserver.sfu.fastpath).
"""

from glob import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mediaserver.sfu._fastpath",
            sources=sorted(glob("mediaserver/sfu/csrc/*.c")),
            depends=["mediaserver/sfu/csrc/fastpath.h"],
            extra_compile_args=[
                "-O2",
                "-std=c11",
                "-fvisibility=hidden",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
            ],
            optional=True,
        )
    ]
)
