"""The one compiled module (the otel_traces transform); everything else is in pyproject.toml.

`optional=True`: without a C compiler Hutch still installs, and the otel_traces projection
uses its Python transform (projections/otel_traces.py says which one runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "projections.otel_spans_rowbinary",
            ["projections/otel_spans_rowbinary.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
