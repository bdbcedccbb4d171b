"""deploy/k8s: the kustomize base and the local overlay render with the real kustomize, every document is valid
against its operator's published CRD schema or Kubernetes' own schema, and the manifests agree with the project
(jobs, topics, ACLs, settings, flink-conf, the image). The tools and schemas come from package registries,
pinned, into the cache (deploy/k8s/tools.py); no cluster is needed."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import referencing
import referencing.jsonschema
import yaml

from shared.names import JOB_TOPICS, PRODUCER_TOPICS
from shared.settings import PROJECT_ROOT, load_settings

K8S = PROJECT_ROOT / "deploy" / "k8s"
OVERLAYS = {"base": K8S / "base", "local": K8S / "overlays" / "local"}
CRD_KINDS = {"FlinkDeployment", "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster"}
CORE_KINDS = {("apps/v1", "Deployment"): "deployment-apps-v1", ("apps/v1", "StatefulSet"): "statefulset-apps-v1",
              ("v1", "Service"): "service-v1", ("batch/v1", "Job"): "job-batch-v1", ("v1", "Secret"): "secret-v1",
              ("v1", "ConfigMap"): "configmap-v1", ("v1", "PersistentVolumeClaim"): "persistentvolumeclaim-v1",
              ("v1", "ServiceAccount"): "serviceaccount-v1", ("rbac.authorization.k8s.io/v1", "Role"): "role-rbac-v1",
              ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebinding-rbac-v1",
              ("v1", "Namespace"): "namespace-v1"}


def _load_tools():
    spec = importlib.util.spec_from_file_location("streampulse_k8s_tools", K8S / "tools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tools = _load_tools()


@pytest.fixture(scope="module")
def k8s_cache() -> Path:
    try:
        return tools.fetch()
    except tools.FetchError as exc:
        pytest.fail(f"fetching kustomize and the schemas failed: {exc}")


@pytest.fixture(scope="module")
def rendered(k8s_cache) -> dict[str, list[dict]]:
    out = {}
    for name, folder in OVERLAYS.items():
        result = subprocess.run([str(k8s_cache / "bin" / "kustomize"), "build", str(folder)], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"kustomize build {folder} failed:\n{result.stderr}"
        out[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def _closed(schema):
    """A CRD schema in which an object with `properties` accepts no other field, unless it says it keeps unknown
    fields: the API server prunes such a field silently (structural schemas), so here it is an error."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


class Validator:
    """Each document against its kind's schema: the CRDs' openAPIV3Schema (OpenAPI 3.0, JSON Schema draft 4
    keywords; fields the API server would prune are errors) and Kubernetes' strict JSON schemas (draft 2020-12,
    unknown fields refused)."""

    def __init__(self, cache_dir: Path):
        self.schemas = cache_dir / "schemas"
        core = self.schemas / "core"
        definitions = json.loads((core / "_definitions.json").read_text())
        self.registry = referencing.Registry().with_resource(
            definitions["$id"], referencing.Resource.from_contents(definitions))
        self._core = {key: json.loads((core / f"{name}.json").read_text()) for key, name in CORE_KINDS.items()}
        self._crds = {kind: json.loads((self.schemas / f"{kind}.json").read_text()) for kind in CRD_KINDS}
        for crd in self._crds.values():
            # The API server's own fields at the top are in no CRD's schema.
            crd["schema"] = _closed(crd["schema"]) | {"additionalProperties": False}
            crd["schema"]["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                           "metadata": {"type": "object"}} | crd["schema"]["properties"]

    def errors(self, doc: dict) -> list[str]:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        where = f"{kind}/{doc.get('metadata', {}).get('name')}"
        if kind in self._crds:
            crd = self._crds[kind]
            if api != crd["apiVersion"]:
                return [f"{where}: apiVersion {api}, the CRD serves {crd['apiVersion']}"]
            validator = jsonschema.Draft4Validator(crd["schema"])
        elif (api, kind) in self._core:
            validator = jsonschema.Draft202012Validator(self._core[api, kind], registry=self.registry)
        else:
            return [f"{where}: no schema for {api} {kind}"]
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


@pytest.fixture(scope="module")
def validator(k8s_cache) -> Validator:
    return Validator(k8s_cache)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _walk(node, key: str):
    """Every value under `key` anywhere in a nest of dicts and lists."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_rendered_document_is_valid_against_its_schema(rendered, validator, overlay):
    docs = rendered[overlay]
    assert {d["kind"] for d in docs} >= CRD_KINDS
    errors = [error for doc in docs for error in validator.errors(doc)]
    assert not errors, "\n".join(errors)
    for doc in docs:
        assert doc["metadata"]["name"], doc


def test_the_validator_refuses_broken_documents(rendered, validator):
    docs = rendered["local"]
    flink = copy.deepcopy(by_kind(docs, "FlinkDeployment")["trending"])
    flink["spec"]["job"]["upgradeMode"] = "sometimes"
    assert any("upgradeMode" in e and "sometimes" in e for e in validator.errors(flink))
    flink = copy.deepcopy(by_kind(docs, "FlinkDeployment")["trending"])
    flink["spec"]["flinkVersion"] = "v3_0"
    assert validator.errors(flink)
    flink = copy.deepcopy(by_kind(docs, "FlinkDeployment")["trending"])
    flink["spec"]["job"]["upgradeMod"] = flink["spec"]["job"].pop("upgradeMode")
    assert any("upgradeMod" in e for e in validator.errors(flink)), "a misspelt field is refused, not pruned"
    topic = copy.deepcopy(by_kind(docs, "KafkaTopic")["social.posts"])
    topic["spec"]["partitions"] = "4"
    assert any("partitions" in e for e in validator.errors(topic))
    user = copy.deepcopy(by_kind(docs, "KafkaUser")["streampulse-jobs"])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Juggle"]
    assert validator.errors(user)
    cluster = copy.deepcopy(by_kind(docs, "Cluster")["streampulse-pg"])
    del cluster["spec"]["instances"]
    assert validator.errors(cluster)
    deployment = copy.deepcopy(by_kind(docs, "Deployment")["streampulse-api"])
    deployment["spec"]["replicas"] = "one"
    assert validator.errors(deployment)
    deployment = copy.deepcopy(by_kind(docs, "Deployment")["streampulse-api"])
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMap": {"name": "typo"}}]
    assert validator.errors(deployment), "strict schemas refuse unknown fields"
    assert validator.errors({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
                             "metadata": {"name": "x"}, "spec": {"partitions": 1}})


def _compose_jobs() -> set[str]:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    commands = [" ".join(s["command"]) if isinstance(s.get("command"), list) else str(s.get("command", ""))
                for s in compose["services"].values()]
    return {m for c in commands for m in re.findall(r"--python jobs/(\w+)\.py", c)}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_streaming_job_has_a_flink_deployment_run_the_operator_way(rendered, overlay):
    flinks = by_kind(rendered[overlay], "FlinkDeployment")
    submitted = _compose_jobs()
    assert {"trending", "conversations"} <= submitted
    modules = {p.stem for p in (PROJECT_ROOT / "jobs").glob("*.py")
               if re.search(r"^main = job_main\(", p.read_text(), re.MULTILINE)}
    assert submitted <= modules
    assert set(flinks) == modules, f"FlinkDeployments {sorted(flinks)} != job modules {sorted(modules)}"
    flink_version = re.search(r"^apache-flink==(\d+)\.(\d+)\.(\d+)$", (PROJECT_ROOT / "constraints.txt").read_text(),
                              re.MULTILINE)
    major, minor, patch = flink_version.groups()
    dockerfile = (PROJECT_ROOT / "docker" / "streampulse.Dockerfile").read_text()
    python = re.search(r"^FROM python:(\d+\.\d+)-", dockerfile, re.MULTILINE).group(1)
    workdir = re.search(r"^WORKDIR (\S+)", dockerfile, re.MULTILINE).group(1)
    for name, flink in flinks.items():
        spec = flink["spec"]
        job = spec["job"]
        assert spec["flinkVersion"] == f"v{major}_{minor}"
        assert job["jarURI"] == (f"local:///usr/local/lib/python{python}/site-packages/pyflink/opt/"
                                 f"flink-python-{major}.{minor}.{patch}.jar")
        assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
        assert job["args"][:2] == ["-py", f"{workdir}/jobs/{name}.py"]
        assert (PROJECT_ROOT / "jobs" / f"{name}.py").is_file()
        assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
        conf = spec["flinkConfiguration"]
        # The operator's entry point in this image: the script ships with the repository the image copies.
        entry = conf["kubernetes.entry.path"]
        assert entry.startswith(workdir + "/")
        script = PROJECT_ROOT / entry.removeprefix(workdir + "/")
        assert script.is_file() and script.stat().st_mode & 0o111, f"{script} must exist and be executable"
        assert 'exec "$@"' in script.read_text()
        # Parallelism 2 over one-slot TaskManagers (two of them), matched by the job's own setting.
        assert job["parallelism"] == 2 and conf["taskmanager.numberOfTaskSlots"] == "1"
        container = spec["podTemplate"]["spec"]["containers"][0]
        assert container["name"] == "flink-main-container" and "command" not in container
        env = env_of(container)
        assert env["STREAMPULSE_FLINK__PARALLELISM"]["value"] == str(job["parallelism"])
        assert "pipeline.max-parallelism" not in conf, "the job sets it (flink.max_parallelism)"
        # Resources as flink-conf/config.yaml sizes the processes.
        flink_conf = yaml.safe_load((PROJECT_ROOT / "flink-conf" / "config.yaml").read_text())
        assert spec["jobManager"]["resource"]["memory"] == flink_conf["jobmanager"]["memory"]["process"]["size"]
        assert spec["taskManager"]["resource"]["memory"] == flink_conf["taskmanager"]["memory"]["process"]["size"]
        assert conf["env.java.opts.all"].split() == flink_conf["env"]["java"]["opts"]["all"].split()


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_flink_state_is_on_s3_and_no_secret_is_inline(rendered, overlay):
    docs = rendered[overlay]
    secret_values = {v for s in by_kind(docs, "Secret").values() for v in (s.get("data") or {}).values()}
    secret_values |= {v for s in by_kind(docs, "Secret").values() for v in (s.get("stringData") or {}).values()}
    for name, flink in by_kind(docs, "FlinkDeployment").items():
        conf = flink["spec"]["flinkConfiguration"]
        for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir",
                    "high-availability.storageDir"):
            assert conf[key].startswith(f"s3://streampulse-checkpoints/{name}/"), (name, key, conf[key])
        assert conf["high-availability.type"] == "kubernetes"
        assert conf["s3.path.style.access"] == "true" and conf["s3.endpoint"].startswith("http")
        assert not {k for k in conf if re.search(r"access-key|secret-key|password", k)}, conf
        env = env_of(flink["spec"]["podTemplate"]["spec"]["containers"][0])
        assert env["STREAMPULSE_FLINK__CHECKPOINT_DIR"]["value"] == conf["execution.checkpointing.dir"]
        for var, entry in env.items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY", var):
                assert "value" not in entry and entry["valueFrom"]["secretKeyRef"]["name"] == "streampulse-secrets"
        text = json.dumps(flink)
        for value in secret_values:
            assert value not in text
        local_kustomization = (K8S / "overlays" / "local" / "kustomization.yaml").read_text()
        for literal in re.findall(r"local-only-[\w-]+", local_kustomization):
            assert literal not in text


def test_the_overlay_sets_the_image_and_only_it_generates_secrets(rendered):
    for overlay, tag in (("base", "latest"), ("local", "local")):
        docs = rendered[overlay]
        images = [f["spec"]["image"] for f in by_kind(docs, "FlinkDeployment").values()]
        images += [c["image"] for d in docs if d["kind"] in ("Deployment", "Job")
                   for c in d["spec"]["template"]["spec"]["containers"] if c["image"].startswith("streampulse")]
        assert len(images) == 5 + 3 and set(images) == {f"streampulse:{tag}"}, images
    assert not by_kind(rendered["base"], "Secret"), "the base names Secrets; it never holds one"
    secrets = by_kind(rendered["local"], "Secret")
    assert set(secrets) == {"streampulse-secrets", "streampulse-pg-admin"}
    example = [line.split("=", 1)[0] for line in (PROJECT_ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")]
    wanted = {k for k in example if re.search(r"PASSWORD|SECRET|ACCESS_KEY", k)
              and not k.startswith(("SUPERSET", "GRAFANA", "KAFKA_BROKER"))}
    assert set(secrets["streampulse-secrets"]["data"]) == wanted
    # Every secretKeyRef anywhere names a key the Secret has.
    refs = [(ref["name"], ref["key"]) for ref in _walk(rendered["local"], "secretKeyRef")]
    assert len(refs) > 20 and all(key in secrets[name]["data"] for name, key in refs), refs


@cache
def _settings():
    return load_settings(with_credentials=False)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_topics_mirror_the_local_provisioning(rendered, overlay):
    from stack.services.kafka import retention_configs

    kafka = _settings().kafka
    topics = by_kind(rendered[overlay], "KafkaTopic")
    assert set(topics) == set(PRODUCER_TOPICS + JOB_TOPICS) == set(kafka.topics)
    replicas = 3 if overlay == "base" else 1
    for name, topic in topics.items():
        assert topic["spec"]["partitions"] == kafka.topics[name], name
        assert topic["spec"]["replicas"] == replicas
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "streampulse"
        wanted = retention_configs(kafka.retention_hours.get(name))
        assert {k: str(v) for k, v in topic["spec"]["config"].items() if k in wanted} == wanted, name
    cluster = by_kind(rendered[overlay], "Kafka")["streampulse"]
    assert cluster["spec"]["kafka"]["version"].startswith("4.")
    assert by_kind(rendered[overlay], "KafkaNodePool")["dual"]["spec"]["replicas"] == replicas
    assert cluster["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_kafka_users_and_acls_match_the_local_stack(rendered):
    """The local stack's ACLs (stack/services/kafka.py kafka_acls) without its scratch prefixes, as Strimzi ACLs."""
    from stack.services.kafka import SCRATCH_PREFIXES, kafka_acls

    kafka = _settings().kafka
    docs = rendered["local"]
    users = by_kind(docs, "KafkaUser")
    assert set(users) == {kafka.admin_user, kafka.producer_user, kafka.jobs_user, kafka.api_user}
    listener = by_kind(docs, "Kafka")["streampulse"]["spec"]["kafka"]["listeners"]
    assert [entry["authentication"]["type"] for entry in listener] == ["scram-sha-512"]
    assert by_kind(docs, "Kafka")["streampulse"]["spec"]["kafka"]["authorization"]["superUsers"] == [kafka.admin_user]
    kinds = {"TOPIC": "topic", "GROUP": "group", "CLUSTER": "cluster", "TRANSACTIONAL_ID": "transactionalId"}
    local = set()
    for acl in kafka_acls(kafka.producer_user, kafka.jobs_user, kafka.api_user):
        pattern = acl.resource_pattern
        if pattern.resource_name.startswith(SCRATCH_PREFIXES):
            continue
        operation = "".join(part.capitalize() for part in acl.operation.name.split("_"))
        name = None if pattern.resource_type.name == "CLUSTER" else pattern.resource_name
        local.add((acl.principal.removeprefix("User:"), kinds[pattern.resource_type.name], name, operation))
    deployed = set()
    for user, doc in users.items():
        assert doc["spec"]["authentication"]["type"] == "scram-sha-512"
        assert "valueFrom" in doc["spec"]["authentication"]["password"]
        for acl in doc["spec"].get("authorization", {}).get("acls", []):
            assert acl["resource"].get("patternType", "literal") == "literal"
            deployed |= {(user, acl["resource"]["type"], acl["resource"].get("name"), op) for op in acl["operations"]}
    assert deployed == local


def test_postgres_cluster_bootstraps_the_projects_database_and_provisioning_calls_real_code(rendered):
    pg = _settings().postgres
    for overlay, instances in (("base", 3), ("local", 1)):
        cluster = by_kind(rendered[overlay], "Cluster")["streampulse-pg"]
        initdb = cluster["spec"]["bootstrap"]["initdb"]
        assert cluster["spec"]["instances"] == instances
        assert (initdb["database"], initdb["owner"]) == (pg.database, pg.admin_user)
        assert f"ALTER ROLE {pg.admin_user} CREATEROLE" in initdb["postInitSQL"]
    secret = by_kind(rendered["local"], "Secret")["streampulse-pg-admin"]
    assert secret["type"] == "kubernetes.io/basic-auth"
    import base64
    assert base64.b64decode(secret["data"]["username"]).decode() == pg.admin_user
    env = by_kind(rendered["local"], "ConfigMap")["streampulse-env"]["data"]
    assert env["STREAMPULSE_POSTGRES__HOST"] == "streampulse-pg-rw"
    assert env["STREAMPULSE_KAFKA__HOST"] == "streampulse-kafka-bootstrap"
    # The provisioning Job's program: valid Python whose imports exist in the project.
    job = by_kind(rendered["local"], "Job")["streampulse-provision"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-c"]
    program = container["args"][0]
    compile(program, "provision", "exec")
    for module, names in re.findall(r"^from (\S+) import (.+)$", program, re.MULTILINE):
        imported = importlib.import_module(module)
        for name in names.split(","):
            assert hasattr(imported, name.strip()), f"{module}.{name.strip()}"
    # The settings the ConfigMap and the Job set are keys the project accepts.
    for key in [*env, *env_of(container)]:
        section, _, field = key.removeprefix("STREAMPULSE_").lower().partition("__")
        assert hasattr(getattr(_settings(), section), field), key


def _pip_installs(text: str) -> list[list[str]]:
    commands = []
    for line in re.split(r"&&|\n(?!\s)", text.replace("\\\n", " ")):
        words = shlex.split(line.strip().removeprefix("RUN ").replace("$(BIN)/", "").replace("@", ""),
                            comments=False) if "pip install" in line else []
        if words:
            commands.append(words[words.index("pip"):])
    return commands


def test_the_image_installs_the_project_the_way_the_makefile_does():
    dockerfile = (PROJECT_ROOT / "docker" / "streampulse.Dockerfile").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    image = [c for c in _pip_installs(dockerfile) if "-c" in c]
    setup = [c for c in _pip_installs(makefile) if "-c" in c]
    assert image and setup, (image, setup)
    # The same constraints file, and the project itself (its pyproject.toml metadata), in both.
    for command in image + setup:
        assert command[command.index("-c") + 1] == "constraints.txt", command
    assert any(c[-1] == "." for c in image), image
    assert any(c[-1] == ".[dev]" for c in setup), setup
    assert re.search(r"^COPY pyproject\.toml constraints\.txt README\.md \./$", dockerfile, re.MULTILINE)
    assert re.search(r"^COPY \. \.$", dockerfile, re.MULTILINE), "the image holds the repository (jobs, deploy/k8s)"
    # The same jars: `streampulse jars fetch`, as `make setup` runs it.
    assert "streampulse jars fetch" in dockerfile and "$(SP) jars fetch" in makefile
    # Nothing the FlinkDeployments rely on is excluded from the build context.
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert not {"deploy", "deploy/", "jobs", "jobs/", "flink-conf"} & set(ignored)


def test_fetching_again_is_quick_and_verifies_pins(k8s_cache, tmp_path):
    import time

    start = time.monotonic()
    assert tools.fetch() == k8s_cache
    assert time.monotonic() - start < 5, "a warm cache must not download or build again"
    stamp = json.loads((k8s_cache / "schemas" / tools.STAMP).read_text())
    assert stamp["kustomize"] == tools.KUSTOMIZE_VERSION and stamp["strimzi"] == tools.STRIMZI_VERSION
    with pytest.raises(tools.FetchError, match=r"sha256 mismatch for file://"):
        source = tmp_path / "artifact.jar"
        source.write_bytes(b"not the pinned bytes")
        tools.download(source.as_uri(), "0" * 64, tmp_path / "out.jar")
    assert not (tmp_path / "out.jar").exists()
    with pytest.raises(tools.FetchError, match=r"download failed: file://"):
        tools.download((tmp_path / "missing.jar").as_uri(), "0" * 64, tmp_path / "out.jar")


def test_every_streampulse_variable_is_a_setting_the_project_accepts(rendered):
    docs = rendered["local"]
    containers = [c for d in docs if d["kind"] in ("Deployment", "Job", "StatefulSet")
                  for c in d["spec"]["template"]["spec"]["containers"]]
    containers += [f["spec"]["podTemplate"]["spec"]["containers"][0] for f in by_kind(docs, "FlinkDeployment").values()]
    keys = {k for c in containers for k in env_of(c)} | set(by_kind(docs, "ConfigMap")["streampulse-env"]["data"])
    keys = {k for k in keys if k.startswith("STREAMPULSE_")}
    assert len(keys) > 15
    for key in keys:
        section, _, field = key.removeprefix("STREAMPULSE_").lower().partition("__")
        assert field in type(getattr(_settings(), section)).model_fields, key
