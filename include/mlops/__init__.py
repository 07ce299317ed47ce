"""Generic MLOps core: settings, validation, the data lake, Feast helpers, training sets.

Nothing here knows about flights; the flights domain plugs into it.
"""
