"""Helpers shared by the test suite: real processes, waiting, the broker."""
