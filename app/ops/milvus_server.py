"""Run the embedded Milvus Lite store as a loopback server, so several processes can share it.

    python -m app.ops.milvus_server [--data-dir DIR | --db-file FILE] [--host 127.0.0.1] [--port 19530]

A Milvus Lite file can be opened by one process only. Served this way, every gunicorn worker, the seed
scripts and the trainer reach the same store with MILVUS_URI=http://HOST:PORT. The server holds the
file's lock while it runs and stops on SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from app.config.settings import Settings

log = logging.getLogger(__name__)
STORE_FILE = "milvus.db"


def serve(db_file: Path, host: str, port: int, ready_timeout: float = 30.0) -> int:
    """Start the server on `host:port` over `db_file`, block until a signal, stop it; the exit code."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
    server = _tcp_server(db_file, f"{host}:{port}")
    if not server.init() or not server.start():
        log.error("could not start Milvus Lite on %s (is %s open in another process?)", db_file, db_file)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if not wait_for_port(host, port, ready_timeout):
            log.error("Milvus Lite did not listen on %s:%d within %.0f s", host, port, ready_timeout)
            return 1
        print(f"Milvus Lite serving {db_file} at http://{host}:{port}", flush=True)
        while not stop.wait(1.0):
            if server._p.poll() is not None:  # the server process died
                log.error("Milvus Lite exited with %s", server._p.returncode)
                return 1
        return 0
    finally:
        server.stop()


def _tcp_server(db_file: Path, address: str):
    """Milvus Lite's server on a TCP address, tied to the file lock like its default socket mode.

    The server binary exits when the lock that this process holds is released, so it cannot outlive this
    process, even one killed with SIGKILL.
    """
    from milvus_lite.server import Server

    class TcpServer(Server):
        @property
        def args(self):
            return [self.milvus_bin, self._db_file, self._address, self.log_level, self._lock_path]

    return TcpServer(str(db_file), address=address)


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.ops.milvus_server", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help=f"serve DIR/{STORE_FILE} (default: DATA_DIR)")
    parser.add_argument("--db-file", type=Path, help="serve this Lite file instead")
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    parser.add_argument("--port", type=int, default=19530)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db_file = args.db_file or Path(args.data_dir or Settings.from_env().data_dir) / STORE_FILE
    return serve(db_file.resolve(), args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
