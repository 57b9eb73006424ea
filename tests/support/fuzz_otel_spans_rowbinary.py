"""Many mutated export requests through both otel_traces transforms; prints how many gave
different rows (the test suite runs 1,500 of them, tests/test_otel_spans_rowbinary.py).

Not a pytest module, and it imports no chDB, so it can run with the compiled transform
built under AddressSanitizer and UndefinedBehaviorSanitizer (chDB's loader refuses them):

    so=$(ls projections/otel_spans_rowbinary*.so)
    gcc -shared -fPIC -O1 -g -fsanitize=address,undefined \\
        -I"$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \\
        projections/otel_spans_rowbinary.c -o "$so"
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 \\
        LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \\
        .venv/bin/python -m tests.support.fuzz_otel_spans_rowbinary --seed 11 --count 100000
    rm "$so" && .venv/bin/pip install -q -e .     # the normal build again
"""

from __future__ import annotations

import argparse
import logging

import orjson

from projections.otel_traces import OtelTracesProjection
from storage.analytics.protocol import RowBinary
from tests.support.otlp_builders import mutations, record
from tests.support.rowbinary import read_columns


def rows(projection: OtelTracesProjection, payload: bytes) -> dict[str, list[bytes]]:
    """Each table's rows as sorted JSON: the compiled transform orders them its own way."""
    out = {}
    for table, block in projection.transform([record("otlp.traces.v1", payload)]).items():
        columns = read_columns(block) if isinstance(block, RowBinary) else block
        out[table] = sorted(orjson.dumps(row) for row in zip(*columns.values(), strict=True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # every skipped record logs an error
    python = OtelTracesProjection(30, compiled=False)
    compiled = OtelTracesProjection(30, compiled=True)
    differing = 0
    for n, payload in enumerate(mutations(args.seed, args.count)):
        if rows(python, payload) != rows(compiled, payload):
            differing += 1
            print(f"mutation {n} of seed {args.seed}: the transforms differ")
    print(f"{differing} of {args.count} mutated requests gave different rows")


if __name__ == "__main__":
    main()
