"""The offline checks of deploy/ that need Python; `deploy/check` runs them.

    python check.py static --out DIR   Kubernetes manifests, the TOML inside them and in
                                       deploy/config/, the Dockerfile and its ignore file;
                                       writes DIR/build-command, context-paths,
                                       entrypoint and probe for deploy/check
    python check.py tomls FILE...      TOML files a node wrote (`lienthong dev`): node.toml,
                                       directory.toml, client profiles

Manifests are validated with kubernetes-validate (its bundled schemas: no cluster, no
network) in strict mode, where an unknown field is an error, and a kind it has no schema
for is an error too (its command line only warns). The node has no mode that only
parses a configuration, so TOML is read with tomllib and checked against the structs the
node deserializes, read from the Rust sources themselves (field names, which are
required, and their types), so the check follows the code. Exits 1 with one line per
problem.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from kubernetes_validate import utils as kv

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# The versions the manifests must be valid for: an old one still widely run, and the
# newest kubernetes-validate (pinned in requirements.txt) knows.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
# The build command of the image, the same one CI runs outside a container.
BUILD_COMMAND = "cargo build --release -p lienthong-cli --locked"
# The one health check of the node, in the Dockerfile and in every probe (why: the
# comments at the probes in deploy/kubernetes/20-h41.yaml). `deploy/check` runs it against
# a live node and a stopped one.
OPERATOR_PROFILE = "/etc/lienthong/operator.toml"
PROBE = ["/bin/sh", "-c", f"lienthong admin health -p {OPERATOR_PROFILE} | grep -q '^node '"]

# The structs a node deserializes from TOML, by source file.
RUST_STRUCTS = {
    "crates/lienthong-node/src/config.rs": [
        "NodeConfig", "NetworkConfig", "TlsConfig", "AgencyConfig", "Limits", "DeliveryConfig",
    ],
    "crates/lienthong-vxp/src/gateway/config.rs": ["GatewayConfig", "SystemConfig"],
    "crates/lienthong-client/src/profile.rs": ["ClientProfile"],
    "crates/lienthong-node/src/directory.rs": ["DirectorySource", "NodeSource", "AgencySource"],
}

problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}" if where else what)


# ---- the node's TOML structs, read from the Rust sources ---------------------------------

STRUCT_RE = re.compile(
    r"((?:[ \t]*(?:#\[[^\n]*\]|///[^\n]*)\n)*)pub struct (\w+) \{\n(.*?)\n\}", re.S
)
FIELD_RE = re.compile(r"pub (\w+): (.+),$")


def serde_args(attribute_lines: list[str]) -> list[str]:
    args = []
    for line in attribute_lines:
        m = re.fullmatch(r"#\[serde\((.*)\)\]", line)
        if m:
            # default = "f", skip_serializing_if = "…": split on commas outside quotes
            args += [a.strip() for a in re.findall(r'(?:[^,"]|"[^"]*")+', m.group(1))]
    return args


def load_structs() -> dict[str, dict[str, tuple[str, bool]]]:
    """{struct: {field: (rust type, required)}}"""
    structs: dict[str, dict[str, tuple[str, bool]]] = {}
    for source, names in RUST_STRUCTS.items():
        text = (ROOT / source).read_text()
        found = {}
        for m in STRUCT_RE.finditer(text):
            attrs = [l.strip() for l in m.group(1).splitlines() if l.strip().startswith("#[")]
            found[m.group(2)] = (attrs, m.group(3))
        for name in names:
            if name not in found:
                problem(source, f"no `pub struct {name}`: update RUST_STRUCTS in deploy/check.py")
                continue
            attrs, body = found[name]
            struct_args = serde_args(attrs)
            all_default = "default" in struct_args
            fields: dict[str, tuple[str, bool]] = {}
            pending: list[str] = []
            for raw in body.splitlines():
                line = raw.strip()
                if not line or line.startswith("//"):
                    continue
                if line.startswith("#["):
                    pending.append(line)
                    continue
                fm = FIELD_RE.fullmatch(line)
                if not fm:
                    problem(source, f"struct {name}: cannot read the line {line!r}")
                    continue
                args = serde_args(pending)
                for a in args:
                    key = a.split("=")[0].strip()
                    if key not in ("default", "skip_serializing_if"):
                        problem(source, f"{name}.{fm.group(1)}: serde({a}) is not understood by deploy/check.py")
                has_default = any(a.split("=")[0].strip() == "default" for a in args)
                rust_type = fm.group(2).replace(" ", "")
                optional = all_default or has_default or rust_type.startswith("Option<")
                fields[fm.group(1)] = (rust_type, not optional)
                pending = []
            structs[name] = fields
    return structs


INTEGERS = {
    "u8": (0, 2**8 - 1), "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1), "usize": (0, 2**64 - 1), "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
}


def check_value(structs, value, rust_type: str, where: str) -> None:
    rust_type = re.sub(r"^(\w+::)+", "", rust_type)  # lienthong_vxp::GatewayConfig
    generic = re.fullmatch(r"(\w+)<(.*)>", rust_type)
    if generic:
        outer, inner = generic.groups()
        if outer == "Option":
            check_value(structs, value, inner, where)
        elif outer == "Vec":
            if not isinstance(value, list):
                return problem(where, f"must be an array ({rust_type})")
            for i, item in enumerate(value):
                check_value(structs, item, inner, f"{where}[{i}]")
        elif outer in ("BTreeMap", "HashMap") and inner.startswith("String,"):
            if not isinstance(value, dict):
                return problem(where, f"must be a table ({rust_type})")
            for k, v in value.items():
                check_value(structs, v, inner[len("String,"):], f"{where}.{k!r}")
        else:
            problem(where, f"the type {rust_type} is not known to deploy/check.py")
    elif rust_type in ("String", "PathBuf"):
        if not isinstance(value, str) or (rust_type == "PathBuf" and not value):
            problem(where, f"must be a string ({rust_type})")
    elif rust_type == "SocketAddr":
        m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d+)", value if isinstance(value, str) else "")
        try:
            ipaddress.ip_address(m.group(1) or m.group(2))
            if int(m.group(3)) > 65535:
                raise ValueError
        except (AttributeError, ValueError):
            problem(where, f"{value!r} is not an address and port such as \"0.0.0.0:7443\"")
    elif rust_type in INTEGERS:
        lo, hi = INTEGERS[rust_type]
        if type(value) is not int or not lo <= value <= hi:
            problem(where, f"{value!r} is not a {rust_type}")
    elif rust_type == "bool":
        if type(value) is not bool:
            problem(where, f"{value!r} is not true or false")
    elif rust_type in structs:
        check_struct(structs, value, rust_type, where)
    else:
        problem(where, f"the type {rust_type} is not known to deploy/check.py")


def check_struct(structs, value, name: str, where: str) -> None:
    if not isinstance(value, dict):
        return problem(where, f"must be a table ({name})")
    fields = structs[name]
    for key, item in value.items():
        if key not in fields:
            problem(where, f"unknown field {key!r} ({name} has {', '.join(fields)}); the node refuses it")
        else:
            check_value(structs, item, fields[key][0], f"{where}.{key}" if where else key)
    for key, (_, required) in fields.items():
        if required and key not in value:
            problem(where, f"missing required field {key!r} of {name}")


def check_toml(structs, text: str, struct: str, where: str):
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problem(where, f"not TOML: {e}")
        return None
    before = len(problems)
    check_struct(structs, parsed, struct, "")
    problems[before:] = [f"{where}: {p}" for p in problems[before:]]
    return parsed


def toml_kind(name: str) -> str | None:
    """The struct a TOML file of this name holds."""
    if name == "node.toml":
        return "NodeConfig"
    if name == "directory.toml":
        return "DirectorySource"
    if name.startswith("secrets") or name.endswith(".secret"):
        return None  # the VXP gateway's secrets: "<system id>" = "<secret>"
    return "ClientProfile"  # operator.toml, vxp-<agency>.toml, the profiles dev writes


# ---- Kubernetes --------------------------------------------------------------------------

def validate_schema(resource: dict, where: str) -> None:
    for version in KUBERNETES_VERSIONS:
        try:
            kv.validate(resource, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problem(where, f"invalid for Kubernetes {e.version}: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            problem(where, e.message)
        except kv.VersionNotSupportedError as e:
            problem(where, f"kubernetes-validate has no schemas for Kubernetes {e.version}")
        except Exception as e:  # the tool itself failing is a failure, not a pass
            problem(where, f"kubernetes-validate failed: {type(e).__name__}: {e}")


def load_manifests() -> list[tuple[str, dict]]:
    resources = []
    files = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    if not files:
        problem("deploy/kubernetes", "no manifests")
    for f in files:
        rel = f.relative_to(ROOT)
        try:
            docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        except yaml.YAMLError as e:
            problem(str(rel), f"not YAML: {e}")
            continue
        for d in docs:
            if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
                problem(str(rel), "a document without apiVersion and kind")
                continue
            name = d.get("metadata", {}).get("name", "?")
            where = f"{rel}: {d['kind']}/{name}"
            validate_schema(d, where)
            resources.append((where, d))
    return resources


def under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def check_node_pod(structs, where: str, sts: dict, by_kind: dict, ns: str) -> dict | None:
    """Checks one node's StatefulSet and returns its parsed node.toml and what belongs to it."""
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    if spec.get("replicas") != 1:
        problem(where, "replicas must be 1: a node is one process on one data directory")
    if spec["selector"].get("matchLabels", {}).items() - labels.items():
        problem(where, "the selector does not select the pod template's labels")
    service = by_kind.get(("Service", spec.get("serviceName")))
    if not service or service["spec"].get("clusterIP") != "None":
        problem(where, f"serviceName {spec.get('serviceName')!r} names no headless Service")
    elif service["spec"].get("selector", {}).items() - labels.items():
        problem(where, "its headless Service does not select its pod")
    annotations = spec["template"]["metadata"].get("annotations", {})
    for key, want in [("prometheus.io/scrape", "true"), ("prometheus.io/path", "/metrics")]:
        if annotations.get(key) != want:
            problem(where, f"annotation {key} must be {want!r}")
    if not annotations.get("prometheus.io/port", "").isdigit():
        problem(where, "annotation prometheus.io/port must be a port number")
    ctx = pod.get("securityContext", {})
    if ctx.get("runAsNonRoot") is not True or not ctx.get("fsGroup"):
        problem(where, "the pod must set runAsNonRoot and an fsGroup")
    if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "the pod's seccompProfile must be RuntimeDefault")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for v in volumes.values():
        if "secret" in v and v["secret"].get("defaultMode") != 0o400:
            problem(where, f"Secret volume {v['name']} must have defaultMode 0400")
    for c in pod.get("initContainers", []) + pod["containers"]:
        cctx = c.get("securityContext", {})
        if (cctx.get("readOnlyRootFilesystem") is not True
                or cctx.get("allowPrivilegeEscalation") is not False
                or cctx.get("capabilities", {}).get("drop") != ["ALL"]):
            problem(where, f"container {c['name']}: needs readOnlyRootFilesystem, no privilege "
                           "escalation and capabilities drop [ALL]")
    node = next((c for c in pod["containers"] if c["name"] == "node"), None)
    if node is None:
        problem(where, "no container named node")
        return None
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if node.get(probe, {}).get("exec", {}).get("command") != PROBE:
            problem(where, f"{probe} must run {PROBE}")
    mounts = {m["mountPath"]: m for m in node.get("volumeMounts", [])}
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    data_mount = next((p for p, m in mounts.items() if m["name"] in claims), None)
    config_mount = next((p for p, m in mounts.items()
                         if "configMap" in volumes.get(m["name"], {})), None)
    if data_mount is None or config_mount is None:
        problem(where, "the node container must mount a volumeClaimTemplate and a ConfigMap")
        return None
    if config_mount != str(Path(OPERATOR_PROFILE).parent):
        problem(where, f"the ConfigMap must be mounted at {Path(OPERATOR_PROFILE).parent}")
    cm_name = volumes[mounts[config_mount]["name"]]["configMap"]["name"]
    cm = by_kind.get(("ConfigMap", cm_name))
    if cm is None:
        problem(where, f"no ConfigMap {cm_name} in deploy/kubernetes")
        return None
    data = cm.get("data", {})
    parsed = {}
    before = len(problems)
    for key, text in data.items():
        kind = toml_kind(key) if key.endswith(".toml") else None
        if kind:
            parsed[key] = check_toml(structs, text, kind, f"{where}: ConfigMap {cm_name} {key}")
    config = parsed.get("node.toml")
    if not config:
        problem(where, f"ConfigMap {cm_name} has no node.toml")
        return None
    if "operator.toml" not in parsed:
        problem(where, f"ConfigMap {cm_name} has no operator.toml, which the probes use")
    if len(problems) > before:
        return None  # what follows reads the configuration: fix it first

    # Every file the configuration names is where the pod has it.
    init_mounts = {m["mountPath"] for c in pod.get("initContainers", [])
                   for m in c.get("volumeMounts", [])}

    def placed(path: str, what: str) -> None:
        if under(path, config_mount):
            if str(Path(path).parent) != config_mount or Path(path).name not in data:
                problem(where, f"{what} {path}: ConfigMap {cm_name} has no key {Path(path).name}")
        elif under(path, "/run/lienthong"):
            sub = Path(path).relative_to("/run/lienthong").parts[0]
            if f"/secret/{sub}" not in init_mounts or "/run/lienthong" not in mounts:
                problem(where, f"{what} {path}: no init container copies /secret/{sub} there")
        elif not under(path, data_mount) or path == data_mount:
            problem(where, f"{what} {path} is on no volume of the pod (or is the volume's root)")

    placed(config["data_dir"], "data_dir")
    for key in ("ca", "cert", "key"):
        placed(config["tls"][key], f"tls.{key}")
    for crl in config["tls"].get("crls", []):
        placed(crl, "tls.crls")
    if config.get("network", {}).get("directory_file"):
        placed(config["network"]["directory_file"], "network.directory_file")
    ports = {p["name"]: p["containerPort"] for p in node.get("ports", [])}
    listen_port = int(config["listen"].rsplit(":", 1)[1])
    if ports.get("grpc") != listen_port:
        problem(where, f"containerPort grpc must be listen's port {listen_port}")
    operator = parsed.get("operator.toml") or {}
    url = urlsplit(operator.get("endpoint", ""))
    if (operator.get("node") != config["node_id"] or url.port != listen_port
            or url.hostname not in ("127.0.0.1", "::1", "localhost")
            or operator.get("cert") != config["tls"]["cert"]
            or operator.get("key") != config["tls"]["key"] or "agency" in operator):
        problem(where, "operator.toml must be the node's own certificate and key, at "
                       f"https://127.0.0.1:{listen_port}, for node {config['node_id']}")
    vxp = config.get("vxp")
    if vxp:
        if ports.get("vxp") != int(vxp["listen"].rsplit(":", 1)[1]):
            problem(where, "containerPort vxp must be [vxp] listen's port")
        placed(vxp["secrets_file"], "vxp.secrets_file")
        for key in ("spool_dir", "state_dir", "cert", "key"):
            if vxp.get(key):
                placed(vxp[key], f"vxp.{key}")
        for agency, profile_path in vxp["agency_profiles"].items():
            placed(profile_path, f"vxp.agency_profiles.{agency}")
            profile = parsed.get(Path(profile_path).name) or {}
            if profile.get("agency") != agency or profile.get("node") != config["node_id"]:
                problem(where, f"the custodial profile of {agency} must name agency {agency} "
                               f"and node {config['node_id']}")
            for key in ("ca", "cert", "key"):
                if key in profile:
                    placed(profile[key], f"{Path(profile_path).name} {key}")
        for system in vxp["systems"]:
            for agency in system["agencies"]:
                if agency not in vxp["agency_profiles"]:
                    problem(where, f"VXP system {system['id']} acts for {agency}, "
                                   "which has no agency_profiles entry")
    return {"config": config, "service": service, "data": data, "where": where,
            "labels": labels, "ns": ns}


def check_network(nodes: list[dict]) -> None:
    """The example is one network: the national directory lists exactly its nodes, with
    the endpoints of their Services, and every parent link matches it."""
    by_id = {n["config"]["node_id"]: n for n in nodes}
    nationals = [n for n in nodes if n["config"].get("network", {}).get("national")
                 == n["config"]["node_id"]]
    if len(nationals) != 1:
        return problem("deploy/kubernetes", "the example needs exactly one national gateway")
    national = nationals[0]
    net = national["config"]["network"]
    source = national["data"].get(Path(net.get("directory_file", "")).name)
    directory = tomllib.loads(source) if source else None
    if not directory or "parent" in net or "parent_endpoint" in net:
        return problem(national["where"], "the national gateway needs directory_file (in its "
                                          "ConfigMap) and no parent")
    listed = {n["id"]: n for n in directory.get("nodes", [])}
    if set(listed) != set(by_id):
        problem(national["where"], f"directory.toml lists nodes {sorted(listed)}, the "
                                   f"manifests run {sorted(by_id)}")
    for node_id, n in by_id.items():
        entry = listed.get(node_id)
        if entry is None:
            continue
        svc = n["service"]
        port = next((p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc"), None)
        want = f"https://{svc['metadata']['name']}.{n['ns']}.svc.cluster.local:{port}"
        if entry["endpoint"] != want:
            problem(national["where"], f"directory.toml: {node_id}'s endpoint must be {want}")
        cnet = n["config"].get("network")
        if not cnet or cnet.get("national") != national["config"]["node_id"]:
            problem(n["where"], f"network.national must be {national['config']['node_id']}")
            continue
        if n is national:
            continue
        if cnet.get("directory_file"):
            problem(n["where"], "only the national gateway has network.directory_file")
        parent = listed.get(entry.get("parent", ""))
        if cnet.get("parent") != entry.get("parent") or parent is None:
            problem(n["where"], f"network.parent must be {entry.get('parent')!r}, as in directory.toml")
        elif cnet.get("parent_endpoint") != parent["endpoint"]:
            problem(n["where"], f"network.parent_endpoint must be {parent['endpoint']}")
    homes = {a["code"]: a["home"] for a in directory.get("agencies", [])}
    for a in directory.get("agencies", []):
        if a["home"] not in listed:
            problem(national["where"], f"directory.toml: agency {a['code']} is homed at an unknown node")
    for n in nodes:
        for system in (n["config"].get("vxp") or {}).get("systems", []):
            for agency in system["agencies"]:
                if homes.get(agency) != n["config"]["node_id"]:
                    problem(n["where"], f"VXP system {system['id']}: {agency} is not homed here")


def check_kubernetes(structs) -> None:
    before = len(problems)
    resources = load_manifests()
    by_kind = {}
    for where, r in resources:
        key = (r["kind"], r["metadata"]["name"])
        if key in by_kind:
            problem(where, "defined twice")
        by_kind[key] = r
    namespaces = {r["metadata"]["name"] for _, r in resources if r["kind"] == "Namespace"}
    for where, r in resources:
        if r["kind"] != "Namespace" and r["metadata"].get("namespace") not in namespaces:
            problem(where, f"namespace {r['metadata'].get('namespace')!r} is not created here")
    nodes = []
    for where, r in resources:
        if r["kind"] == "StatefulSet":
            node = check_node_pod(structs, where, r, by_kind, r["metadata"]["namespace"])
            if node:
                nodes.append(node)
    if not nodes:
        problem("deploy/kubernetes", "no node StatefulSet")
    else:
        check_network(nodes)
    pdbs = [r for _, r in resources if r["kind"] == "PodDisruptionBudget"]
    for n in nodes:
        if not any(p["spec"]["selector"]["matchLabels"].items() <= n["labels"].items() for p in pdbs):
            problem(n["where"], "no PodDisruptionBudget covers this node")
    if len(problems) == before:
        print(f"ok: {len(resources)} Kubernetes objects in "
              f"{len(list((DEPLOY / 'kubernetes').glob('*.yaml')))} files valid for Kubernetes "
              f"{', '.join(v[:4] for v in KUBERNETES_VERSIONS)} (strict); {len(nodes)} nodes, "
              "their TOML and the network between them consistent")


# ---- the container ----------------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def check_container(out: Path) -> None:
    before = len(problems)
    where = "deploy/container/Dockerfile"
    instructions = dockerfile_instructions((DEPLOY / "container" / "Dockerfile").read_text())
    runs = [rest for word, rest in instructions if word == "RUN" and "cargo " in rest]
    builds = [part.strip() for r in runs for part in r.split("&&") if "cargo " in part]
    if builds != [BUILD_COMMAND]:
        problem(where, f"the image must build with exactly `{BUILD_COMMAND}` (the command CI "
                       f"runs), found {builds}")
    rust_version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["rust-version"]
    builders = [rest for word, rest in instructions if word == "FROM" and "rust:" in rest]
    m = re.search(r"rust:(\d+)\.(\d+)", builders[0]) if builders else None
    if not m or (int(m[1]), int(m[2])) < tuple(int(x) for x in rust_version.split(".")[:2]):
        problem(where, f"the builder must be a rust:<version> image no older than rust-version {rust_version}")
    health = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    cmd = health[0].split(" CMD ", 1)[1] if health and " CMD " in health[0] else ""
    try:
        if json.loads(cmd) != PROBE:
            raise ValueError
    except ValueError:
        problem(where, f"HEALTHCHECK must run CMD {json.dumps(PROBE)}")
    entry = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    try:
        entrypoint = json.loads(entry[-1])
        if entrypoint[:2] != ["/usr/local/bin/lienthong", "node"] or "--config" not in entrypoint:
            raise ValueError
    except (IndexError, ValueError):
        problem(where, "ENTRYPOINT must be the exec form of /usr/local/bin/lienthong node --config …")
        entrypoint = []
    for word in ("USER", "VOLUME", "EXPOSE"):
        if not any(w == word for w, _ in instructions):
            problem(where, f"no {word}")
    if any(w == "USER" and rest.split(":")[0] in ("root", "0") for w, rest in instructions):
        problem(where, "the node must not run as root")
    # The ignore file lets in every workspace member.
    ignore = (DEPLOY / "container" / "Dockerfile.dockerignore").read_text().split()
    allowed = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]
    needed = {"Cargo.toml", "Cargo.lock", "proto"} | {m.split("/")[0] for m in workspace["members"]}
    if "*" not in ignore or needed - allowed:
        problem("deploy/container/Dockerfile.dockerignore",
                f"must ignore * and let in {sorted(needed)}; lets in {sorted(allowed)}")
    (out / "build-command").write_text(BUILD_COMMAND + "\n")
    (out / "context-paths").write_text("\n".join(sorted(allowed)) + "\n")
    (out / "entrypoint").write_text("\n".join(entrypoint) + "\n")
    (out / "probe").write_text(PROBE[2] + "\n")
    if len(problems) == before:
        print(f"ok: the Dockerfile builds with `{BUILD_COMMAND}`; its health check is the probes' command")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    static = sub.add_parser("static")
    static.add_argument("--out", type=Path, required=True)
    tomls = sub.add_parser("tomls")
    tomls.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    structs = load_structs()
    if args.command == "static":
        args.out.mkdir(parents=True, exist_ok=True)
        check_kubernetes(structs)
        check_container(args.out)
        before = len(problems)
        examples = sorted((DEPLOY / "config").glob("*.toml"))
        for f in examples:
            kind = "NodeConfig" if "node" in f.name else "ClientProfile"
            check_toml(structs, f.read_text(), kind, str(f.relative_to(ROOT)))
        if len(problems) == before:
            print(f"ok: the {len(examples)} examples in deploy/config match the node's structs")
    else:
        checked = 0
        for f in args.files:
            kind = toml_kind(f.name)
            if kind:
                check_toml(structs, f.read_text(), kind, str(f))
                checked += 1
        if not checked:
            problem("tomls", "no file to check")
        elif not problems:
            print(f"ok: {checked} TOML files written by the node's own serializer match the "
                  "structs deploy/check reads")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        # A bug here, or an input it does not expect: a failure, with what was found so far.
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        raise
