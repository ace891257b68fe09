# Shell helpers shared by the benchmark scripts; source it, do not run it.

# A backlog of $1 phases in runs of 10 (a run's phases go one at a time)
# written to file $2.
backlog() {
  python3 - "$1" "$2" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        f.write(json.dumps({"run_id": f"run-{i // 10:05d}", "phase_id": f"p{i:06d}",
                            "phase_index": i % 10}) + "\n")
PY
}

# A free TCP port on the loopback interface.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_web_coordinator COORD STORE_URL LOG: starts COORD on STORE_URL with
# gRPC and the web view on free loopback ports, logging to LOG, and waits up
# to 60 s for /healthz. Sets pid (the coordinator's) and base (the web view's
# URL); the caller stops it (kill "$pid").
start_web_coordinator() {
  local coord=$1 url=$2 log=$3 grpc http
  grpc=$(free_port) http=$(free_port)
  "$coord" --store "$url" --listen "127.0.0.1:$grpc" --http-listen "127.0.0.1:$http" \
    --log-level warn >"$log" 2>&1 &
  pid=$!
  base="http://127.0.0.1:$http"
  for _ in $(seq 600); do curl -sf "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}
