"""Foundation imported by every layer: settings, devices, the Milvus Lite URI, blend weight parsing."""
