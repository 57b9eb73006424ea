"""Adapters behind small interfaces. The only package that imports a driver."""
