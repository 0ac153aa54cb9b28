"""docker-compose.yaml, checked without a Docker engine: the Compose schema (Debian's
docker-compose, installed by .ci/run) and agreement with the project's own configuration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib.metadata import version

import pytest
import yaml
from musicrec.orchestration import links
from musicrec.runtime import spark_conf

from tests.conftest import ROOT

pytestmark = pytest.mark.unit
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "WEBHOOK")


def rendered() -> dict:
    """The file as Compose resolves it (anchors merged, ${VARS} from .env.example)."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: .ci/run installs Debian's docker-compose package"
    out = subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.fixture(scope="module")
def compose() -> dict:
    return rendered()


def requirement(name: str) -> str:
    text = (ROOT / "requirements.txt").read_text()
    match = re.search(rf"^{re.escape(name)}==(\S+)$", text, re.MULTILINE)
    assert match, name
    return match.group(1)


def test_the_services_users_are_told_about(compose):
    assert set(compose["services"]) == {
        "airflow-db",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
        "spark-history",
        "serving-db",
    }
    init = compose["services"]["airflow-init"]
    assert init["restart"] == "no"
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        needs = compose["services"][name]["depends_on"]
        assert needs["airflow-init"]["condition"] == "service_completed_successfully"


def test_versions_match_the_pinned_packages(compose):
    import pyspark

    spark_file = (ROOT / "docker" / "spark.Dockerfile").read_text()
    airflow_file = (ROOT / "docker" / "airflow.Dockerfile").read_text()
    assert f"ARG SPARK_VERSION={pyspark.__version__}" in spark_file
    assert "FROM apache/spark:${SPARK_VERSION}" in spark_file
    assert f"ARG AIRFLOW_VERSION={requirement('apache-airflow')}" in airflow_file
    assert "openjdk-17" in airflow_file and "requirements.txt" in airflow_file
    # What executors import, as the driver has it (the grid ALS layouts: implicit's kernels).
    for lib in ("numpy", "pandas", "pyarrow", "implicit", "scipy", "threadpoolctl"):
        assert f"{lib}=={version(lib)}" in spark_file, lib
    services = compose["services"]
    for name in ("spark-master", "spark-worker-1", "spark-worker-2", "spark-history"):
        assert services[name]["build"]["args"]["SPARK_VERSION"] == pyspark.__version__
        assert services[name]["image"].endswith(pyspark.__version__)
    airflow_args = services["airflow-scheduler"]["build"]["args"]
    assert airflow_args["AIRFLOW_VERSION"] == requirement("apache-airflow")
    py = airflow_args["PYTHON_VERSION"]
    assert f"python{py}" in spark_file  # executors and driver: the same Python minor version
    assert services["serving-db"]["image"] == services["airflow-db"]["image"] == "postgres:15"


def test_airflow_uses_fab_auth_and_the_cluster_connection(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("fab_auth_manager.FabAuthManager")
    for service in compose["services"].values():
        auth = service.get("environment", {}).get("AIRFLOW__CORE__AUTH_MANAGER")
        assert auth is None or "SimpleAuthManager" not in auth
    conn = json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])
    master = compose["services"]["spark-master"]
    port = master["command"][master["command"].index("--port") + 1]
    assert conn["host"] == f"spark://spark-master:{port}"
    assert conn["extra"]["deploy-mode"] == "client"  # standalone: no cluster mode for Python
    assert any(p["target"] == int(port) for p in master["ports"])
    # The operator's extra link reaches the History Server on the port it listens on.
    history = compose["services"]["spark-history"]
    ui_port = re.search(
        r"spark.history.ui.port=(\d+)", history["environment"]["SPARK_HISTORY_OPTS"]
    )
    assert ui_port and env["MUSICREC_HISTORY_SERVER_URL"].endswith(f":{ui_port.group(1)}")
    assert links.DEFAULT_HISTORY_SERVER.endswith(f":{ui_port.group(1)}")
    assert env["AIRFLOW_VAR_MUSICREC_DATA_ROOT"] == "/data"
    assert "/data/spark-events" in history["environment"]["SPARK_HISTORY_OPTS"]


def test_spark_rpc_is_authenticated_everywhere(compose):
    services = compose["services"]
    defaults = (ROOT / "docker" / "spark-defaults.conf").read_text()
    assert re.search(r"^spark.authenticate\s+true$", defaults, re.MULTILINE)
    assert re.search(r"^spark.driver.host\s+airflow-scheduler$", defaults, re.MULTILINE)
    assert re.search(r"^spark.driver.bindAddress\s+0.0.0.0$", defaults, re.MULTILINE)
    assert services["airflow-scheduler"]["hostname"] == "airflow-scheduler"
    assert services["airflow-scheduler"]["environment"]["SPARK_CONF_DIR"] == "/opt/musicrec/docker"
    for name in ("spark-master", "spark-worker-1", "spark-worker-2"):
        env = services[name]["environment"]
        opts = env.get("SPARK_MASTER_OPTS", "") + env.get("SPARK_WORKER_OPTS", "")
        assert "-Dspark.authenticate=true" in opts, name
    for name, service in services.items():
        if name.startswith(("spark-master", "spark-worker", "airflow-")) and name != "airflow-db":
            assert service["environment"]["_SPARK_AUTH_SECRET"], name
    worker = services["spark-worker-1"]["environment"]["SPARK_WORKER_OPTS"]
    assert "-Dspark.decommission.enabled=true" in worker  # SIGPWR decommissions gracefully
    assert spark_conf.RESILIENCE["spark.decommission.enabled"][0] == "true"


def test_no_credentials_in_the_file_and_every_variable_in_the_example():
    text = COMPOSE.read_text()
    raw = yaml.safe_load(text)
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                yield from walk(v, key)
        else:
            yield key, str(node)

    for key, value in walk(raw):
        if any(word in key.upper() for word in SECRET_WORDS):
            assert value.startswith("${") or value.startswith("$${"), (key, value)
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", code))  # $${X}: the container's own
    assert referenced <= set(example), referenced - set(example)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
