"""docker-compose.yml is valid (no Docker engine here): docker-compose's own validation + structure; the image and
pyproject.toml install the runtime requirements, the tests' only as an extra."""
import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

from tests.helpers import ROOT, unavailable

COMPOSE_FILE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_docker_compose_validates_the_file():
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose is not installed (.ci/run installs Debian's docker-compose)")
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


def requirement_names(file: str) -> dict[str, str]:
    """Package name (lower case, without extras) -> its full line, for each requirement in `file`."""
    lines = [line.strip() for line in (ROOT / file).read_text().splitlines()]
    return {re.split(r"[\[=<>~! ]", line, maxsplit=1)[0].lower(): line for line in lines if line and line[0] != "#"}


def test_the_image_installs_the_runtime_requirements_only():
    installed = re.findall(r"pip install [^&]*?-r (\S+)", (ROOT / "Dockerfile").read_text())
    assert installed == ["requirements.txt"]
    runtime, tests = requirement_names("requirements.txt"), requirement_names("requirements-test.txt")
    assert {"pytest", "selenium", "schemathesis", "pyyaml"} <= set(tests) and not set(runtime) & set(tests)
    assert {"requests", "flask", "gunicorn", "pymilvus", "torch"} <= set(runtime)
    for line in [*runtime.values(), *tests.values(), *requirement_names("requirements-bge-m3.txt").values()]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+]*", line), f"not one pinned package: {line}"


def test_pyproject_reads_its_dependencies_and_extras_from_the_requirement_files():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]
    assert set(pyproject["project"]["dynamic"]) == {"dependencies", "optional-dependencies"}
    assert dynamic["dependencies"] == {"file": ["requirements.txt"]}
    assert dynamic["optional-dependencies"] == {"test": {"file": ["requirements-test.txt"]},
                                                "bge-m3": {"file": ["requirements-bge-m3.txt"]}}
    assert "flagembedding" in requirement_names("requirements-bge-m3.txt")
