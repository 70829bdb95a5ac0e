"""Processes: the run command (`python -m app.ops.service`), the Milvus Lite server and the CLI."""
