#!/usr/bin/env bash
# Throughput of the kv and http guests next to their native baselines, one run,
# side by side: writes target/bench-report.md (markdown table of rps and ratios)
# and target/bench-throughput.png (chart). Run as root from anywhere:
#
#   bash benches/throughput.sh            # DURATION=10 REQUESTS=200000 by default
#   ONLY=kv-100k bash benches/throughput.sh   # just some suites (comma-separated):
#       kv, http, http-c1000, http-close, kv-100k; scale = the last three
#
# Everything runs inside a private network namespace made here (bridge + one tap
# per guest; native servers on its loopback); nothing leaves the machine. Each
# client run is bounded (redis-benchmark -n REQUESTS under `timeout`, wrk -d
# DURATION). Rows that cannot run here are kept in the table with the reason.
#
# Rows, kv (redis-benchmark -t set,get -c 50):
#   native-kv      our RESP logic (protocols::resp) as a Linux process, kernel TCP
#   redis-server   Debian's redis-server as a Linux process
#   kv spt         the kv guest on the tender's seccomp backend (smoltcp, tap)
#   kv hvt         the same on the KVM backend, if this tender runs hvt guests;
#                  fewer requests, sized from a short probe of its rate (below)
#   redis docker   redis-server in a docker (runc) container, client in its netns
#   redis gVisor   redis-server under runsc (ptrace platform, host network) via docker
# http (wrk -t 2 -c 50): native-http, http spt, http hvt.
#
# Scale rows (issue 16), same run, each with its error count:
#   http, 1,000 clients         wrk -t 2 -c 1000 -d DURATION
#   http, connection-per-request wrk -t 2 -c 50 -d DURATION -H "Connection: close"
#       against native-http, http spt and native-http in a docker (runc) container
#   kv, 100 KB values           redis-benchmark -t set,get -n 20000 -c 10 -d 102400
#       against redis-server, native-kv, kv spt (tap MTU 1500, the default), kv spt
#       on taps of MTU 9000 and 65521 (each on a bridge of its own with that MTU),
#       and redis-server in docker (runc); 3 runs of every row, interleaved, the
#       report shows their median and range
# wrk's errors are its "Socket errors" (connect, read, write, timeout) plus
# "Non-2xx or 3xx responses"; redis-benchmark's are the lines on its stderr
# that say "error".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
REQUESTS=${REQUESTS:-200000}
# The KVM backend here is nested and emulates ring-0 guest code in software
# (docs/solo5-abi.md §11; tens to hundreds of requests per second): the kv hvt
# row first measures its rate with HVT_PROBE requests, then runs as many
# requests as HVT_SECONDS allow at that rate (at most HVT_REQUESTS, at least
# HVT_PROBE) under a timeout scaled from the same rate, so it ends with a figure.
HVT_REQUESTS=${HVT_REQUESTS:-5000}
HVT_PROBE=${HVT_PROBE:-200}
HVT_SECONDS=${HVT_SECONDS:-30}
# Suites to run (comma-separated; empty: all).
ONLY=${ONLY:-}
CLIENTS=50
BIG_CLIENTS=1000          # http, 1,000 clients
BIG_VALUE=102400          # kv, 100 KB values
BIG_VALUE_REQUESTS=20000  # ~0.5 s per row at 40k rps: 5,000 (0.12 s) left ±15% noise
BIG_VALUE_CLIENTS=10
BIG_VALUE_RUNS=3          # each 100 KB row runs 3 times, interleaved; the report shows the median
NS=tender-tp-$$
WORK=$ROOT/target/bench-throughput
RESULTS=$WORK/results.tsv
REPORT=$ROOT/target/bench-report.md
CHART=$ROOT/target/bench-throughput.png
BIN=$ROOT/target/x86_64-unknown-linux-gnu/release  # .cargo/config.toml: static, one target
TENDER=$BIN/tender
GUESTS=$ROOT/target/guests

# want SUITE: whether SUITE is selected by ONLY
want() {
    [ -z "$ONLY" ] && return 0
    local only=",${ONLY//scale/http-c1000,http-close,kv-100k},"
    [[ $only == *",$1,"* ]]
}
for s in ${ONLY//,/ }; do
    case $s in kv | http | http-c1000 | http-close | kv-100k | scale) ;;
    *) echo "throughput.sh: ONLY: unknown suite $s (kv, http, http-c1000, http-close, kv-100k, scale)" >&2; exit 2 ;;
    esac
done
NEED_KV=; NEED_HTTP=; NEED_DOCKER=
if want kv || want kv-100k; then NEED_KV=1; fi
if want http || want http-c1000 || want http-close; then NEED_HTTP=1; fi
if want kv || want http-c1000 || want http-close || want kv-100k; then NEED_DOCKER=1; fi

[ "$(id -u)" = 0 ] || { echo "throughput.sh: needs root (network namespace, taps)" >&2; exit 1; }
for tool in ip redis-benchmark redis-server wrk python3; do
    command -v $tool >/dev/null || { echo "throughput.sh: needs $tool (apt-get install iproute2 redis-tools redis-server wrk python3)" >&2; exit 1; }
done

# 1,000 client sockets in wrk, as many in each server: room for them (the hard
# limit may be all we may take: raising it needs CAP_SYS_RESOURCE).
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=65536
ulimit -n "$NOFILE"
[ "$NOFILE" -gt $((BIG_CLIENTS + 100)) ] || { echo "throughput.sh: needs $((BIG_CLIENTS + 100)) open files, hard limit is $NOFILE" >&2; exit 1; }
mkdir -p "$WORK"
: > "$RESULTS"
PIDS=()
DOCKERD_PID=
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$DOCKERD_PID" ]; then
        DOCKER ps -aq 2>/dev/null | xargs -r docker -H "unix://$WORK/docker.sock" rm -f >/dev/null 2>&1 || true
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
DOCKER() { docker -H "unix://$WORK/docker.sock" "$@"; }
nsx() { ip netns exec "$NS" "$@"; }
# row SUITE NAME METRIC VALUE NOTE
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$RESULTS"; }
skip() { row "$1" "$2" - - "$3"; echo "SKIPPED $1 $2: $3"; }

echo "== building (release tender, native baselines, release guests)"
if ! (cd "$ROOT" && cargo build --release --quiet -p tender -p benches --bins && cargo xtask guests --release) \
    > "$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    exit 1
fi

echo "== network namespace $NS: bridge br0 10.15.0.1/24, one tap per guest"
ip netns add "$NS"
nsx ip link set lo up
nsx ip link add br0 type bridge
nsx ip addr add 10.15.0.1/24 dev br0
nsx ip link set br0 up
for tap in tkvspt thtspt tkvhvt ththvt; do
    nsx ip tuntap add "$tap" mode tap
    nsx ip link set "$tap" master br0
    nsx ip link set "$tap" up
done
# Bridges with larger frames for more kv guests (the 100 KB rows: the guest
# takes its tap's MTU), to show how much of that gap is per-frame cost: 9000
# (jumbo Ethernet) and 65521 (a tap's largest: 65535 with the Ethernet header).
for jumbo in "br1 tkvjumbo 9000 10.16.0.1" "br2 tkvmax 65521 10.17.0.1"; do
    read -r br tap mtu addr <<< "$jumbo"
    nsx ip link add "$br" type bridge
    nsx ip tuntap add "$tap" mode tap
    nsx ip link set "$tap" mtu "$mtu"
    nsx ip link set "$tap" master "$br"
    nsx ip link set "$br" mtu "$mtu"
    nsx ip addr add "$addr/24" dev "$br"
    nsx ip link set "$tap" up
    nsx ip link set "$br" up
done

# wait_port HOST PORT: until something accepts there (20 s at most)
wait_port() {
    for _ in $(seq 200); do
        nsx bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# redis SUITE NAME HOST PORT [NOTE [REQUESTS [TIMEOUT]]] — runs redis-benchmark in the namespace
redis() {
    local csv n=${6:-$REQUESTS}
    if ! csv=$(timeout "${7:-$((n / 1000 + 120))}" ip netns exec "$NS" \
        redis-benchmark -h "$3" -p "$4" -c $CLIENTS -n "$n" -t set,get --csv 2>/dev/null); then
        skip "$1" "$2" "redis-benchmark failed or timed out"; return
    fi
    for t in SET GET; do
        local rps
        rps=$(echo "$csv" | awk -F'","' -v t="$t" '{gsub(/"/,"",$1)} $1==t {gsub(/"/,"",$2); print $2}')
        row "$1" "$2" "$t" "${rps:-0}" "${5:-}"
        echo "   $2 $t: $rps rps"
    done
}

# http SUITE NAME URL [NOTE] — runs wrk in the namespace
http() {
    local out rps
    if ! out=$(timeout $((DURATION + 60)) ip netns exec "$NS" wrk -t 2 -c $CLIENTS -d "${DURATION}s" "$3" 2>&1); then
        skip "$1" "$2" "wrk failed or timed out"; return
    fi
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    row "$1" "$2" GET "${rps:-0}" "${4:-}"
    echo "   $2 GET: $rps rps"
}

# bg LOG COMMAND...: starts COMMAND in the namespace in the background. Not via
# nsx: a backgrounded shell function is a subshell, and killing it would leave
# its child running; `ip netns exec` execs the command, so $! is the server.
bg() {
    local log=$1
    shift
    ip netns exec "$NS" "$@" > "$log" 2>&1 &
    PIDS+=($!)
}

# start_guest NAME IMAGE TAP IP: starts a guest (wait_port then waits until it listens)
start_guest() {
    bg "$WORK/$1.log" "$TENDER" --mem=128 "--net:service0=$3" "$2" "--ipv4=$4/24" "--ipv4-gateway=${4%.*}.1"
}

# kv_hvt: the kv hvt row, bounded in time: a probe of HVT_PROBE SETs gives the
# rate, then SET and GET run over as many requests as HVT_SECONDS each allow.
kv_hvt() {
    local csv rate n
    if ! csv=$(timeout 300 ip netns exec "$NS" redis-benchmark -h 10.15.0.12 -p 6379 -c $CLIENTS \
        -n "$HVT_PROBE" -t set --csv 2>/dev/null); then
        skip kv "kv hvt" "probe of $HVT_PROBE SETs failed or took over 300 s"; return
    fi
    rate=$(echo "$csv" | awk -F'","' '{gsub(/"/,"",$1)} $1=="SET" {gsub(/"/,"",$2); printf "%d", $2}')
    rate=${rate:-0}
    [ "$rate" -ge 1 ] || rate=1
    n=$((rate * HVT_SECONDS))
    [ "$n" -le "$HVT_REQUESTS" ] || n=$HVT_REQUESTS
    [ "$n" -ge "$HVT_PROBE" ] || n=$HVT_PROBE
    echo "   kv hvt: probe $rate rps; $n requests per test"
    # Two tests of n requests at the probed rate, with a margin of 2× plus 60 s.
    redis kv "kv hvt" 10.15.0.12 6379 "KVM backend (nested, emulated ring 0), $n requests (probe: $rate rps)" \
        "$n" $((4 * n / rate + 60))
}

hvt_reason=
if [ ! -e /dev/kvm ]; then hvt_reason="no /dev/kvm"
elif [ ! -f "$GUESTS/kv.hvt" ]; then hvt_reason="no hvt guest images (the KVM backend's guest build is not in this tree yet)"
elif ! "$TENDER" inspect "$GUESTS/kv.hvt" >/dev/null 2>&1; then hvt_reason="this tender cannot inspect hvt images"
fi
if [ -n "$NEED_KV" ]; then
    echo "== kv"
    bg "$WORK/native-kv.log" "$BIN/native-kv" 127.0.0.1:6379
    bg "$WORK/redis-server.log" redis-server --port 6380 --bind 127.0.0.1 --save '' --appendonly no
    start_guest kv-spt "$GUESTS/kv.spt" tkvspt 10.15.0.10
fi
if want kv; then
    wait_port 127.0.0.1 6379 && redis kv native-kv 127.0.0.1 6379 "same RESP code, kernel TCP"
    wait_port 127.0.0.1 6380 && redis kv redis-server 127.0.0.1 6380 "$(redis-server --version | awk '{print $3}' | tr -d v=)"
    wait_port 10.15.0.10 6379 && redis kv "kv spt" 10.15.0.10 6379 "smoltcp in the guest, tap + bridge"
    if [ -z "$hvt_reason" ]; then
        start_guest kv-hvt "$GUESTS/kv.hvt" tkvhvt 10.15.0.12
        if wait_port 10.15.0.12 6379; then kv_hvt
        else skip kv "kv hvt" "guest did not come up: $(tail -1 "$WORK/kv-hvt.log")"; fi
    else
        skip kv "kv hvt" "$hvt_reason"
    fi
fi

# Docker and gVisor: a private dockerd (own data root and socket, no iptables,
# no bridge); the image is Debian's redis-server with its libraries, imported
# from a tarball (no registry needed). Containers get --network none and the
# client joins the container's network namespace (nsenter).
docker_reason=
if [ -z "$NEED_DOCKER" ]; then docker_reason="not selected (ONLY=$ONLY)"
elif ! command -v dockerd >/dev/null; then docker_reason="dockerd not installed (apt-get install docker.io)"; fi
if [ -z "$docker_reason" ]; then
    rm -rf "$WORK/docker" && mkdir -p "$WORK/docker/root/usr/bin" "$WORK/docker/cg"
    # redis-server and native-http (for the http scale rows) in one image.
    for exe in "$(command -v redis-server)" "$BIN/native-http"; do
        cp "$exe" "$WORK/docker/root/usr/bin/"
        for lib in $(ldd "$exe" 2>/dev/null | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'); do
            mkdir -p "$WORK/docker/root$(dirname "$lib")" && cp -L "$lib" "$WORK/docker/root$lib"
        done
    done
    printf '{"runtimes": {"runsc": {"path": "%s", "runtimeArgs": ["--platform=ptrace", "--network=host"]}}}\n' \
        "$(command -v runsc || echo /usr/bin/runsc)" > "$WORK/docker/daemon.json"
    unshare --net --mount --propagation private sh -c "
        mount --rbind /sys/fs/cgroup $WORK/docker/cg && mount -t sysfs sysfs /sys &&
        mount --move $WORK/docker/cg /sys/fs/cgroup && ip link set lo up &&
        exec dockerd --config-file $WORK/docker/daemon.json --data-root $WORK/docker/data \
            --exec-root $WORK/docker/exec --pidfile $WORK/docker/pid -H unix://$WORK/docker.sock \
            --iptables=false --bridge=none" > "$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 100); do DOCKER info >/dev/null 2>&1 && break; sleep 0.2; done
    if ! DOCKER info >/dev/null 2>&1; then
        docker_reason="private dockerd did not start: $(tail -1 "$WORK/dockerd.log")"
    elif ! tar -C "$WORK/docker/root" -c . | DOCKER import - tender-bench/redis:local >/dev/null; then
        docker_reason="docker import of the redis-server image failed"
    fi
fi
# container ROW RUNTIME NOTE
container() {
    local id pid
    if ! id=$(DOCKER run -d --network none --runtime "$2" tender-bench/redis:local \
        /usr/bin/redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no 2>"$WORK/$2.err"); then
        skip kv "$1" "docker run --runtime $2 failed: $(tail -1 "$WORK/$2.err")"; return
    fi
    pid=$(DOCKER inspect -f '{{.State.Pid}}' "$id")
    local ok=
    for _ in $(seq 100); do
        nsenter -t "$pid" -n redis-cli -p 6379 ping >/dev/null 2>&1 && { ok=1; break; }
        sleep 0.2
    done
    if [ -z "$ok" ]; then skip kv "$1" "redis-server did not answer in the container"; DOCKER rm -f "$id" >/dev/null; return; fi
    local csv
    csv=$(timeout $((REQUESTS / 1000 + 120)) nsenter -t "$pid" -n \
        redis-benchmark -p 6379 -c $CLIENTS -n "$REQUESTS" -t set,get --csv 2>/dev/null) || true
    for t in SET GET; do
        local rps
        rps=$(echo "$csv" | awk -F'","' -v t="$t" '{gsub(/"/,"",$1)} $1==t {gsub(/"/,"",$2); print $2}')
        if [ -n "$rps" ]; then row kv "$1" "$t" "$rps" "$3"; echo "   $1 $t: $rps rps"; else skip kv "$1" "redis-benchmark failed"; break; fi
    done
    DOCKER rm -f "$id" >/dev/null
}
if ! want kv; then :
elif [ -n "$docker_reason" ]; then
    skip kv "redis docker" "$docker_reason"
    skip kv "redis gVisor" "$docker_reason"
else
    container "redis docker" runc "docker $(DOCKER version -f '{{.Server.Version}}'), runc, client in the container's netns"
    if command -v runsc >/dev/null; then
        container "redis gVisor" runsc "runsc $(runsc --version | awk 'NR==1 {print $3}'), ptrace, host network"
    else
        skip kv "redis gVisor" "runsc not installed (apt-get install runsc)"
    fi
fi

if [ -n "$NEED_HTTP" ]; then
    echo "== http"
    bg "$WORK/native-http.log" "$BIN/native-http" 127.0.0.1:8080
    start_guest http-spt "$GUESTS/http.spt" thtspt 10.15.0.11
fi
if want http; then
    wait_port 127.0.0.1 8080 && http http native-http http://127.0.0.1:8080/ "same HTTP code, kernel TCP"
    wait_port 10.15.0.11 80 && http http "http spt" http://10.15.0.11/ "smoltcp in the guest, tap + bridge"
    # wrk -d bounds this row in time however slow the backend is.
    if [ -z "$hvt_reason" ]; then
        start_guest http-hvt "$GUESTS/http.hvt" ththvt 10.15.0.13
        if wait_port 10.15.0.13 80; then http http "http hvt" http://10.15.0.13/ "KVM backend (nested, emulated ring 0)"
        else skip http "http hvt" "guest did not come up: $(tail -1 "$WORK/http-hvt.log")"; fi
    else
        skip http "http hvt" "$hvt_reason"
    fi
fi

if want http-c1000 || want http-close || want kv-100k; then
    echo "== scale: http with 1,000 clients and connection-per-request, kv with 100 KB values"
fi
# in_net WHERE COMMAND...: COMMAND in this script's namespace (WHERE=ns) or in
# the network namespace of process WHERE (a docker container's).
in_net() {
    local where=$1
    shift
    if [ "$where" = ns ]; then ip netns exec "$NS" "$@"; else nsenter -t "$where" -n "$@"; fi
}
# wait_net WHERE HOST PORT: wait_port in either kind of namespace (20 s at most)
wait_net() {
    for _ in $(seq 200); do
        in_net "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# wrk_load SUITE NAME WHERE URL NOTE WRK-ARGS...: rps, requests and errors
wrk_load() {
    local suite=$1 name=$2 where=$3 url=$4 note=$5 out rps reqs errs detail
    shift 5
    if ! out=$(in_net "$where" timeout $((DURATION + 60)) wrk "$@" -d "${DURATION}s" "$url" 2>&1); then
        skip "$suite" "$name" "wrk failed or timed out: $(echo "$out" | tail -1)"; return
    fi
    echo "$out" > "$WORK/wrk-$suite-${name// /-}.out"
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    # "Socket errors: connect 0, read 3, write 0, timeout 12" and "Non-2xx or 3xx responses: 5"
    errs=$(echo "$out" | awk '/Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
                              /Non-2xx or 3xx responses:/ {e += $5} END {print e + 0}')
    detail=$(echo "$out" | awk '/Socket errors:|Non-2xx/ {sub(/^ +/, ""); printf "%s%s", s, $0; s = "; "}')
    row "$suite" "$name" GET "${rps:-0}" "$note${detail:+; wrk: $detail}"
    row "$suite" "$name" REQ "${reqs:-0}" ""
    row "$suite" "$name" ERR "$errs" ""
    echo "   $suite $name: $rps rps, $reqs requests, $errs errors${detail:+ ($detail)}"
}
# kv_big NAME WHERE HOST PORT NOTE: redis-benchmark with 100 KB values
kv_big() {
    local name=$1 where=$2 host=$3 port=$4 note=$5 csv errs first err=$WORK/kv-big-${1// /-}.err
    if ! csv=$(in_net "$where" timeout $((BIG_VALUE_REQUESTS / 10 + 120)) redis-benchmark -h "$host" -p "$port" \
        -c $BIG_VALUE_CLIENTS -n $BIG_VALUE_REQUESTS -d $BIG_VALUE -t set,get --csv 2>"$err"); then
        skip kv-100k "$name" "redis-benchmark failed or timed out: $(tail -1 "$err")"; return
    fi
    errs=$(grep -ci error "$err" || true)
    first=$(grep -i -m1 error "$err" || true)
    for t in SET GET; do
        local rps
        rps=$(echo "$csv" | awk -F'","' -v t="$t" '{gsub(/"/,"",$1)} $1==t {gsub(/"/,"",$2); print $2}')
        row kv-100k "$name" "$t" "${rps:-0}" "$note${first:+; first error: $first}"
        echo "   kv-100k $name $t: $rps rps"
    done
    row kv-100k "$name" ERR "$errs" ""
    echo "   kv-100k $name: $errs errors"
}
# docker_start NAME COMMAND...: a runc container of the bench image; prints its pid
docker_start() {
    local name=$1
    shift
    DOCKER run -d --name "tp-$name" --network none --runtime runc --ulimit "nofile=$NOFILE:$NOFILE" \
        tender-bench/redis:local "$@" > /dev/null 2> "$WORK/docker-$name.err" || return 1
    DOCKER inspect -f '{{.State.Pid}}' "tp-$name"
}
dk_http=
dk_redis=
docker_note=
if [ -z "$docker_reason" ]; then
    docker_note="docker $(DOCKER version -f '{{.Server.Version}}'), runc, client in the container's netns"
    if dk_http=$(docker_start http /usr/bin/native-http 127.0.0.1:8080) && wait_net "$dk_http" 127.0.0.1 8080; then :
    else dk_http=; docker_reason_http="native-http in docker did not come up: $(tail -1 "$WORK/docker-http.err")"; fi
    if dk_redis=$(docker_start redis /usr/bin/redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no) \
        && wait_net "$dk_redis" 127.0.0.1 6379; then :
    else dk_redis=; docker_reason_redis="redis-server in docker did not come up: $(tail -1 "$WORK/docker-redis.err")"; fi
fi
for suite in http-c1000 http-close; do
    want $suite || continue
    wait_port 127.0.0.1 8080 && wait_port 10.15.0.11 80 || true
    if [ $suite = http-c1000 ]; then args=(-t 2 -c $BIG_CLIENTS); else args=(-t 2 -c $CLIENTS -H "Connection: close"); fi
    wrk_load $suite native-http ns http://127.0.0.1:8080/ "same HTTP code, kernel TCP" "${args[@]}"
    wrk_load $suite "http spt" ns http://10.15.0.11/ "smoltcp in the guest, tap + bridge" "${args[@]}"
    if [ -n "$dk_http" ]; then
        wrk_load $suite "native-http docker" "$dk_http" http://127.0.0.1:8080/ "$docker_note" "${args[@]}"
    else
        skip $suite "native-http docker" "${docker_reason:-${docker_reason_http:-}}"
    fi
done
if want kv-100k; then
    wait_port 127.0.0.1 6379 && wait_port 127.0.0.1 6380 && wait_port 10.15.0.10 6379 || true
    # Each line: NAME|WHERE|HOST|PORT|NOTE. Rows that cannot run are skipped here, once.
    big_rows=(
        "redis-server|ns|127.0.0.1|6380|$(redis-server --version | awk '{print $3}' | tr -d v=)"
        "native-kv|ns|127.0.0.1|6379|same RESP code, kernel TCP"
        "kv spt|ns|10.15.0.10|6379|smoltcp in the guest, tap (MTU $(nsx cat /sys/class/net/tkvspt/mtu)) + bridge"
    )
    for jumbo in "9000 tkvjumbo 10.16.0.10" "65521 tkvmax 10.17.0.10"; do
        read -r mtu tap addr <<< "$jumbo"
        start_guest "kv-spt-$mtu" "$GUESTS/kv.spt" "$tap" "$addr"
        if wait_port "$addr" 6379; then
            big_rows+=("kv spt, MTU $mtu|ns|$addr|6379|as kv spt, but tap and bridge MTU $(nsx cat "/sys/class/net/$tap/mtu") (not the default)")
        else
            skip kv-100k "kv spt, MTU $mtu" "guest did not come up: $(tail -1 "$WORK/kv-spt-$mtu.log")"
        fi
    done
    if [ -n "$dk_redis" ]; then
        big_rows+=("redis docker|$dk_redis|127.0.0.1|6379|$docker_note")
    else
        skip kv-100k "redis docker" "${docker_reason:-${docker_reason_redis:-}}"
    fi
    # Interleaved runs: a slow spell of the host (or a run that settles into a
    # slow rhythm) lands on one run of every row, not on all runs of one row.
    for run in $(seq $BIG_VALUE_RUNS); do
        echo "   run $run of $BIG_VALUE_RUNS"
        for big_row in "${big_rows[@]}"; do
            IFS='|' read -r name where host port note <<< "$big_row"
            kv_big "$name" "$where" "$host" "$port" "$note"
        done
    done
fi

echo "== report"
PY=python3
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    # matplotlib from PyPI into a venv of our own, once (no chart if that fails).
    if [ ! -x "$ROOT/target/bench-venv/bin/python" ]; then
        python3 -m venv "$ROOT/target/bench-venv" && "$ROOT/target/bench-venv/bin/pip" install -q matplotlib \
            || echo "throughput.sh: could not install matplotlib: no chart" >&2
    fi
    [ -x "$ROOT/target/bench-venv/bin/python" ] && PY=$ROOT/target/bench-venv/bin/python
fi
$PY "$ROOT/benches/report.py" "$RESULTS" "$REPORT" "$CHART" "$DURATION" "$REQUESTS" "$CLIENTS" "$BIG_VALUE_REQUESTS" "$BIG_VALUE_RUNS"
echo "wrote $REPORT"
