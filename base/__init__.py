"""Shared basics every layer may use: settings, keys, structured logs, metric counters,
the errors clients are answered with, and the guard on URLs Hutch fetches. Imports no other
Hutch package but storage's error tree."""
