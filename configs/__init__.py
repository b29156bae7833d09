"""Training configs (ml-collections), one file per recipe with a ``get_config()``.

Installed as the package ``scoresde.configs`` so that ``--config NAME`` works from a checkout
and from an installed package alike.
"""
