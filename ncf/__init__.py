"""Neural Collaborative Filtering (NeuMF): model, data, training and evaluation."""
