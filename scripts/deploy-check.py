"""Checks docker-compose.yml, the Dockerfile and deploy/ without Docker.

Run by scripts/deploy-check (which passes `converger --help`'s text on
stdin); stands alone as `python3 scripts/deploy-check.py < help.txt`. Needs
PyYAML. Every failure is printed; the exit status is 1 if there was any.

What it holds to the repository:
- the compose file parses (anchors and merge keys included), has the
  services and profiles the README and docs/operations.md describe, and every
  service has an image or a build whose Dockerfile exists;
- every CONVERGER_* variable (and DATABASE_URL) a service sets is one the
  server reads, as `converger --help` lists them;
- every file or directory a service mounts exists, every named volume is
  declared, every depends_on names a service;
- the ports, health checks and addresses agree with the server's defaults
  (4000 HTTP, 4001 binary, /health/ready) and with each other: the load
  balancer's and Prometheus' targets are the node services, Grafana's
  datasource is the Prometheus service, the collector exports to Jaeger;
- the Dockerfile exposes the server's ports, checks /health/ready on the
  HTTP port, keeps the data dir in a volume, and runs as a non-root user;
- the server (the binary given as the first argument) starts with the node
  services' values: every variable of the `converger` service but the
  cluster's (PostgreSQL and NATS addresses, which name the compose network,
  and the node id, which needs NATS), on loopback and embedded storage, must
  reach its ready line.

promtool (config, rules, rule unit tests) and haproxy -c are run by the
shell script; the metric names of the dashboard and the rules are held to a
running server by the e2e test ops_metrics.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
HTTP_PORT, BINARY_PORT = 4000, 4001
NODES = ["converger", "converger-2", "converger-3"]
PROFILES = {
    "postgres": [],
    "nats": [],
    "converger": [],
    "converger-2": ["cluster"],
    "converger-3": ["cluster"],
    "haproxy": ["cluster"],
    "prometheus": [],
    "grafana": [],
    "otel-collector": ["observability"],
    "jaeger": ["observability"],
}
failures = []


def fail(message):
    failures.append(message)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def server_env_names(help_text):
    names = set(re.findall(r"\[env: ([A-Z0-9_]+)", help_text))
    if "CONVERGER_HTTP_ADDR" not in names or "DATABASE_URL" not in names:
        fail(f"`converger --help` lists no env names as expected (got {sorted(names)})")
    return names


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def container_ports(service):
    ports = []
    for p in service.get("ports") or []:
        text = str(p).split("/")[0]
        host, _, container = text.rpartition(":")
        if not host or not container.isdigit():
            fail(f"port {p!r} is not HOST:CONTAINER")
            continue
        ports.append(int(container))
    return ports


def check_compose(compose, env_names):
    services = compose.get("services") or {}
    if set(services) != set(PROFILES):
        fail(f"services are {sorted(services)}, expected {sorted(PROFILES)}")
    declared_volumes = set((compose.get("volumes") or {}).keys())
    for name, svc in services.items():
        if sorted(svc.get("profiles") or []) != PROFILES.get(name, []):
            fail(f"{name}: profiles {svc.get('profiles')} (expected {PROFILES.get(name)})")
        if "image" not in svc and "build" not in svc:
            fail(f"{name}: neither image nor build")
        if "build" in svc:
            build = svc["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if not os.path.isfile(os.path.join(ROOT, context, dockerfile)):
                fail(f"{name}: build {context}/{dockerfile} does not exist")
        for dep in svc.get("depends_on") or []:
            if dep not in services:
                fail(f"{name}: depends_on {dep!r} is no service")
        for vol in svc.get("volumes") or []:
            source = (vol if isinstance(vol, str) else vol.get("source", "")).split(":")[0]
            if source.startswith(("./", "../", "/")):
                if not os.path.exists(os.path.join(ROOT, source)):
                    fail(f"{name}: mounts {source}, which does not exist")
            elif source not in declared_volumes:
                fail(f"{name}: volume {source!r} is not declared under volumes:")
        for key in env_of(svc):
            if key.startswith("CONVERGER_") or key == "DATABASE_URL":
                if key not in env_names:
                    fail(f"{name}: {key} is not a name the server reads (`converger --help`)")
        hc = svc.get("healthcheck")
        if name not in ("otel-collector", "jaeger") and not (hc and hc.get("test")):
            fail(f"{name}: no health check")

    for name in NODES:
        svc = services.get(name, {})
        env = env_of(svc)
        for required in ("DATABASE_URL", "CONVERGER_NATS_URL", "CONVERGER_JWT_SECRET", "CONVERGER_ADMIN_TOKEN"):
            if not env.get(required):
                fail(f"{name}: {required} is not set (a cluster node needs it: docs/operations.md)")
        if not str(env.get("DATABASE_URL", "")).startswith("postgres://"):
            fail(f"{name}: DATABASE_URL is not PostgreSQL")
        if "@postgres:5432/" not in str(env.get("DATABASE_URL", "")):
            fail(f"{name}: DATABASE_URL does not point at the postgres service")
        if env.get("CONVERGER_NATS_URL") != "nats://nats:4222":
            fail(f"{name}: CONVERGER_NATS_URL is not the nats service")
        expected_id = "converger-1" if name == "converger" else name
        if env.get("CONVERGER_NODE_ID") != expected_id:
            fail(f"{name}: CONVERGER_NODE_ID {env.get('CONVERGER_NODE_ID')!r} is not its hostname")
        if svc.get("hostname") != env.get("CONVERGER_NODE_ID"):
            fail(f"{name}: hostname and CONVERGER_NODE_ID differ")
        if "CONVERGER_HTTP_ADDR" in env or "CONVERGER_BINARY_ADDR" in env:
            fail(f"{name}: sets its addresses; the stack assumes the image's 0.0.0.0:4000 and :4001")
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        if f"http://127.0.0.1:{HTTP_PORT}/health/ready" not in test:
            fail(f"{name}: health check {test!r} is not /health/ready on {HTTP_PORT}")
        ports = container_ports(svc)
        if ports and sorted(ports) != [HTTP_PORT, BINARY_PORT]:
            fail(f"{name}: publishes container ports {ports}, the server's are {HTTP_PORT} and {BINARY_PORT}")
    if sorted(container_ports(services.get("haproxy", {}))) != [HTTP_PORT, BINARY_PORT, 8404]:
        fail("haproxy: should publish 4000 (HTTP), 4001 (binary) and 8404 (stats)")
    return services


def check_dockerfile(env_names):
    text = read("Dockerfile")
    lines = [l.strip() for l in text.replace("\\\n", " ").splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [l for l in lines if l.startswith("FROM ")]
    if len(froms) < 2 or not froms[0].split()[1].startswith("rust:") or "slim" not in froms[-1]:
        fail(f"Dockerfile: expected a rust: build stage and a slim runtime stage, got {froms}")
    exposed = sorted(int(p.split("/")[0]) for l in lines if l.startswith("EXPOSE ") for p in l.split()[1:])
    if exposed != [HTTP_PORT, BINARY_PORT]:
        fail(f"Dockerfile: EXPOSE {exposed}, the server's ports are {HTTP_PORT} and {BINARY_PORT}")
    health = [l for l in lines if l.startswith("HEALTHCHECK ")]
    if len(health) != 1 or f"http://127.0.0.1:{HTTP_PORT}/health/ready" not in health[0]:
        fail(f"Dockerfile: HEALTHCHECK should ask /health/ready on {HTTP_PORT}: {health}")
    users = [l.split()[1] for l in lines if l.startswith("USER ")]
    if not users or users[-1] in ("root", "0"):
        fail("Dockerfile: the runtime stage should run as a non-root USER")
    env = dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", " ".join(l[4:] for l in lines if l.startswith("ENV "))))
    for key in env:
        if key.startswith("CONVERGER_") and key not in env_names:
            fail(f"Dockerfile: ENV {key} is not a name the server reads")
    if env.get("CONVERGER_HTTP_ADDR") != f"0.0.0.0:{HTTP_PORT}" or env.get("CONVERGER_BINARY_ADDR") != f"0.0.0.0:{BINARY_PORT}":
        fail(f"Dockerfile: the addresses should be the server's defaults, got {env}")
    volumes = [l for l in lines if l.startswith("VOLUME ")]
    data_dir = env.get("CONVERGER_DATA_DIR")
    if not data_dir or not any(data_dir in v for v in volumes):
        fail(f"Dockerfile: the data dir {data_dir} should be a VOLUME ({volumes})")
    if not os.path.isfile(os.path.join(ROOT, ".dockerignore")) or "target" not in read(".dockerignore"):
        fail(".dockerignore should keep target/ out of the build context")


def check_haproxy():
    text = read("deploy/haproxy/haproxy.cfg")
    servers = re.findall(r"^\s*server\s+\S+\s+([\w-]+):(\d+)", text, re.M)
    http = sorted(h for h, p in servers if int(p) == HTTP_PORT)
    binary = sorted(h for h, p in servers if int(p) == BINARY_PORT)
    if http != sorted(NODES) or binary != sorted(NODES):
        fail(f"haproxy: backends {servers} should be every node on {HTTP_PORT} and {BINARY_PORT}")
    if text.count("option httpchk GET /health/ready") != 2:
        fail("haproxy: both backends should check /health/ready")
    for bind in (HTTP_PORT, BINARY_PORT):
        if f"bind :{bind}" not in text:
            fail(f"haproxy: no frontend on :{bind}")
    if not re.search(r"frontend binary\s+bind :4001\s+mode tcp", text):
        fail("haproxy: the binary port should be plain TCP")


def check_prometheus(services):
    config = yaml.safe_load(read("deploy/prometheus/prometheus.yml"))
    jobs = {j["job_name"]: j for j in config.get("scrape_configs", [])}
    job = jobs.get("converger")
    if not job:
        return fail("prometheus: no converger job")
    sd = job.get("dns_sd_configs", [{}])[0]
    if sorted(sd.get("names", [])) != sorted(NODES) or sd.get("port") != HTTP_PORT:
        fail(f"prometheus: the converger job should find {NODES} on {HTTP_PORT}: {sd}")
    if job.get("metrics_path", "/metrics") != "/metrics":
        fail("prometheus: metrics_path should be /metrics")
    mounts = [v.split(":")[1] for v in services["prometheus"].get("volumes", []) if v.startswith("./")]
    for rule_file in config.get("rule_files", []):
        if os.path.join("/etc/prometheus", rule_file) not in mounts:
            fail(f"prometheus: rule file {rule_file} is not mounted beside the config ({mounts})")


def check_grafana(services):
    mounts = dict(v.split(":")[:2] for v in services["grafana"].get("volumes", []) if v.startswith("./"))
    datasources = yaml.safe_load(read("deploy/grafana/provisioning/datasources/prometheus.yml"))["datasources"]
    if [d["url"] for d in datasources] != ["http://prometheus:9090"]:
        fail(f"grafana: the datasource should be the prometheus service: {datasources}")
    providers = yaml.safe_load(read("deploy/grafana/provisioning/dashboards/converger.yml"))["providers"]
    path = providers[0]["options"]["path"]
    if mounts.get("./deploy/grafana/dashboards") != path:
        fail(f"grafana: dashboards are read from {path}, deploy/grafana/dashboards is mounted at {mounts}")
    if mounts.get("./deploy/grafana/provisioning") != "/etc/grafana/provisioning":
        fail("grafana: deploy/grafana/provisioning should be mounted at /etc/grafana/provisioning")
    home = env_of(services["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    if home and not os.path.isfile(os.path.join(ROOT, "deploy/grafana/dashboards", os.path.relpath(home, path))):
        fail(f"grafana: the home dashboard {home} is not in deploy/grafana/dashboards")
    dashboard = json.loads(read("deploy/grafana/dashboards/converger.json"))
    uids = {d["uid"] for d in datasources}
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    for panel in dashboard["panels"]:
        ds = panel.get("datasource")
        if panel["type"] != "row" and not (ds and (ds["uid"] in uids or ds["uid"].strip("${}") in variables)):
            fail(f"grafana: panel {panel['title']!r} uses datasource {ds}")
        for target in panel.get("targets", []):
            if "$instance" not in target["expr"] and 'instance=~"$instance"' not in target["expr"]:
                fail(f"grafana: panel {panel['title']!r} ignores the node variable: {target['expr']}")
    if "instance" not in variables:
        fail("grafana: no node (instance) variable")


def check_otel(services):
    config = yaml.safe_load(read("deploy/otel/collector.yaml"))
    endpoint = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    if not endpoint.endswith(":4318"):
        fail(f"otel: OTLP/HTTP should listen on 4318, not {endpoint}")
    for exporter in config["exporters"].values():
        host = exporter.get("endpoint", "").split(":")[0]
        if host not in services:
            fail(f"otel: exports to {host!r}, which is no service")
    pipeline = config["service"]["pipelines"]["traces"]
    if not set(pipeline["exporters"]) <= set(config["exporters"]) or not set(pipeline["receivers"]) <= set(config["receivers"]):
        fail("otel: the traces pipeline names an undefined receiver or exporter")
    for name in NODES:
        value = str(env_of(services[name]).get("CONVERGER_OTLP_ENDPOINT", ""))
        if value and "otel-collector:4318" not in value and not value.startswith("${"):
            fail(f"{name}: CONVERGER_OTLP_ENDPOINT should point at otel-collector:4318")


def check_values_start_the_server(binary, services):
    """The node's values parse and the server starts with them (not only the names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERGER_") and k != "DATABASE_URL"}
    for key, value in env_of(services["converger"]).items():
        # The cluster's (a node id needs NATS, NATS needs PostgreSQL): names on the compose network.
        if key in ("DATABASE_URL", "CONVERGER_NATS_URL", "CONVERGER_NODE_ID"):
            continue
        # The compose file's ${VAR:-default}: the default.
        env[key] = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
    with tempfile.TemporaryDirectory() as data:
        env.update(CONVERGER_HTTP_ADDR="127.0.0.1:0", CONVERGER_BINARY_ADDR="127.0.0.1:0", CONVERGER_DATA_DIR=data)
        server = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The ready line, or "" when it exits; at most 30 s.
            ready, _, _ = select.select([server.stdout], [], [], 30)
            line = server.stdout.readline() if ready else ""
            if not line.startswith("converger listening "):
                server.kill()
                server.wait(timeout=10)
                fail(f"the server does not start with the converger service's values: {server.stderr.read()[-2000:]}")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def main():
    env_names = server_env_names(sys.stdin.read())
    compose = yaml.safe_load(read("docker-compose.yml"))
    services = check_compose(compose, env_names)
    check_dockerfile(env_names)
    check_haproxy()
    check_prometheus(services)
    check_grafana(services)
    check_otel(services)
    if len(sys.argv) > 1:
        check_values_start_the_server(sys.argv[1], services)
    for f in failures:
        print(f"deploy-check: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"deploy-check: docker-compose.yml ({len(services)} services), Dockerfile and deploy/ agree with the server")


if __name__ == "__main__":
    main()
