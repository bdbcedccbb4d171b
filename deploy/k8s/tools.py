"""The tools and schemas deploy/k8s is checked with, fetched from package registries into a cache, pinned.

    python deploy/k8s/tools.py            # fetch what is missing (quick when cached), print the cache folder
    python deploy/k8s/tools.py --force    # fetch everything again

Nothing here is committed: every file comes from a registry a fresh CI machine reaches (the Go module proxy,
Maven Central, PyPI), at a pinned version, and every download is checked against the sha256 pinned below.

- kustomize: `go install sigs.k8s.io/kustomize/kustomize/v5@<version>` with GOBIN in the cache (the go command
  checks each module against the Go checksum database).
- Flink Kubernetes Operator: the CRD that fabric8's crd-generator writes into the
  org.apache.flink:flink-kubernetes-operator-api jar (META-INF/fabric8/...). Maven Central serves that jar only
  up to 1.10.0 here, whose flinkVersion enum ends at v1_20: the schema is taken from it with that one enum
  replaced by the one of the operator the manifests target (FLINK_OPERATOR_FLINK_VERSIONS, below).
- Strimzi: Strimzi's build generates its CRDs from the io.strimzi:api classes with io.strimzi:crd-generator
  (api's pom, execution generate-crd-co-install-v1); both are on Maven Central, so the CRDs are generated here
  the same way, with the same arguments. The generator needs Java 21 or newer.
- CloudNativePG: config/crd/bases/postgresql.cnpg.io_clusters.yaml from the module zip the Go module proxy serves.
- Kubernetes' own kinds: the JSON schemas (strict: unknown fields refused) inside the kubernetes-validate wheel
  on PyPI, downloaded with pip --require-hashes.

Each CRD's openAPIV3Schema of the served version ends up as <cache>/schemas/<Kind>.json, Kubernetes' kinds as
<cache>/schemas/core/<kind>-<group>-<version>.json with their _definitions.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import yaml

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.8.2"  # v5.8.3 needs Go 1.27; this machine and CI have Go 1.26

MAVEN = os.environ.get("STREAMPULSE_MAVEN_REPO", "https://repo1.maven.org/maven2").rstrip("/")
GOPROXY = "https://proxy.golang.org"

# The operator the manifests target (deploy/k8s/README.md) and the Flink versions its CRD accepts
# (FlinkVersion in its release-1.15.0 tag: v1_13 .. v2_2 in the CRD it ships).
FLINK_OPERATOR_VERSION = "1.15.0"
FLINK_OPERATOR_FLINK_VERSIONS = ["v1_13", "v1_14", "v1_15", "v1_16", "v1_17", "v1_18", "v1_19", "v1_20",
                                 "v2_0", "v2_1", "v2_2"]
# The newest operator API jar Maven Central serves here (1.11 and later answer 404).
FLINK_OPERATOR_API = ("org.apache.flink", "flink-kubernetes-operator-api", "1.10.0",
                      "b1f44814e17514fa8395c61b329a3ee9087123a5bda5b21fe1a495d5182c30b6")
FLINK_CRD_ENTRY = "META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"

STRIMZI_VERSION = "1.2.0"
# io.strimzi:api and io.strimzi:crd-generator with their runtime dependencies, as Maven resolves them.
STRIMZI_JARS = [
    ("io.strimzi", "api", "1.2.0",
     "566961ae5e5646a001ae91312beda5cba3a5d467e740e205e1b761754335fe4e"),
    ("io.strimzi", "crd-generator", "1.2.0",
     "76bb2430e702a1e6a24c071d26c865d5e9572cbc630d176d3b912033ae23ed00"),
    ("io.strimzi", "crd-annotations", "1.2.0",
     "00963443b04dbb28397f56798adbe97be0a37686a2e6884e69e54117657208a9"),
    ("io.fabric8", "kubernetes-client-api", "7.8.0",
     "4f5bbef3af774a1b3af66a38a7945fe4a1e8ec480623373f7c4924882bce590a"),
    ("io.fabric8", "kubernetes-model-resource", "7.8.0",
     "39e273d603170460bd50379c8108e7deb17fbd63f6f5e186ecb5a626e2dff596"),
    ("io.fabric8", "kubernetes-model-rbac", "7.8.0",
     "53dfbd4b19b70ef45e732cd31ed03b1af0f098298e18c9abce9dffe796f4bc9e"),
    ("io.fabric8", "kubernetes-model-admissionregistration", "7.8.0",
     "d30cf17a70676425fbed71d79012824e2136bb98c4c61ead5130ec381351a7c2"),
    ("io.fabric8", "kubernetes-model-apps", "7.8.0",
     "4333e22bc8df4afdedf8a3d828dc566a2d36a58a4aeff85bc253361cb6e21000"),
    ("io.fabric8", "kubernetes-model-autoscaling", "7.8.0",
     "3363b5e84aab09df81fa9e55642800ea5a87df8c3efb5947dc6ff00ae9773873"),
    ("io.fabric8", "kubernetes-model-apiextensions", "7.8.0",
     "0c6e3a2b1852f93574b30ecf860cd5d5ea4c76c9a02ab805bc5770ef11ad80d1"),
    ("io.fabric8", "kubernetes-model-batch", "7.8.0",
     "533aa3d50b13de336a80ff8ec2c9fcba785b6e87e0158528db55461f5c44c134"),
    ("io.fabric8", "kubernetes-model-certificates", "7.8.0",
     "266a0bba0ff42c1d0293039f97a26450c3487de45399cbf06872a5c21608e56c"),
    ("io.fabric8", "kubernetes-model-coordination", "7.8.0",
     "9063d642b122be1e01a040572be7ed2b66178bcde12c05106efab6e990f2ce79"),
    ("io.fabric8", "kubernetes-model-discovery", "7.8.0",
     "50b0d55b99c7021c7e0bcc1173f61ddfff6298ba599abe9fcf98a18a027b6496"),
    ("io.fabric8", "kubernetes-model-events", "7.8.0",
     "9304ccea370e170f10ac6414a79e521dd3c6a4c19db19e93f08bf2abe1a3ee01"),
    ("io.fabric8", "kubernetes-model-extensions", "7.8.0",
     "44f64d7461d639d5d8a502d128f4b7a0e06afda5418b8692da3cd941ff6bc495"),
    ("io.fabric8", "kubernetes-model-flowcontrol", "7.8.0",
     "7e6da9792f58b5c28bbbae56c828ad4d94f5b4e9957e3cd1a79d835bd0a3c705"),
    ("io.fabric8", "kubernetes-model-metrics", "7.8.0",
     "b9956add4b7a2d59d662d5770b310945c5c934e1bf5b70abe937d2e126bedc7e"),
    ("io.fabric8", "kubernetes-model-policy", "7.8.0",
     "ad4a5dd0e36f07fcd65876d3c27917253ef01667341f650c0b96aedc0f3af781"),
    ("io.fabric8", "kubernetes-model-scheduling", "7.8.0",
     "1f638e1c566bea7c1ca55424bdd65578bb9537a443e1ae07b5dc0a32e47af8dc"),
    ("io.fabric8", "kubernetes-model-storageclass", "7.8.0",
     "24b04fe918dc92810059c542cea7330fdc8a3a8536580afc42648e57f66a7403"),
    ("io.fabric8", "kubernetes-model-node", "7.8.0",
     "b12535e117a1bca025148b6e459b5b1e100e09d12e83256100aa2dcbcfab1b79"),
    ("io.fabric8", "kubernetes-model-core", "7.8.0",
     "59a252e065c8014d017845f47c9856263a4b99556743638e8b5f65f33b5a4843"),
    ("io.fabric8", "kubernetes-model-networking", "7.8.0",
     "dfb1f65bc647832b5a9da7420aeedda16695418cfe969cb16ac1622e85549c02"),
    ("io.fabric8", "kubernetes-model-common", "7.8.0",
     "dac81405663f854ae8363f964d94586e7be78993a04d930f13e445e32dbcd044"),
    ("io.fabric8", "kubernetes-model-gatewayapi", "7.8.0",
     "a6094843d3e05ef8a1b0ecc9ac31469bea488276107a6d39455a0216bba29d43"),
    ("org.slf4j", "slf4j-api", "2.0.18",
     "44508fd1576500688c790b190acdd16fec4f8c79a3e0b900afd70503cf055f55"),
    ("org.snakeyaml", "snakeyaml-engine", "3.0.1",
     "0b638c8806112215e02e58e95cbd9e9a69d4bd540991f47553d053919994cc94"),
    ("org.yaml", "snakeyaml", "2.5",
     "e6682acf1ace77508ef13649cbf4f8d09d2cf5457bdb61d25ffb6ac0233d78dd"),
    ("com.fasterxml.jackson.core", "jackson-annotations", "2.22",
     "21ddb598807d3a51a876704eb979d9296e1c6a6f47ab1826ff88c6d6a127a2d0"),
    ("com.fasterxml.jackson.core", "jackson-core", "2.21.4",
     "4b40a06396f239f8de2da57419adde6e94e5edc18a2171d471ea05eeed4e5c2d"),
    ("com.fasterxml.jackson.core", "jackson-databind", "2.22.1",
     "7dcd7e53bec1f56c7ad278bd1ca0840bebcc595d61ce44d6a8439abb75b965b2"),
    ("com.fasterxml.jackson.dataformat", "jackson-dataformat-yaml", "2.22.1",
     "cc3a0e540791a9a1cbcd7584767b84572ffda0b72823856558f47dea69ae8ed1"),
    ("com.fasterxml.jackson.datatype", "jackson-datatype-jsr310", "2.21.4",
     "d1ac4b98b70304e56448423589fde5e775b100889643ad1ead62cc7811633684"),
    ("org.apache.logging.log4j", "log4j-api", "2.25.5",
     "64777f73ea0b3104c04eb82befbdccc30a425a19e83ad06cb2f93aa303511863"),
    ("org.apache.logging.log4j", "log4j-core", "2.25.5",
     "050c4f85deb48b055e9c041ac39043fbb79ce477841a11a1eb2969c86c6a0072"),
    ("org.apache.logging.log4j", "log4j-slf4j2-impl", "2.25.5",
     "8cab16dd6fc4c8f14c1c473022cb217512f2bbb2d59a70f8ec90a268d64d8831"),
]
# Kind → the API model class Strimzi's generator reads (the arguments of api's pom, generate-crd-co-install-v1).
STRIMZI_KINDS = {
    "Kafka": "io.strimzi.api.kafka.model.kafka.Kafka",
    "KafkaNodePool": "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "KafkaTopic": "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "KafkaUser": "io.strimzi.api.kafka.model.user.KafkaUser",
}
STRIMZI_GENERATOR_ARGS = ["--label", "app:strimzi", "--label", "strimzi.io/crd-install:true", "--target-kube", "1.16+",
                          "--crd-api-version", "v1", "--api-versions", "v1", "--storage-version", "v1", "--yaml"]

CNPG_MODULE = "github.com/cloudnative-pg/cloudnative-pg"
CNPG_VERSION = "v1.30.1"
CNPG_ZIP_SHA256 = "bfcdf495ee2c31ac35a5b49dd7c442d5e50a300c56157f1df8c9b7b1c57674d9"
CNPG_CRD = "config/crd/bases/postgresql.cnpg.io_clusters.yaml"

KUBERNETES_VALIDATE = ("kubernetes-validate", "1.37.0",
                       "85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9")
KUBERNETES_VERSION = "v1.34.0"  # the schema set used from the wheel (strict: unknown fields are errors)
CORE_KINDS = ["deployment-apps-v1", "statefulset-apps-v1", "service-v1", "job-batch-v1", "secret-v1",
              "configmap-v1", "persistentvolumeclaim-v1", "serviceaccount-v1", "role-rbac-v1",
              "rolebinding-rbac-v1", "namespace-v1"]

STAMP = "fetched.json"  # written last: a cache folder without it is fetched again


class FetchError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[k8s-tools] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """<stack.cache_dir>/k8s (~/.cache/streampulse/k8s by default), or STREAMPULSE_K8S_CACHE."""
    if os.environ.get("STREAMPULSE_K8S_CACHE"):
        return Path(os.environ["STREAMPULSE_K8S_CACHE"]).expanduser().resolve()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from shared.settings import load_settings

    return load_settings(with_credentials=False).stack.cache_path / "k8s"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, sha256: str, dest: Path) -> Path:
    """`url` into `dest` unless it is there with the pinned sha256; fails naming the URL."""
    if dest.exists() and _sha256(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    say(f"downloading {url}")
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, part.open("wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise FetchError(f"download failed: {url}: {exc}") from exc
    actual = _sha256(part)
    if actual != sha256:
        part.unlink()
        raise FetchError(f"sha256 mismatch for {url}: expected {sha256}, got {actual}")
    part.rename(dest)
    return dest


def maven_url(group: str, artifact: str, version: str) -> str:
    return f"{MAVEN}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"


def _crd_schema(crd: dict, version: str | None = None) -> dict:
    """The openAPIV3Schema of `version` (default: the storage version) of a CustomResourceDefinition."""
    versions = crd["spec"]["versions"]
    chosen = next(v for v in versions if (v["name"] == version if version else v.get("storage")))
    schema = chosen["schema"]["openAPIV3Schema"]
    group = crd["spec"]["group"]
    return {"apiVersion": f"{group}/{chosen['name']}", "kind": crd["spec"]["names"]["kind"], "schema": schema}


def _write_schema(dest: Path, entry: dict, source: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(entry | {"source": source}, indent=1, sort_keys=True))


def kustomize(cache: Path, force: bool = False) -> Path:
    binary = cache / "bin" / "kustomize"
    if binary.exists() and not force:
        result = subprocess.run([str(binary), "version"], capture_output=True, text=True)
        if result.returncode == 0 and KUSTOMIZE_VERSION in result.stdout:
            return binary
    if shutil.which("go") is None:
        raise FetchError("`go` is not installed: kustomize is built with go install (apt-get install golang-go)")
    say(f"go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION} (GOBIN={binary.parent})")
    env = os.environ | {"GOBIN": str(binary.parent), "GOFLAGS": "-modcacherw"}
    result = subprocess.run(["go", "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"], capture_output=True,
                            text=True, env=env, cwd=tempfile.gettempdir())
    if result.returncode != 0:
        raise FetchError(f"go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION} failed (through {GOPROXY} or "
                         f"$GOPROXY):\n{result.stderr[-3000:]}")
    return binary


def flink_operator_schema(cache: Path) -> None:
    group, artifact, version, sha = FLINK_OPERATOR_API
    url = maven_url(group, artifact, version)
    jar = download(url, sha, cache / "downloads" / f"{artifact}-{version}.jar")
    with zipfile.ZipFile(jar) as z:
        crd = yaml.safe_load(z.read(FLINK_CRD_ENTRY))
    entry = _crd_schema(crd, "v1beta1")
    flink_version = entry["schema"]["properties"]["spec"]["properties"]["flinkVersion"]
    flink_version["enum"] = FLINK_OPERATOR_FLINK_VERSIONS
    _write_schema(cache / "schemas" / "FlinkDeployment.json", entry,
                  f"{url}!{FLINK_CRD_ENTRY} (flinkVersion enum of operator {FLINK_OPERATOR_VERSION})")


def find_java(minimum: int = 21) -> str:
    """A java of at least `minimum`: $STREAMPULSE_K8S_JAVA, $JAVA_HOME, PATH, then /usr/lib/jvm/*."""
    candidates = [os.environ.get("STREAMPULSE_K8S_JAVA", "")]
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    candidates.append(shutil.which("java") or "")
    candidates += [str(p) for p in sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)]
    seen = []
    for java in filter(None, candidates):
        if not os.access(java, os.X_OK) or java in seen:
            continue
        seen.append(java)
        result = subprocess.run([java, "-version"], capture_output=True, text=True)
        match = re.search(r'version "(\d+)', result.stderr)
        if match and int(match.group(1)) >= minimum:
            return java
    raise FetchError(f"Strimzi's CRD generator needs Java {minimum} or newer; none found among {seen or 'none'} "
                     "(set STREAMPULSE_K8S_JAVA to one)")


def strimzi_schemas(cache: Path) -> None:
    jars = cache / "downloads" / f"strimzi-{STRIMZI_VERSION}"
    for group, artifact, version, sha in STRIMZI_JARS:
        download(maven_url(group, artifact, version), sha, jars / f"{artifact}-{version}.jar")
    java = find_java()
    out = cache / "downloads" / f"strimzi-{STRIMZI_VERSION}-crds"
    out.mkdir(parents=True, exist_ok=True)
    say(f"generating Strimzi {STRIMZI_VERSION} CRDs with io.strimzi:crd-generator ({java})")
    targets = [f"{cls}={out / (kind + '.yaml')}" for kind, cls in STRIMZI_KINDS.items()]
    result = subprocess.run([java, "-cp", str(jars / "*"), "io.strimzi.crdgenerator.CrdGenerator",
                             *STRIMZI_GENERATOR_ARGS, *targets], capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"Strimzi's CrdGenerator failed:\n{(result.stdout + result.stderr)[-3000:]}")
    for kind in STRIMZI_KINDS:
        crd = yaml.safe_load((out / f"{kind}.yaml").read_text())
        _write_schema(cache / "schemas" / f"{kind}.json", _crd_schema(crd),
                      f"generated by io.strimzi:crd-generator:{STRIMZI_VERSION} from io.strimzi:api:{STRIMZI_VERSION}")


def cnpg_schema(cache: Path) -> None:
    url = f"{GOPROXY}/{CNPG_MODULE}/@v/{CNPG_VERSION}.zip"
    archive = download(url, CNPG_ZIP_SHA256, cache / "downloads" / f"cloudnative-pg-{CNPG_VERSION}.zip")
    with zipfile.ZipFile(archive) as z:
        crd = yaml.safe_load(z.read(f"{CNPG_MODULE}@{CNPG_VERSION}/{CNPG_CRD}"))
    _write_schema(cache / "schemas" / "Cluster.json", _crd_schema(crd, "v1"), f"{url}!{CNPG_CRD}")
    archive.unlink()  # 14 MB, of which one file is used; the stamp keeps it from being fetched again


def core_schemas(cache: Path) -> None:
    name, version, sha = KUBERNETES_VALIDATE
    wheels = cache / "downloads" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    requirement = wheels / "requirements.txt"
    requirement.write_text(f"{name}=={version} --hash=sha256:{sha}\n")
    say(f"pip download {name}=={version} (--require-hashes)")
    result = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes",
                             "--only-binary=:all:", "-r", str(requirement), "-d", str(wheels)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"pip download {name}=={version} from PyPI failed:\n{result.stdout}{result.stderr}")
    wheel = next(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    prefix = f"kubernetes_validate/kubernetes-json-schema/{KUBERNETES_VERSION}-local-strict/"
    dest = cache / "schemas" / "core"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for kind in [*CORE_KINDS, "_definitions"]:
            (dest / f"{kind}.json").write_bytes(z.read(f"{prefix}{kind}.json"))
    (dest / "source.txt").write_text(f"{name}=={version} (PyPI, sha256 {sha}): {prefix}\n")
    wheel.unlink()


def fetch(force: bool = False) -> Path:
    """Everything into the cache folder (idempotent; a second call only checks kustomize's version)."""
    cache = cache_dir()
    kustomize(cache, force)
    stamp = cache / "schemas" / STAMP
    pins = {"kustomize": KUSTOMIZE_VERSION, "flink-operator-api": FLINK_OPERATOR_API[2],
            "flink-operator": FLINK_OPERATOR_VERSION, "flink-versions": FLINK_OPERATOR_FLINK_VERSIONS,
            "strimzi": STRIMZI_VERSION, "strimzi-jars": [j[3] for j in STRIMZI_JARS], "cnpg": CNPG_VERSION,
            "kubernetes-validate": KUBERNETES_VALIDATE[1], "kubernetes": KUBERNETES_VERSION, "core": CORE_KINDS}
    if not force and stamp.exists() and json.loads(stamp.read_text()) == pins:
        return cache
    stamp.unlink(missing_ok=True)
    flink_operator_schema(cache)
    strimzi_schemas(cache)
    cnpg_schema(cache)
    core_schemas(cache)
    stamp.write_text(json.dumps(pins, indent=1))
    say(f"schemas ready in {cache / 'schemas'}")
    return cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="fetch everything again")
    args = parser.parse_args()
    try:
        print(fetch(args.force))
    except FetchError as exc:
        say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
