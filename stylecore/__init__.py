"""stylecore: the pure library of stylepipe (torch + numpy + pillow; no Prefect, Typer or Rich)."""

__version__ = "0.1.0"
