"""docker-compose.yml is valid (no Docker engine here): docker-compose's own validation + structure."""
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_docker_compose_validates_the_file():
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (.ci/run installs Debian's docker-compose)")
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_services_depend_on_healthy_dependencies(compose):
    services = compose["services"]
    assert {"etcd", "minio", "milvus", "postgres", "app"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services and rule["condition"] == "service_healthy"
    declared_volumes = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared_volumes


def test_app_points_at_the_milvus_service(compose):
    app = compose["services"]["app"]
    assert app["environment"]["MILVUS_URI"] == "http://milvus:19530"
    assert app["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://shop:")
    assert app["build"] == "." and (ROOT / "Dockerfile").exists()
    assert compose["services"]["milvus"]["image"].startswith("milvusdb/milvus:v2.5")
