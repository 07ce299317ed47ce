"""Pools and queues of the project (compute management and serialization)."""

# Training runs in its own pool, and on its own Celery queue in the production stack, so that
# a search never starves the hourly and daily pipelines and can be given dedicated workers.
TRAINING_POOL = "training"
TRAINING_QUEUE = "training"
# Alias moves of the champion (promotion, rollback) run one at a time, across all workers.
PROMOTION_POOL = "promotion"

POOLS = {
    TRAINING_POOL: (2, "training runs (compute management)"),
    PROMOTION_POOL: (1, "moves of the champion alias, one at a time"),
}
