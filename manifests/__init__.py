"""Example manifests and their sample images: installed as the package data ``flows.examples``
(see pyproject.toml), so that ``stylize demo`` works from an installed package."""
