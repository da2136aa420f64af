"""Offline tools (``detect``, ``exposure-review``): never in the Lambda package."""
