"""deploy/: the files parse and point at what exists; TLS keeps strangers out; a real server runs the flows."""
from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import yaml
from processes import BIN, QUIET, ROOT, free_port, scheduler_process, stop, wait_for, worker_process

DEPLOY = ROOT / "deploy"


def test_compose_and_helm_reference_only_what_exists():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    built, external = set(), set()
    for name, service in compose["services"].items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT and (context / service["build"]["dockerfile"]).is_file(), name
            built.add(service["image"])
        else:
            external.add(service["image"])
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                # ./certs comes from deploy/make_certs.py, ../out is where the flows write
                assert host in ("./certs", "../out"), (name, host)
        command = service.get("command", "")
        assert not command or shutil.which(command.split()[0], path=str(BIN)), (name, command)
    assert built == {"emdask:latest"} and external == {"postgres:16-alpine"}
    assert {"dask-scheduler", "dask-worker-1", "dask-worker-2", "prefect-server", "prefect-worker", "postgres"} <= set(
        compose["services"]
    )
    for service in ("dask-scheduler", "dask-worker-1", "dask-worker-2"):
        env = compose["services"][service]["environment"]
        assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "true"
        assert "tls" in compose["services"][service]["command"]
    for path in (DEPLOY / "helm").glob("*.yaml"):
        values = yaml.safe_load(path.read_text())
        assert values, path
    dask_values = yaml.safe_load((DEPLOY / "helm" / "dask-values.yaml").read_text())
    assert dask_values["scheduler"]["image"]["repository"] == "emdask"
    assert "tls" in dask_values["scheduler"]["args"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY"):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_prefect_yaml_entrypoints_exist():
    spec = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    assert {d["name"] for d in spec["deployments"]} == {"nightly-scans", "weekly-segments"}
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        assert (ROOT / path).is_file()
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        assert set(d["parameters"]) <= set(flow.parameters.properties), d["name"]
        assert d["schedules"][0]["cron"] and d["work_pool"]["name"] == "emdask-pool"


@pytest.mark.slow
def test_tls_scheduler_refuses_clients_without_certificates(tmp_path):
    from distributed import Client
    from distributed.security import Security

    certs = tmp_path / "certs"
    subprocess.run(
        [sys.executable, str(DEPLOY / "make_certs.py"), "--out", str(certs), "--hosts", "127.0.0.1", "localhost"],
        check=True,
        capture_output=True,
    )
    tls = {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "true",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(certs / "ca.pem"),
        "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT": str(certs / "scheduler.pem"),
        "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY": str(certs / "scheduler.key"),
        "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT": str(certs / "worker.pem"),
        "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY": str(certs / "worker.key"),
    }
    env = {**os.environ, **QUIET, **tls}
    scheduler, address = scheduler_process(tmp_path, env, "tls")
    worker = worker_process(address, env, tmp_path)
    try:
        assert address.startswith("tls://127.0.0.1:")
        # each refused Client is collected at once: distributed deadlocks when a failed Client's __del__ runs
        # inside the next Client's start (the garbage collector can pick that moment)
        with pytest.raises((OSError, TimeoutError)):
            Client(address.replace("tls://", "tcp://"), timeout=5, set_as_default=False)  # plain TCP to a TLS port
        gc.collect()
        with pytest.raises((OSError, TimeoutError, TypeError, ValueError)):
            Client(
                address, timeout=5, security=Security(), set_as_default=False
            )  # TLS without a certificate from the CA
        gc.collect()
        stranger = tmp_path / "stranger"
        subprocess.run(
            [sys.executable, str(DEPLOY / "make_certs.py"), "--out", str(stranger), "--hosts", "127.0.0.1"],
            check=True,
            capture_output=True,
        )
        wrong = Security(tls_ca_file=str(stranger / "ca.pem"), tls_client_cert=str(stranger / "client.pem"),
                         tls_client_key=str(stranger / "client.key"), require_encryption=True)
        with pytest.raises((OSError, TimeoutError)):
            Client(address, timeout=5, security=wrong, set_as_default=False)  # a certificate from another CA
        gc.collect()
        good = Security(tls_ca_file=str(certs / "ca.pem"), tls_client_cert=str(certs / "client.pem"),
                        tls_client_key=str(certs / "client.key"), require_encryption=True)
        with Client(address, timeout=30, security=good, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result() == 6
    finally:
        stop(worker)
        stop(scheduler)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A real ``prefect server`` on loopback (stopped by PID), with its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {**os.environ, **QUIET, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    import httpx

    try:
        wait_for(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, 120, "prefect server")
        yield {**env, "PREFECT_API_URL": url}
    finally:
        stop(proc)


def _api(env: dict[str, str], call):
    async def run():
        from prefect.client.orchestration import PrefectClient

        async with PrefectClient(env["PREFECT_API_URL"]) as client:
            return await call(client)

    return asyncio.run(run())


@pytest.mark.slow
def test_flow_on_real_server_and_dask_cluster(prefect_server, tmp_path):
    """The flow's tasks run on a real scheduler with two workers through prefect_dask, and its EM passes there too
    (flows with the threads task runner against a running scheduler: test_bad_input's flow cases)."""
    task_runner = "dask"
    env = prefect_server
    scheduler, address = scheduler_process(tmp_path, env)
    workers = [worker_process(address, {**env, "PYTHONPATH": str(ROOT)}, tmp_path) for _ in range(2)]
    try:
        out = tmp_path / "set.zarr"
        run = subprocess.run(
            [sys.executable, "-m", "flows.compress_images", str(ROOT / "data" / "photos" / "chelsea.png"),
             str(ROOT / "data" / "photos" / "rocket.jpg"), "-o", str(out), "-k", "4", "--scheduler", address,
             "--task-runner", task_runner],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        from emdask import images

        assert images.info(out)["k"] == 4
        runs = _api(env, lambda c: c.read_flow_runs())
        assert any(r.state.is_completed() for r in runs)
        tasks = _api(env, lambda c: c.read_task_runs())
        names = {t.name.rsplit("-", 1)[0] for t in tasks if t.state.is_completed()}
        assert {"discover sources", "fit codebook", "encode and write", "report"} <= names
        keys = {a.key for a in _api(env, lambda c: c.read_artifacts())}
        assert {"image-set-report", "contact-sheet", "convergence"} <= keys
    finally:
        for w in workers:
            stop(w)
        stop(scheduler)


@pytest.mark.slow
def test_prefect_deploy_registers_both_and_the_nightly_run_appends(prefect_server, tmp_path):
    env = {**prefect_server, "EMDASK_ROOT": str(ROOT)}
    prefect = str(BIN / "prefect")
    subprocess.run(
        [prefect, "work-pool", "create", "emdask-pool", "--type", "process"], env=env, check=True, capture_output=True
    )
    deploy = subprocess.run([prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(DEPLOY / "prefect.yaml")],
                            env=env, cwd=ROOT, capture_output=True, text=True)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    deployments = _api(env, lambda c: c.read_deployments())
    crons = {d.name: [s.schedule.cron for s in d.schedules] for d in deployments}
    assert crons == {"nightly-scans": ["0 2 * * *"], "weekly-segments": ["0 3 * * 1"]}
    from emdask import images
    from emdask.readers import read_images

    scans, out = tmp_path / "scans", tmp_path / "nightly.zarr"
    scans.mkdir()
    (scans / "coffee.png").write_bytes((ROOT / "data" / "photos" / "coffee.png").read_bytes())
    images.compress(read_images([scans])[0], out, n_colours=16, random_state=0)  # the set so far
    coffee = images.decompress(out, "coffee").compute()
    (scans / "rocket.jpg").write_bytes((ROOT / "data" / "photos" / "rocket.jpg").read_bytes())  # the day's new scan
    params = json.dumps({"sources": [str(scans)], "output": str(out), "workers": 1})
    started = subprocess.run([prefect, "deployment", "run", "compress-images/nightly-scans", "--params", params],
                             env=env, cwd=ROOT, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr[-2000:]
    bare = {k: v for k, v in env.items() if k != "PREFECT_LOGGING_EXTRA_LOGGERS"}  # the deployment asks for it
    worker = subprocess.run([prefect, "worker", "start", "--pool", "emdask-pool", "--run-once"],
                            env=bare, cwd=ROOT, capture_output=True, text=True, timeout=400)
    runs = [r for r in _api(env, lambda c: c.read_flow_runs()) if r.parameters.get("output") == str(out)]
    assert runs and runs[0].state.is_completed(), (worker.stdout[-3000:], worker.stderr[-3000:])
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = _api(env, lambda c: c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id]))))
    assert any(log.message.startswith("encoded rocket: PSNR") for log in logs)  # emdask's progress, in Prefect
    assert [im["name"] for im in images.info(out)["images"]] == ["coffee", "rocket"]
    np.testing.assert_array_equal(images.decompress(out, "coffee").compute(), coffee)  # appended, not rewritten
