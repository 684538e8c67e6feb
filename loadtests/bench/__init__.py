"""Benchmarks behind `salesboost bench`: each writes JSON."""
