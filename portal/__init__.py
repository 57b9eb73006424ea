"""The web portal: plain ES modules and CSS under `static/`, served by Hutch (serve.py).

A client of Hutch's HTTP API like the builder and the runner: its pages call /api/* from the
browser, and nothing here reads a store."""
