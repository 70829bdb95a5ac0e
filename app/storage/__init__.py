"""Storage layer: the Milvus products and users collections, the SQL event, job and impression tables."""
