"""Web layer: blueprints, request/response schemas, OpenAPI, errors, auth and the metrics endpoint."""
