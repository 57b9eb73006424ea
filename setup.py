"""The compiled modules; everything else is in pyproject.toml.

- `schemas.otlp.trace_check`: which OTLP trace requests upb surely reads (ingest skips upb's
  full read for those);
- `projections.otel_spans_rowbinary`: the otel_traces transform.
Both read the wire format through schemas/otlp/trace_wire.h. `optional=True`: without a C
compiler Hutch still installs; ingest then reads every request with upb, and the otel_traces
projection uses its Python transform (projections/otel_traces.py says which one runs).
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension(
            "schemas.otlp.trace_check",
            ["schemas/otlp/trace_check.c"],
            include_dirs=["schemas/otlp"],
            depends=["schemas/otlp/trace_wire.h"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "projections.otel_spans_rowbinary",
            ["projections/otel_spans_rowbinary.c"],
            include_dirs=["schemas/otlp"],
            depends=["schemas/otlp/trace_wire.h"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
    ]
)
