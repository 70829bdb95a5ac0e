"""The documentation keeps up with the code: every setting has its row in docs/configuration.md."""
import re
from app.config.settings import Settings
from tests.helpers import ROOT

CONFIGURATION = ROOT / "docs" / "configuration.md"


def documented_variables() -> set[str]:
    """The variables named in the first cell of a table row of docs/configuration.md."""
    first_cells = re.findall(r"^\| ([^|]+) \|", CONFIGURATION.read_text(), re.MULTILINE)
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def test_every_service_and_gunicorn_setting_is_documented():
    gunicorn = set(re.findall(r"""environ(?:\.get\(|\[)["']([A-Z_]+)["']""", (ROOT / "gunicorn.conf.py").read_text()))
    settings = {name.upper() for name in Settings.model_fields}
    assert {"BIND", "WEB_CONCURRENCY", "MILVUS_URI"} <= gunicorn and "DATA_DIR" in settings
    missing = (settings | gunicorn | {"PROMETHEUS_MULTIPROC_DIR"}) - documented_variables()
    assert not missing, f"add a row to docs/configuration.md for {sorted(missing)}"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
