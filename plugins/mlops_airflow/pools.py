"""Pools and queues of the project (compute management)."""

# Training runs in its own pool, and on its own Celery queue in the production stack, so that
# a search never starves the daily pipelines and can be given dedicated workers.
TRAINING_POOL = "training"
TRAINING_POOL_SLOTS = 2
TRAINING_QUEUE = "training"
