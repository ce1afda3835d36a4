"""Helpers shared by the tests and the benchmarks: real services on free ports, and data locations."""
