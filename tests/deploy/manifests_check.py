"""What finwave needs of deploy/'s manifests (the Kubernetes sidecar Pod and node DaemonSet, the
compose file), checked without a cluster: the capabilities, the volumes the control socket and
the rules live on, and arguments that finwave itself accepts.

Usage: manifests_check.py BUILD-DIR REPO-DIR; prints one line per manifest, exits 1 on the first
problem, naming it."""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

build, repo = Path(sys.argv[1]), Path(sys.argv[2])
finwave = build / "finwave"
HELP_OPTION = re.compile(r"(?:^|[ ,])(--?[a-zA-Z][a-zA-Z0-9-]*)")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def help_options(*command):
    text = subprocess.run(command + ("--help",), capture_output=True, text=True, check=True).stdout
    return {m.group(1) for line in text.splitlines() for m in HELP_OPTION.finditer(line)}


FINWAVE_OPTIONS = help_options(str(finwave))


def check_finwave_args(where, args, substitutions=None):
    """Every option is one finwave --help lists, and finwave accepts the values (--rules and
    --netns are set aside: their files are the cluster's)."""
    args = [(substitutions or {}).get(arg, arg) for arg in args]
    for arg in args:
        if arg.startswith("-") and arg.split("=")[0] not in FINWAVE_OPTIONS:
            fail(f"{where}: finwave has no option {arg}")
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--rules", "--netns"):
            skip = True
        else:
            kept.append(arg)
    run = subprocess.run([str(finwave), *kept, "--help"], capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{where}: finwave refuses {kept}: {run.stderr.strip()}")
    return args


def option(args, name):
    return args[args.index(name) + 1] if name in args else None


def check_rules(where, text):
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as rules:
        rules.write(text)
        rules.flush()
        run = subprocess.run([str(finwave), "--check", rules.name], capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{where}: finwave --check refuses the rules: {run.stderr.strip()}")


def check_capabilities(where, context, expected_add):
    capabilities = (context or {}).get("capabilities", {})
    if capabilities.get("drop") != ["ALL"]:
        fail(f"{where}: capabilities.drop is {capabilities.get('drop')}, not [ALL]")
    if sorted(capabilities.get("add", [])) != sorted(expected_add):
        fail(f"{where}: capabilities.add is {capabilities.get('add')}, not {expected_add}")


def mounted_config_map(where, spec, container, path, config_maps):
    """The ConfigMap key that path (a file finwave reads) comes from."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            source = volumes[mount["name"]].get("configMap")
            if source is None:
                fail(f"{where}: {path} is on volume {mount['name']}, which is no ConfigMap")
            key = path[len(mount["mountPath"].rstrip("/")) + 1:]
            data = config_maps.get(source["name"], {})
            if key not in data:
                fail(f"{where}: ConfigMap {source['name']} has no key {key}")
            return data[key]
    fail(f"{where}: no volume is mounted where {path} is")


def mount_of(where, spec, container, path):
    """The volume holding path, which must be mounted in the container."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            return volumes[mount["name"]]
    fail(f"{where}: no volume is mounted where {path} is")


def load(path):
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    config_maps = {doc["metadata"]["name"]: doc.get("data", {}) for doc in documents
                   if doc["kind"] == "ConfigMap"}
    return documents, config_maps


def finwave_container(where, spec):
    found = [c for c in spec["containers"] if c["name"] == "finwave"]
    if len(found) != 1:
        fail(f"{where}: no container named finwave")
    container = found[0]
    if "command" in container:
        fail(f"{where}: the finwave container overrides the image's entry point")
    if not container["image"].startswith("finwave:"):
        fail(f"{where}: the finwave container's image is {container['image']}")
    return container


def check_sidecar(path):
    documents, config_maps = load(path)
    pod = next(doc for doc in documents if doc["kind"] == "Pod")
    spec, where = pod["spec"], path.name
    container = finwave_container(where, spec)
    args = check_finwave_args(where, container["args"])
    if option(args, "--mode") != "local":
        fail(f"{where}: a sidecar runs finwave in local mode")
    ports = {str(p["containerPort"]) for c in spec["containers"] for p in c.get("ports", [])}
    if option(args, "--port") not in ports:
        fail(f"{where}: finwave watches port {option(args, '--port')}, no container's port")
    context = container.get("securityContext", {})
    check_capabilities(where, context, ["NET_ADMIN", "NET_RAW"])
    if context.get("runAsNonRoot") is not True:
        fail(f"{where}: the finwave container is not runAsNonRoot")
    if context.get("allowPrivilegeEscalation") is False:
        fail(f"{where}: allowPrivilegeEscalation false voids the image's file capabilities")
    check_rules(where, mounted_config_map(where, spec, container, option(args, "--rules"), config_maps))
    socket_volume = mount_of(where, spec, container, option(args, "--control"))
    if "emptyDir" not in socket_volume:
        fail(f"{where}: the control socket's volume {socket_volume['name']} is no emptyDir")
    probe = container["readinessProbe"]["exec"]["command"]
    if probe[0] != "/usr/bin/finwavectl" or option(probe, "--control") != option(args, "--control"):
        fail(f"{where}: the readiness probe does not ask finwave's control socket: {probe}")
    for arg in probe[1:]:
        if arg.startswith("-") and arg not in help_options(str(build / "finwavectl")):
            fail(f"{where}: finwavectl has no option {arg}")
    print(f"{where}: finwave local on port {option(args, '--port')}, NET_ADMIN and NET_RAW only, "
          f"socket on emptyDir {socket_volume['name']}, rules from a ConfigMap")


def check_daemonset(path):
    documents, config_maps = load(path)
    daemonset = next(doc for doc in documents if doc["kind"] == "DaemonSet")
    spec, where = daemonset["spec"]["template"]["spec"], path.name
    if spec.get("hostPID") is not True:
        fail(f"{where}: --netns with a PID needs hostPID")
    container = finwave_container(where, spec)
    substitutions = {}
    for variable in container.get("env", []):
        reference = variable["valueFrom"]["configMapKeyRef"]
        value = config_maps.get(reference["name"], {}).get(reference["key"])
        if value is None:
            fail(f"{where}: {variable['name']} refers to a missing ConfigMap key {reference}")
        substitutions[f"$({variable['name']})"] = value
    args = check_finwave_args(where, container["args"], substitutions)
    if not re.fullmatch(r"[0-9]+", option(args, "--netns") or ""):
        fail(f"{where}: --netns is not a PID: {option(args, '--netns')}")
    check_capabilities(where, container.get("securityContext"),
                       ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"])
    check_rules(where, mounted_config_map(where, spec, container, option(args, "--rules"), config_maps))
    mount_of(where, spec, container, option(args, "--control"))
    print(f"{where}: hostPID, --netns from the ConfigMap, NET_ADMIN NET_RAW SYS_ADMIN SYS_PTRACE")


def check_compose(path):
    services = yaml.safe_load(path.read_text())["services"]
    where = path.name
    service = services.get("finwave") or fail(f"{where}: no finwave service")
    mode = service.get("network_mode", "")
    if not mode.startswith("service:") or mode[len("service:"):] not in services:
        fail(f"{where}: network_mode {mode!r} names no service of the file")
    if service.get("cap_drop") != ["ALL"] or sorted(service.get("cap_add", [])) != ["NET_ADMIN", "NET_RAW"]:
        fail(f"{where}: finwave's capabilities are not exactly NET_ADMIN and NET_RAW")
    args = check_finwave_args(where, service["command"])
    rules = option(args, "--rules")
    prefix = "/usr/share/finwave/examples/"
    if not rules.startswith(prefix) or not (repo / "rules/examples" / rules[len(prefix):]).is_file():
        fail(f"{where}: --rules {rules} is no installed example")
    control_dir = str(Path(option(args, "--control")).parent)
    if not any(v.split(":")[1] == control_dir for v in service.get("volumes", [])):
        fail(f"{where}: no volume at {control_dir} for the control socket")
    print(f"{where}: finwave in {mode}'s network namespace, NET_ADMIN and NET_RAW only")


check_sidecar(repo / "deploy/kubernetes/sidecar-pod.yaml")
check_daemonset(repo / "deploy/kubernetes/node-daemonset.yaml")
check_compose(repo / "deploy/container/compose.yaml")
