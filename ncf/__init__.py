"""Neural Collaborative Filtering (NeuMF): model, data, training and evaluation.

One module per job: `mappings` (external ids ↔ indices), `data` (loaders, leave-one-out split, negative
sampling), `model` (NeuMF), `train` (TrainConfig, fit, refit), `baselines` (TopPop, MatrixFactorization),
`evaluate` (every metric), `recommender` (NCFRecommender, latest_model_dir), `run` (a training run written
as a model directory), `movielens` (that source) and the CLI `python -m ncf train|evaluate` over files. A
library: it imports nothing of the service (app/core/training_data.py feeds it the service's events).
"""
