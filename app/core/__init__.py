"""Domain layer: catalogue, encoders, indexing, ingestion, recommendation, ranking, experiments, evaluation."""
