"""The shipped weights: installed as the package data ``stylecore.shipped_weights`` (see pyproject.toml)."""
