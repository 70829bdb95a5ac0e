"""Neural Collaborative Filtering (NeuMF): model, data, training and evaluation.

One module per job: `mappings` (external ids ↔ indices), `data` (loaders, leave-one-out split, negative
sampling), `model` (NeuMF), `train` (TrainConfig, fit, refit), `baselines` (TopPop, MatrixFactorization),
`evaluate` (every metric), `recommender` (NCFRecommender, latest_model_dir) and the CLI
`python -m ncf train|evaluate`.
"""
