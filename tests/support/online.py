"""Helpers to read what the online store serves, shared by the store tests."""

from __future__ import annotations

import pandas as pd

from include.flights import features


def serve(store, flights: pd.DataFrame) -> pd.DataFrame:
    """Online features for the entity keys of `flights`, one row each."""
    from include.flights import pipeline

    keys = flights.assign(route=features.route_of(flights), carrier_origin=features.carrier_origin_of(flights))
    rows = keys[pipeline.ENTITY_KEYS]
    response = store.get_online_features(
        features=pipeline.all_feature_refs(),
        entity_rows=rows.fillna("unknown").to_dict("records"),
        full_feature_names=True,
    )
    return pd.DataFrame(response.to_dict())
