#!/usr/bin/env python3
"""accel on Slurm beside raw Slurm, on the same cluster (scripts/slurm-cluster: one node, 16 fake T4s).

Two measures, each for raw Slurm (sbatch) and for accel serve with executor slurm:
  idle:  request -> running for runtimes made one at a time on an idle cluster (p50/p99)
  load:  1,000 runtimes from 100 clients, each client making one, waiting for it to run, ending it
         and making the next: request -> running p50/p99 (queueing for the 16 GPUs included) and
         starts per second
Raw Slurm's "running" is the batch script's first line (a timestamp it writes, which the client
watches for), its end scancel; accel's "running" is its API saying so (a job may start then), its
end DELETE, and its clients learn of the start from one watcher that lists the user's runtimes
(GET /v1/runtimes) every 20 ms: 100 Python threads each polling at that rate cost this 2-core
machine more CPU than Slurm itself. Both ask for one T4 under QOS pro. In the idle measure each
request comes 0.5-1.5 s after the last one ended (independent arrivals): one that follows a
cancel at once races Slurm's scheduler pass at that job's end, a luck a steady flow of users
does not have. A third side: accel with a warm pool (--warm N allocations of the same tier and type kept
started), in a service of its own that runs only while it is measured, idle and under load. Also timed:
one call of each Slurm tool the executor uses, and a REST submit
through slurmrestd (JWT), for docs/slurm.md's choice between the two.

Run as root with the test cluster up (scripts/slurm-cluster/cluster.sh start):
  python3 bench/slurm_bench.py [--accel build/accel] [--runtimes 1000] [--clients 100] [--idle 40] [--warm 2]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

QOS, GRES, ACCOUNT = "pro", "gpu:t4:1", "accel"


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def summary(name, latencies, wall=None, count=None):
    line = f"{name:44s} p50 {percentile(latencies, 50) * 1000:7.0f} ms  p99 {percentile(latencies, 99) * 1000:7.0f} ms"
    if wall:
        line += f"  {count / wall:6.1f} starts/s ({count} in {wall:.1f} s)"
    print(line, flush=True)
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "starts_per_s": count / wall if wall else None}


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


class RawSlurm:
    """sbatch a job whose script writes its start time, wait for it, scancel it."""

    def __init__(self, scratch):
        self.scratch = scratch

    def one(self, index):
        mark = os.path.join(self.scratch, f"started-{index}")
        t0 = time.time()
        job = run(["sbatch", "--parsable", f"--account={ACCOUNT}", f"--qos={QOS}", f"--gres={GRES}",
                   "--time=1442", "--output=/dev/null", f"--wrap=date +%s.%N > {mark}.tmp && mv {mark}.tmp {mark}; "
                   "exec sleep infinity"]).strip().split(";")[0]
        while not os.path.exists(mark):
            time.sleep(0.005)
        with open(mark) as f:
            started = float(f.read())
        run(["scancel", job])
        return started - t0


class AccelOnSlurm:
    """accel serve (executor slurm) on a loopback port; POST a runtime, poll it until running, DELETE it."""

    def __init__(self, accel, scratch, warm=0):
        scratch = os.path.join(scratch, f"accel-warm{warm}")
        os.makedirs(scratch)
        os.chmod(scratch, 0o755)
        self.data = os.path.join(scratch, "accel-data")
        config = os.path.join(scratch, "service.json")
        executor = {"kind": "slurm", "account": ACCOUNT, "types": {"t4": {"gres": GRES, "simulated": True}},
                    "tiers": {"bench": {"qos": QOS}}}
        if warm:
            executor["warm"] = [{"tier": "bench", "type": "t4", "count": warm}]
        with open(config, "w") as f:
            json.dump({
                "discover_gpus": False, "tenant_uid_first": 470000 + 1000 * warm, "tenant_uid_count": 100,
                "tiers": {"bench": {"accelerator_types": ["cpu", "t4"], "max_runtimes": 1000, "max_accelerated": 1000,
                                    "idle_timeout_s": 3600, "priority": 1}},
                "executor": executor}, f)
        out = run([accel, "admin", "user", "add", "bench", "--tier", "bench", "--data-dir", self.data, "--config", config])
        self.token = next(w for w in out.split() if w.startswith("acc_"))
        port_file = os.path.join(scratch, "port")
        self.log = open(os.path.join(scratch, "serve.log"), "w")
        self.daemon = subprocess.Popen([accel, "serve", "--config", config, "--data-dir", self.data, "--listen",
                                        "127.0.0.1:0", "--port-file", port_file], stdout=self.log, stderr=self.log)
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{open(port_file).read().strip()}/v1"
        self.waiting, self.lock, self.stopping = {}, threading.Lock(), False
        self.watcher = threading.Thread(target=self.watch, daemon=True)
        self.watcher.start()

    def watch(self):
        while not self.stopping:
            with self.lock:
                anyone = bool(self.waiting)
            if anyone:
                for runtime in self.call("GET", "/runtimes"):
                    if runtime["state"] in ("running", "terminated"):
                        with self.lock:
                            event = self.waiting.pop(runtime["id"], None)
                        if event:
                            event.state = runtime["state"]
                            event.set()
            time.sleep(0.02)

    def call(self, method, path, body=None):
        request = urllib.request.Request(self.base + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def one(self, index):
        t0 = time.time()
        event = threading.Event()
        event.state = None
        with self.lock:  # before the POST: the watcher may see it running before the POST returns
            self.waiting[f"pending-{index}"] = event
        runtime = self.call("POST", "/runtimes", {"type": "gpu:t4"})
        with self.lock:
            del self.waiting[f"pending-{index}"]
            if runtime["state"] == "running":
                event.set()
            else:
                self.waiting[runtime["id"]] = event
        event.wait()
        if event.state == "terminated":
            raise RuntimeError(f"runtime {runtime['id']} ended")
        took = time.time() - t0
        self.call("DELETE", "/runtimes/" + runtime["id"])
        return took

    def handed_out(self):
        """Runtimes that started on a warm allocation (the service's /metrics)."""
        with urllib.request.urlopen(self.base.removesuffix("/v1") + "/metrics", timeout=10) as reply:
            lines = [l for l in reply.read().decode().splitlines() if l.startswith("accel_slurm_warm_handed_out_total")]
        return sum(int(l.split()[-1]) for l in lines)

    def stop(self):
        self.stopping = True
        self.daemon.terminate()
        self.daemon.wait()


def load(side, runtimes, clients):
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(runtimes))

    def client():
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            try:
                took = side.one(index)
                with lock:
                    latencies.append(took)
            except Exception as e:  # noqa: BLE001 - counted and shown
                with lock:
                    errors.append(str(e))

    start = time.time()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"  {len(errors)} errors, first: {errors[0]}")
    return latencies, time.time() - start


def tool_costs():
    """One call of each tool the executor uses, and a REST submit, median of 20 (ms)."""
    out = {}

    def timed(fn, n=20):
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1000

    jobs = []

    def submit():
        jobs.append(run(["sbatch", "--parsable", f"--account={ACCOUNT}", f"--qos={QOS}", "--hold", "--output=/dev/null",
                         "--wrap=true"]).strip().split(";")[0])

    out["sbatch"] = timed(submit)
    out["squeue (20 jobs, one call)"] = timed(lambda: run(["squeue", "--noheader", "--states=all", "--jobs=" + ",".join(jobs)]))
    out["scancel"] = timed(lambda: run(["scancel", jobs.pop()]))
    try:
        token = run(["scontrol", "token", "username=accel-slurmrestd", "lifespan=600"]).strip().split("=", 1)[1]
        rest_jobs = []

        def rest_submit():
            body = json.dumps({"script": "#!/bin/sh\ntrue\n", "job": {
                "account": ACCOUNT, "qos": QOS, "hold": True, "current_working_directory": "/tmp",
                "environment": {"PATH": "/usr/bin:/bin"}, "standard_output": "/dev/null"}}).encode()
            request = urllib.request.Request("http://127.0.0.1:6820/slurm/v0.0.38/job/submit", data=body, method="POST",
                                             headers={"X-SLURM-USER-NAME": "accel-slurmrestd",
                                                      "X-SLURM-USER-TOKEN": token, "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as reply:
                answer = json.loads(reply.read())
            if "job_id" not in answer:  # a held job comes back with its id and a note that it is held
                raise RuntimeError(answer.get("errors"))
            rest_jobs.append(str(answer["job_id"]))

        out["REST submit (slurmrestd, JWT)"] = timed(rest_submit)
        subprocess.run(["scancel"] + rest_jobs, check=False)
    except Exception as e:  # noqa: BLE001 - said, and the rest stands
        print(f"  REST submit not measured: {e}")
    subprocess.run(["scancel"] + jobs, check=False)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", default="build/accel")
    parser.add_argument("--runtimes", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--idle", type=int, default=40, help="runtimes made one at a time on the idle cluster")
    parser.add_argument("--warm", type=int, default=2, help="a third side for the idle measure: accel with a warm "
                        "pool of this many allocations (0: none)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if os.geteuid() != 0 or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        sys.exit("slurm_bench: needs root and the test cluster: scripts/slurm-cluster/cluster.sh install && ... start")
    sched = [l for l in run(["scontrol", "show", "config"]).splitlines() if l.startswith("SchedulerParameters")]
    print(f"cluster: {run(['sinfo', '--noheader', '--format=%N %c CPUs, %G']).strip()}; {sched[0].split('=', 1)[1].strip()}")
    scratch = tempfile.mkdtemp(prefix="accel-slurm-bench-")
    os.chmod(scratch, 0o755)
    results = {"tools_ms": tool_costs()}
    for name, ms in results["tools_ms"].items():
        print(f"{name:44s} {ms:7.1f} ms per call (median of 20)")
    accel_path = os.path.abspath(args.accel)
    raw, accel = RawSlurm(scratch), AccelOnSlurm(accel_path, scratch)
    warm = None
    sides = [("raw Slurm (sbatch -> script starts)", raw), ("accel on Slurm (POST -> running)", accel)]

    def idle(label, side):
        latencies = []
        for i in range(args.idle):
            time.sleep(0.5 + (i * 0.618) % 1.0)  # independent arrivals, spread over Slurm's passes
            latencies.append(side.one(i + 100000))
        results[label + ", idle"] = summary(label + ", idle", latencies)

    try:
        for label, side in sides:
            idle(label, side)
        if args.warm:
            # A service of its own, only while it is measured: its pool holds GPUs the others' runs would miss.
            warm = AccelOnSlurm(accel_path, scratch, args.warm)
            time.sleep(3)  # its pool starts
            label = f"accel, warm pool of {args.warm} (POST -> running)"
            idle(label, warm)
            results[label + ", idle"]["warm"] = warm.handed_out()
            print(f"  {warm.handed_out()} of {args.idle} started on a warm allocation")
            served = warm.handed_out()
            latencies, wall = load(warm, args.runtimes, args.clients)
            results[label + ", load"] = summary(f"{label}, {args.clients} clients", latencies, wall, len(latencies))
            results[label + ", load"]["warm"] = warm.handed_out() - served
            print(f"  {warm.handed_out() - served} of {len(latencies)} started on a warm allocation")
            warm.stop()
            warm = None
        for label, side in sides:
            latencies, wall = load(side, args.runtimes, args.clients)
            results[label + ", load"] = summary(f"{label}, {args.clients} clients", latencies, wall, len(latencies))
        ratio = results["accel on Slurm (POST -> running), load"]["starts_per_s"] / \
            results["raw Slurm (sbatch -> script starts), load"]["starts_per_s"]
        print(f"accel / raw Slurm starts per second: {ratio:.2f}")
        if args.warm:
            warm_ratio = results[f"accel, warm pool of {args.warm} (POST -> running), idle"]["p50_ms"] / \
                results["raw Slurm (sbatch -> script starts), idle"]["p50_ms"]
            print(f"accel with a warm pool / raw Slurm, idle p50: {warm_ratio:.2f}")
    finally:
        if warm:
            warm.stop()
        accel.stop()
        subprocess.run("squeue --noheader --format=%i --name=wrap | xargs -r scancel", shell=True, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
