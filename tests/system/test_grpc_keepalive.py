"""An idle Milvus client draws no "too_many_pings" GOAWAY from the Milvus Lite server (issue 18: no error noise)."""
from __future__ import annotations

import sys
import textwrap

from tests.helpers import ROOT, milvus_lite_server, service_env

# The service's gRPC options, time compressed: a 1 s keepalive timer instead of 10 min, and no cap on the pings a
# client sends without data (gRPC's default of 2 only delays the GOAWAY by those pings' timers): a client that
# pinged while idle would draw the server's GOAWAY within seconds (gRPC servers allow one ping per 2 hours on a
# connection without calls).
IDLE_CLIENT = textwrap.dedent("""
    import sys, time
    from pymilvus import MilvusClient
    from app.storage.products import GRPC_OPTIONS
    client = MilvusClient(uri=sys.argv[1], grpc_options={**GRPC_OPTIONS, "grpc.keepalive_time_ms": 1000,
                                                     "grpc.http2.max_pings_without_data": 0})
    client.list_collections()
    time.sleep(8)  # idle
    client.list_collections()
    client.close()
""")


def test_an_idle_client_is_not_sent_away_for_its_keepalive_pings(tmp_path):
    import subprocess

    with milvus_lite_server(tmp_path, tmp_path / "milvus.log") as (uri, _):
        done = subprocess.run([sys.executable, "-c", IDLE_CLIENT, uri], cwd=ROOT, env=service_env(tmp_path),
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "too_many_pings" not in done.stderr and "GOAWAY" not in done.stderr, done.stderr[-2000:]
