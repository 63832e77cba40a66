#!/usr/bin/env python3
"""Horizontal attack profile (HAP) report: how much host-kernel code each system reaches.

The seed's yardstick, measured as docs/hap.md describes for this machine (ftrace is
not permitted here): run a workload to a steady state, sample the kernel call stacks of the
system's processes with `perf record -g -e cpu-clock`, and count the distinct kernel
functions on those stacks and their bytes (sizes from /proc/kallsyms). Sampling twice (10 s
and 20 s by default) shows whether the set has stopped growing. Beside it: the distinct host
syscalls and their counts (`strace -f -c`) and the throughput of the same run.

Systems: native process, docker (runc), tender spt, tender hvt. Workloads: hello (boot to
exit, sampled over many runs), kv (redis-benchmark -t set,get), http (wrk). Every server
runs inside a network namespace this script creates and removes; traffic never leaves it.

Usage (root): python3 benches/hap/hap.py [--quick] [--systems ...] [--workloads ...]
Writes target/hap/report.md, target/hap/report.json and target/hap/hap.png.
"""

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Host binaries: .cargo/config.toml builds them statically for one explicit target.
RELEASE = ROOT / "target" / "x86_64-unknown-linux-gnu" / "release"
OUT = ROOT / "target" / "hap"
NS = f"hap{os.getpid()}"
# Addresses inside the namespace (host side of the tap / the guest).
HOST_IP, GUEST_IP, PREFIX = "10.77.0.1", "10.77.0.2", 24
KV_PORT, HTTP_PORT = 6379, 8080
CLIENTS = 50
KV_REQUESTS_PER_RUN = 100_000


def log(msg):
    print(f"[hap] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, text=True, **kw)


def have(program):
    return shutil.which(program) is not None


# ---------------------------------------------------------------- kernel symbols


def kallsyms_sizes():
    """Function name -> size in bytes, from the gaps between sorted text symbols."""
    syms = []
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("t", "T"):
                addr = int(parts[0], 16)
                if addr:
                    syms.append((addr, parts[2]))
    if not syms:
        raise SystemExit("/proc/kallsyms shows no addresses: run as root")
    syms.sort()
    sizes = {}
    for (addr, name), (nxt, _) in zip(syms, syms[1:]):
        gap = nxt - addr
        if 0 < gap <= 64 * 1024:  # larger gaps are holes, not functions (docs/hap.md)
            sizes[name] = max(sizes.get(name, 0), gap)
    return sizes


FRAME = re.compile(r"^\s*([0-9a-f]+)\s+(\S+)")


def kernel_functions(perf_data, comm=None):
    """Distinct kernel functions on the sampled stacks (optionally of one command)."""
    fields = "comm,ip,sym" if comm else "ip,sym"
    out = run(["perf", "script", "-i", str(perf_data), "-F", fields], capture_output=True, check=False).stdout
    funcs, keep = set(), comm is None
    for line in out.splitlines():
        if comm and line and not line[0].isspace():
            keep = line.split()[0] == comm
            continue
        if not keep:
            continue
        m = FRAME.match(line)
        if m and m.group(1).startswith("ffffffff"):
            funcs.add(re.sub(r"\+0x[0-9a-f]+$", "", m.group(2)))
    funcs.discard("[unknown]")
    return funcs


def perf_record(target_args, rate, out, seconds=None):
    cmd = ["perf", "record", "-q", "-F", str(rate), "-e", "cpu-clock", "-g", "-o", str(out)] + target_args
    if seconds is not None:
        cmd += ["--", "sleep", str(seconds)]
    run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def strace_counts(pid, seconds):
    """syscall -> calls, over `seconds` of the running process and its threads."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as tmp:
        p = subprocess.Popen(["strace", "-f", "-c", "-o", tmp.name, "-p", str(pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
        return parse_strace_summary(pathlib.Path(tmp.name).read_text())


def parse_strace_summary(text):
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
            try:
                counts[parts[-1]] = int(parts[3])
            except ValueError:
                pass
    return counts


# ---------------------------------------------------------------- network namespace


class Netns:
    """A private namespace with loopback and a tap (for tenders) at HOST_IP."""

    def __init__(self):
        run(["ip", "netns", "add", NS])
        self.ip("link", "set", "lo", "up")
        self.ip("tuntap", "add", "tap0", "mode", "tap")
        self.ip("addr", "add", f"{HOST_IP}/{PREFIX}", "dev", "tap0")
        self.ip("link", "set", "tap0", "up")

    @staticmethod
    def ip(*args):
        run(["ip", "-n", NS, *args])

    @staticmethod
    def wrap(cmd):
        return ["ip", "netns", "exec", NS, *cmd]

    def close(self):
        run(["ip", "netns", "del", NS], check=False)


# ---------------------------------------------------------------- systems


class Skip(Exception):
    """A row that cannot be measured here, with the reason."""


def wait_port(ns, host, port, timeout=20):
    deadline = time.time() + timeout
    probe = f"import socket;socket.create_connection(('{host}',{port}),1)"
    while time.time() < deadline:
        if run(ns.wrap([sys.executable, "-c", probe]), check=False, capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise Skip(f"server did not listen on {host}:{port} within {timeout} s")


def tender_bin():
    return RELEASE / "tender"


def guest(name, target):
    path = ROOT / "target" / "guests" / f"{name}.{target}"
    if not path.exists():
        raise Skip(f"{path.relative_to(ROOT)} was not built")
    return path


def native_hello():
    """benches/native/hello.c as a static binary: the floor a unikernel hello compares with."""
    out = OUT / "native-hello"
    if not out.exists():
        if not have("gcc"):
            raise Skip("gcc is missing to build benches/native/hello.c")
        OUT.mkdir(parents=True, exist_ok=True)
        run(["gcc", "-O2", "-static", "-o", str(out), str(ROOT / "benches" / "native" / "hello.c")])
    return out


def native_bin(name):
    path = RELEASE / name
    if not path.exists():
        raise Skip(f"{path} was not built")
    return path


class Server:
    """A started server: the pids to sample, where to send load, how to stop it."""

    def __init__(self, procs, pids, host, port, cleanup=None):
        self.procs, self.pids, self.host, self.port, self.cleanup = procs, pids, host, port, cleanup

    def stop(self):
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.cleanup:
            self.cleanup()


def start_native(ns, workload, ours=False):
    if workload == "kv" and ours:
        p = subprocess.Popen(ns.wrap([str(native_bin("native-kv")), f"127.0.0.1:{KV_PORT}"]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host, port = "127.0.0.1", KV_PORT
    elif ours:
        raise Skip("the native http row already runs our own build (native-http)")
    elif workload == "kv":
        if not have("redis-server"):
            raise Skip("redis-server is not installed (apt-get install redis-server)")
        p = subprocess.Popen(ns.wrap(["redis-server", "--port", str(KV_PORT), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--protected-mode", "no"]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host, port = "127.0.0.1", KV_PORT
    else:
        p = subprocess.Popen(ns.wrap([str(native_bin("native-http")), f"127.0.0.1:{HTTP_PORT}"]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host, port = "127.0.0.1", HTTP_PORT
    wait_port(ns, host, port)
    return Server([p], [child_pid(p.pid)], host, port)


def child_pid(pid):
    """`ip netns exec` execs its command, so the pid is the server's; resolve anyway."""
    return pid


def start_tender(ns, workload, target):
    if target == "hvt" and not os.path.exists("/dev/kvm"):
        raise Skip("/dev/kvm is missing")
    image = guest(workload, target)
    mem = "64"
    port = KV_PORT if workload == "kv" else HTTP_PORT
    cmd = [str(tender_bin()), f"--mem={mem}", "--net:service0=tap0", str(image),
           f"--ipv4={GUEST_IP}/{PREFIX}", f"--ipv4-gateway={HOST_IP}", str(port)]
    p = subprocess.Popen(ns.wrap(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(ns, GUEST_IP, port, timeout=60)
    return Server([p], [p.pid], GUEST_IP, port)


DOCKERD = []
# Debian's client matches Debian's dockerd 20.10 (a newer client may be first on PATH).
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


def ensure_dockerd():
    """Use a running daemon, or start one for this report (stopped at the end)."""
    if not have(DOCKER):
        raise Skip("docker is not installed (apt-get install docker.io)")
    if run([DOCKER, "info"], check=False, capture_output=True).returncode == 0:
        return
    if not have("dockerd") or DOCKERD:
        raise Skip("no docker daemon answers and none could be started")
    log("starting dockerd for the docker rows")
    DOCKERD.append(subprocess.Popen(["dockerd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for _ in range(60):
        if run([DOCKER, "info"], check=False, capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise Skip("dockerd did not come up within 30 s")


def start_docker(ns, workload):
    ensure_dockerd()
    if workload != "kv":
        raise Skip("docker is measured with redis-server (kv), the seed's workload")
    image = docker_redis_image()
    cid = run([DOCKER, "run", "-d", "--rm", image, "/redis-server", "--port", str(KV_PORT), "--save", "",
               "--appendonly", "no", "--protected-mode", "no"], capture_output=True).stdout.strip()
    pid = run([DOCKER, "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True).stdout.strip()
    # The client runs inside the container's network namespace (docs/hap.md).
    ns.docker_pid = pid

    def cleanup():
        run([DOCKER, "rm", "-f", cid], check=False, capture_output=True)

    server = Server([], [int(pid)], "127.0.0.1", KV_PORT, cleanup)
    server.netns_pid = pid
    deadline = time.time() + 20
    while run(["nsenter", "-n", "-t", pid, "redis-cli", "-p", str(KV_PORT), "ping"], check=False,
              capture_output=True).stdout.strip() != "PONG":
        if time.time() > deadline:
            cleanup()
            raise Skip("redis-server in docker did not answer")
        time.sleep(0.2)
    return server


def docker_redis_image():
    """A FROM-scratch image with the host's redis-server and its libraries."""
    tag = "hap-redis:local"
    if run([DOCKER, "image", "inspect", tag], check=False, capture_output=True).returncode == 0:
        return tag
    server = shutil.which("redis-server")
    libs = re.findall(r"(/\S+\.so[\.\d]*)", run(["ldd", server], capture_output=True).stdout)
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(server, pathlib.Path(d) / "redis-server")
        for lib in libs:
            dest = pathlib.Path(d) / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(lib, dest)
        tar = pathlib.Path(d) / "rootfs.tar"
        run(["tar", "-C", d, "-cf", str(tar), "--exclude", "rootfs.tar", "."])
        run([DOCKER, "import", str(tar), tag], capture_output=True)
    return tag


# ---------------------------------------------------------------- load generators


def start_load(ns, server, workload, seconds):
    if workload == "kv":
        if not have("redis-benchmark"):
            raise Skip("redis-benchmark is not installed (apt-get install redis-tools)")
        # Back-to-back bounded runs, so completed runs report their rate whenever we stop.
        bench = (f"redis-benchmark -h {server.host} -p {server.port} -c {CLIENTS} -t set,get "
                 f"-n {KV_REQUESTS_PER_RUN} -q")
        cmd = ["sh", "-c", f"while :; do {bench}; done"]
    else:
        if not have("wrk"):
            raise Skip("wrk is not installed (apt-get install wrk)")
        cmd = ["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{seconds}s", f"http://{server.host}:{server.port}/"]
    netns_pid = getattr(server, "netns_pid", None)
    cmd = ["nsenter", "-n", "-t", netns_pid, *cmd] if netns_pid else ns.wrap(cmd)
    # A session of its own: stopping the load must reach the client, not only the shell loop.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def throughput(workload, output):
    """Requests per second reported by the load generator."""
    if workload == "kv":
        # Each completed run prints "SET: 12345.67 requests per second, p50=..." (progress
        # lines end in \r and are dropped); report the mean over completed runs.
        rates = {}
        for line in output.replace("\r", "\n").splitlines():
            m = re.match(r"^(SET|GET): ([\d.]+) requests per second", line.strip())
            if m:
                rates.setdefault(m.group(1), []).append(float(m.group(2)))
        return {k: sum(v) / len(v) for k, v in rates.items()}
    m = re.search(r"Requests/sec:\s*([\d.]+)", output)
    return {"GET": float(m.group(1))} if m else {}


# ---------------------------------------------------------------- measurement


def measure_server(ns, system, workload, args, sizes):
    starter = {
        "native": lambda: start_native(ns, workload),
        "native-ours": lambda: start_native(ns, workload, ours=True),
        "docker": lambda: start_docker(ns, workload),
        "tender-spt": lambda: start_tender(ns, workload, "spt"),
        "tender-hvt": lambda: start_tender(ns, workload, "hvt"),
    }[system]
    server = starter()
    total = args.warmup + sum(args.seconds) + args.strace_seconds + 5
    load = None
    try:
        load = start_load(ns, server, workload, total)
        time.sleep(args.warmup)
        row = {"samples": {}}
        with tempfile.TemporaryDirectory() as d:
            for secs in args.seconds:
                data = pathlib.Path(d) / f"perf{secs}.data"
                perf_record(["-p", ",".join(map(str, server.pids))], args.rate, data, secs)
                funcs = kernel_functions(data)
                row["samples"][str(secs)] = {"functions": len(funcs),
                                             "bytes": sum(sizes.get(f, 0) for f in funcs)}
                row.setdefault("function_set", set()).update(funcs)
        row["syscalls"] = strace_counts(server.pids[0], args.strace_seconds) if have("strace") else {}
    finally:
        if load:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(load.pid, signal.SIGINT)
            try:
                out, _ = load.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(load.pid, signal.SIGKILL)
                out, _ = load.communicate()
        server.stop()
    row["throughput"] = throughput(workload, out or "")
    row["function_set"] = sorted(row.get("function_set", ()))
    return row


def measure_hello(system, args, sizes):
    """hello boots, prints and exits: sample many runs back to back, keep its own stacks."""
    if system == "native":
        cmd, comm = [str(native_hello()), "a", "b"], "native-hello"
    elif system == "native-ours":
        raise Skip("the native hello row is already a static C binary")
    elif system in ("tender-spt", "tender-hvt"):
        target = system.split("-")[1]
        if target == "hvt" and not os.path.exists("/dev/kvm"):
            raise Skip("/dev/kvm is missing")
        cmd, comm = [str(tender_bin()), str(guest("hello", target)), "a", "b"], "tender"
    else:
        raise Skip("hello is measured for native and tender (a docker run's kernel work is dockerd's and runc's)")
    loop = f"for i in $(seq {args.hello_runs}); do {' '.join(cmd)} >/dev/null; done"
    row = {"samples": {}}
    with tempfile.TemporaryDirectory() as d:
        data = pathlib.Path(d) / "perf.data"
        start = time.time()
        perf_record(["--", "sh", "-c", loop], args.rate, data)
        elapsed = time.time() - start
        funcs = kernel_functions(data, comm=comm[:15])
        row["samples"]["all"] = {"functions": len(funcs), "bytes": sum(sizes.get(f, 0) for f in funcs)}
        row["function_set"] = sorted(funcs)
        strace_log = pathlib.Path(d) / "strace"
        run(["strace", "-f", "-c", "-o", str(strace_log), *cmd], stdout=subprocess.DEVNULL, check=False)
        row["syscalls"] = parse_strace_summary(strace_log.read_text())
    row["throughput"] = {"runs/s": args.hello_runs / elapsed}
    return row


# ---------------------------------------------------------------- report


def build(args):
    if args.no_build:
        return
    log("building release binaries and guests")
    run(["cargo", "build", "--release", "--workspace"], cwd=ROOT)
    run(["cargo", "xtask", "guests", "--release"], cwd=ROOT, stdout=subprocess.DEVNULL)


def render(results, args):
    lines = [
        "| workload | system | kernel functions (" + " / ".join(f"{s} s" for s in args.seconds) + ") | bytes | distinct syscalls | calls | outside the filter | throughput (req/s) | functions vs docker |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in args.workloads:
        docker = results.get(workload, {}).get("docker", {})
        docker_funcs = max((s["functions"] for s in docker.get("samples", {}).values()), default=None)
        for system in args.systems:
            row = results.get(workload, {}).get(system)
            if row is None:
                continue
            if "skipped" in row:
                lines.append(f"| {workload} | {system} | skipped: {row['skipped']} | | | | | | |")
                continue
            samples = row["samples"]
            funcs = " / ".join(str(s["functions"]) for s in samples.values())
            size = " / ".join(f"{s['bytes'] / 1024:.0f} KB" for s in samples.values())
            calls = sum(row["syscalls"].values())
            tput = ", ".join(f"{k} {v:,.0f}" for k, v in row["throughput"].items()) or "n/a"
            last = list(samples.values())[-1]["functions"]
            ratio = f"{last / docker_funcs:.2f}×" if docker_funcs else "n/a"
            lines.append(f"| {workload} | {system} | {funcs} | {size} | {len(row['syscalls'])} | {calls:,} "
                         f"| {outside_filter(system, row, workload)} | {tput} | {ratio} |")
    return "\n".join(lines)


COLOURS = {"native": "#888", "native-ours": "#aaa", "docker": "#36c", "tender-spt": "#2a6", "tender-hvt": "#c63"}


def profile_syscalls(backend):
    """Syscall names a tender profile allows (seccomp-profiles/profiles/BACKEND-x86_64.json)."""
    path = ROOT / "seccomp-profiles" / "profiles" / f"{backend}-x86_64.json"
    return {r["syscall"] for r in json.loads(path.read_text())["rules"]}


def outside_filter(system, row, workload):
    """For tender rows: steady-state syscalls the filter does not allow (should be none).
    hello has no steady state: its strace covers the tender's set-up before the filter."""
    if not system.startswith("tender-") or not row.get("syscalls"):
        return "–"
    if workload == "hello":
        return "n/a (whole run, set-up included)"
    extra = sorted(set(row["syscalls"]) - profile_syscalls(system.split("-")[1]))
    return ", ".join(extra) if extra else "none"


def chart(results, args, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install matplotlib): no chart")
        return False
    fig, axes = plt.subplots(1, len(args.workloads), figsize=(5 * len(args.workloads), 4), squeeze=False)
    for ax, workload in zip(axes[0], args.workloads):
        names, values = [], []
        for system in args.systems:
            row = results.get(workload, {}).get(system)
            if row and "samples" in row:
                names.append(system)
                values.append(list(row["samples"].values())[-1]["functions"])
        ax.bar(names, values, color=[COLOURS.get(n, "#888") for n in names])
        ax.set_title(f"{workload}: distinct kernel functions")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="native,native-ours,docker,tender-spt,tender-hvt")
    ap.add_argument("--workloads", default="hello,kv,http")
    ap.add_argument("--seconds", default="10,20", help="sampling lengths, run one after the other")
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--strace-seconds", type=int, default=5)
    ap.add_argument("--hello-runs", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="2 s and 4 s samples (a smoke run, not a report)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--render", action="store_true", help="only redo the table and chart from target/hap/report.json")
    args = ap.parse_args()
    args.systems = args.systems.split(",")
    args.workloads = args.workloads.split(",")
    args.seconds = [2, 4] if args.quick else [int(s) for s in args.seconds.split(",")]
    if args.render:
        results = json.loads((OUT / "report.json").read_text())
        header = (OUT / "report.md").read_text().split("\n\n")[0] + "\n\n"
        table = render(results, args)
        (OUT / "report.md").write_text(header + table + "\n")
        chart(results, args, OUT / "hap.png")
        print(header + table)
        return
    if os.geteuid() != 0:
        raise SystemExit("hap.py needs root (perf kernel stacks, kallsyms, network namespaces)")
    for tool in ("perf", "ip"):
        if not have(tool):
            raise SystemExit(f"{tool} is missing: apt-get install linux-perf iproute2")
    build(args)
    OUT.mkdir(parents=True, exist_ok=True)
    sizes = kallsyms_sizes()
    results = {}
    ns = Netns()
    try:
        for workload in args.workloads:
            for system in args.systems:
                log(f"{workload} on {system}")
                try:
                    if workload == "hello":
                        row = measure_hello(system, args, sizes)
                    else:
                        row = measure_server(ns, system, workload, args, sizes)
                except Skip as e:
                    row = {"skipped": str(e)}
                    log(f"  skipped: {e}")
                results.setdefault(workload, {})[system] = row
    finally:
        ns.close()
        for d in DOCKERD:
            d.terminate()
            d.wait(timeout=30)
    table = render(results, args)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    machine = f"{platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}"
    header = (f"HAP report, {stamp}, {machine}; perf cpu-clock at {args.rate} Hz, "
              f"samples of {' and '.join(f'{s} s' for s in args.seconds)} after {args.warmup} s warm-up.\n\n")
    (OUT / "report.md").write_text(header + table + "\n")
    (OUT / "report.json").write_text(json.dumps(results, indent=1, default=sorted))
    chart(results, args, OUT / "hap.png")
    print(header + table)


if __name__ == "__main__":
    main()
