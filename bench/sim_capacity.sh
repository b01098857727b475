#!/usr/bin/env bash
# Capacity of `comfyfarm sim` on this machine:
#  1. resident memory (VmRSS) per simulated server: one process with --count 1, 10, 100, 1000
#     (COUNTS=...), idle and after one txt2img prompt ran on every server;
#  2. WebSocket messages per second one process sustains: --time-scale 0 (no waiting), clients
#     that keep WINDOW prompts in flight per server (a closed loop, so no socket outgrows its
#     bounded queue) and count every frame they receive, for SECONDS seconds.
#
#   bench/sim_capacity.sh [path/to/comfyfarm]        (default: build/comfyfarm)
#   COUNTS="1 10 100" SECONDS_PER_RUN=10 STEPS=100 WINDOW=2 WS_SERVERS="1 4" bench/sim_capacity.sh
#
# Needs python3 (standard library only). Prints the machine line first, then one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/comfyfarm}
counts=${COUNTS:-"1 10 100 1000"}
seconds=${SECONDS_PER_RUN:-10}
steps=${STEPS:-100}
window=${WINDOW:-2}
ws_servers=${WS_SERVERS:-"1 4"}
shared=${COMFYFARM_SHARED_DIR:-../shared}
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, load $(cut -d' ' -f1 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "binary: $bin ($("$bin" --version))"

start_sim() {
  rm -f "$work/ready.json"
  "$bin" sim --listen 127.0.0.1:0 --ready-file "$work/ready.json" --log-level warn "$@" \
    >"$work/sim.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    [ -s "$work/ready.json" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$work/sim.log" >&2; return 1; }
    sleep 0.05
  done
  echo "no ready file" >&2
  return 1
}

stop_sim() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

cat >"$work/client.py" <<'PY'
# Minimal ComfyUI clients on the standard library: HTTP posts and raw WebSocket frame counting.
import base64, http.client, json, os, selectors, socket, sys, time

def servers(ready):
    with open(ready) as f:
        return [s["http"] for s in json.load(f)["servers"]]

def post(conn, body):
    conn.request("POST", "/prompt", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"POST /prompt: {r.status} {data[:200]!r}")
    return json.loads(data)["prompt_id"]

def history_done(conn, pid):
    conn.request("GET", "/history/" + pid)
    r = conn.getresponse()
    return pid in json.loads(r.read())

def graph(workflow, seed, steps):
    g = json.loads(json.dumps(workflow))
    g["3"]["inputs"]["seed"] = seed
    g["3"]["inputs"]["steps"] = steps
    return g

def one_prompt_each(ready, workflow_path):
    wf = json.load(open(workflow_path))
    conns, ids = [], []
    for i, addr in enumerate(servers(ready)):
        h, p = addr.rsplit(":", 1)
        c = http.client.HTTPConnection(h, int(p), timeout=60)
        ids.append(post(c, json.dumps({"prompt": graph(wf, i, 20), "client_id": "rss"})))
        conns.append(c)
    deadline = time.time() + 300
    pending = list(range(len(ids)))
    while pending and time.time() < deadline:
        pending = [i for i in pending if not history_done(conns[i], ids[i])]
        if pending:
            time.sleep(0.05)
    if pending:
        raise RuntimeError(f"{len(pending)} prompts did not finish")

class Ws:
    def __init__(self, addr, client_id):
        h, p = addr.rsplit(":", 1)
        self.sock = socket.create_connection((h, int(p)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: {addr}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("WebSocket handshake failed")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("no upgrade: " + head.decode(errors="replace"))
        self.buf = bytearray(rest)
        self.frames = 0
        self.bytes = 0
        self.closed = False

    def feed(self):
        """Reads what is there; returns how many prompts ended (executing with node null)."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            self.closed = True
            return 0
        self.buf += chunk
        ended = 0
        buf = self.buf
        i, n = 0, len(buf)
        while n - i >= 2:
            b1 = buf[i + 1] & 0x7F
            hl = 2
            if b1 == 126:
                if n - i < 4: break
                ln = int.from_bytes(buf[i + 2:i + 4], "big"); hl = 4
            elif b1 == 127:
                if n - i < 10: break
                ln = int.from_bytes(buf[i + 2:i + 10], "big"); hl = 10
            else:
                ln = b1
            if n - i < hl + ln: break
            op = buf[i] & 0x0F
            if op in (1, 2):
                self.frames += 1
                self.bytes += ln
                if op == 1 and ln < 160 and buf.startswith(b'{"type": "executing", "data": {"node": null', i + hl):
                    ended += 1
            elif op == 9:  # ping: answer with a masked pong
                payload = bytes(buf[i + hl:i + hl + ln])
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask +
                                  bytes(b ^ mask[k % 4] for k, b in enumerate(payload)))
            elif op == 8:
                self.closed = True
            i += hl + ln
        del buf[:i]
        return ended

def ws_throughput(ready, workflow_path, seconds, steps, window):
    wf = json.load(open(workflow_path))
    sel = selectors.DefaultSelector()
    clients = []
    for i, addr in enumerate(servers(ready)):
        h, p = addr.rsplit(":", 1)
        ws = Ws(addr, f"bench-{i}")
        conn = http.client.HTTPConnection(h, int(p), timeout=60)
        clients.append({"ws": ws, "conn": conn, "seed": i * 1_000_000, "done": 0, "id": f"bench-{i}"})
        sel.register(ws.sock, selectors.EVENT_READ, clients[-1])

    def submit(c):
        c["seed"] += 1
        post(c["conn"], json.dumps({"prompt": graph(wf, c["seed"], steps), "client_id": c["id"]}))

    for c in clients:
        for _ in range(window):
            submit(c)
    warmup = 1.0
    t0 = time.time()
    start = None
    frames0 = 0
    prompts0 = 0
    while True:
        now = time.time()
        if start is None and now - t0 >= warmup:
            start = now
            frames0 = sum(c["ws"].frames for c in clients)
            prompts0 = sum(c["done"] for c in clients)
            bytes0 = sum(c["ws"].bytes for c in clients)
        if start is not None and now - start >= seconds:
            break
        for key, _ in sel.select(timeout=1.0):
            c = key.data
            ended = c["ws"].feed()
            if c["ws"].closed:
                raise RuntimeError("the server closed a WebSocket (slow reader?)")
            c["done"] += ended
            for _ in range(ended):
                submit(c)
    elapsed = time.time() - start
    frames = sum(c["ws"].frames for c in clients) - frames0
    prompts = sum(c["done"] for c in clients) - prompts0
    nbytes = sum(c["ws"].bytes for c in clients) - bytes0
    print(json.dumps({"frames_per_s": round(frames / elapsed), "prompts_per_s": round(prompts / elapsed, 1),
                      "mb_per_s": round(nbytes / elapsed / 1e6, 2), "frames": frames,
                      "seconds": round(elapsed, 2)}))

if __name__ == "__main__":
    if sys.argv[1] == "one-each":
        one_prompt_each(sys.argv[2], sys.argv[3])
    else:
        ws_throughput(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
PY

wf="$shared/workflows/txt2img_sd15.json"

echo
echo "== memory per simulated server (VmRSS; --time-scale 0)"
printf "%-7s %-12s %-14s %-16s %-16s\n" count idle_MiB after_MiB idle_KiB/server after_KiB/server
base_idle=""
base_after=""
for n in $counts; do
  start_sim --count "$n" --time-scale 0
  sleep 0.5
  idle=$(rss_kb "$pid")
  python3 "$work/client.py" one-each "$work/ready.json" "$wf"
  sleep 0.2
  after=$(rss_kb "$pid")
  stop_sim
  if [ -z "$base_idle" ]; then base_idle=$idle; base_after=$after; base_n=$n; fi
  if [ "$n" -gt "$base_n" ]; then
    per_idle=$(( (idle - base_idle) / (n - base_n) ))
    per_after=$(( (after - base_after) / (n - base_n) ))
  else
    per_idle="-"; per_after="-"
  fi
  printf "%-7s %-12s %-14s %-16s %-16s\n" "$n" "$((idle / 1024))" "$((after / 1024))" "$per_idle" "$per_after"
done

echo
echo "== WebSocket messages per second (--time-scale 0, txt2img with $steps steps, $window prompts in flight per server, ${seconds} s)"
for n in $ws_servers; do
  start_sim --count "$n" --time-scale 0
  ticks0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  t0=$(date +%s.%N)
  result=$(python3 "$work/client.py" ws "$work/ready.json" "$wf" "$seconds" "$steps" "$window")
  ticks1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  t1=$(date +%s.%N)
  rss=$(rss_kb "$pid")
  stop_sim
  cpu=$(python3 -c "print(round(($ticks1 - $ticks0) / $(getconf CLK_TCK) / ($t1 - $t0), 2))")
  echo "servers=$n $result sim_cpu_cores=$cpu rss_MiB=$((rss / 1024))"
done
