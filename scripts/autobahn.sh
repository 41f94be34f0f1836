#!/usr/bin/env bash
# The Autobahn test suite's fuzzingclient (cases 1 to 10; 12 and 13, compression, are out of
# scope) against web_hello's /ws echo. Needs Python 2.7 with autobahntestsuite:
#   /root/.pyenv/versions/2.7.18/bin/python -m pip install autobahntestsuite
# Prints each behaviour's count and the cases that were not OK; the full report is in
# target/autobahn/index.html. The server is our own child, stopped by PID; the run ends by
# itself (wstest runs each case once).
set -euo pipefail
cd "$(dirname "$0")/.."
PY2=${PY2:-/root/.pyenv/versions/2.7.18/bin/python}
WSTEST=$(dirname "$PY2")/wstest
if [ ! -x "$WSTEST" ]; then
    echo "autobahn: no wstest at $WSTEST (install autobahntestsuite for Python 2.7; see the top of this script)" >&2
    exit 2
fi
cargo build --release --example web_hello
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
OUT=target/autobahn
mkdir -p "$OUT"
RUST_LOG=warn target/release/examples/web_hello --addr "127.0.0.1:$PORT" --max-frame 16777216 --max-message 16777216 &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
sleep 0.5
cat > "$OUT/fuzzingclient.json" <<JSON
{"outdir": "$PWD/$OUT", "servers": [{"agent": "fibra", "url": "ws://127.0.0.1:$PORT/ws"}],
 "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"],
 "exclude-cases": [], "exclude-agent-cases": {}}
JSON
(cd "$OUT" && timeout 1200 "$WSTEST" -m fuzzingclient -s fuzzingclient.json > wstest.log 2>&1)
python3 - "$OUT/index.json" <<'PY'
import json, sys, collections
report = json.load(open(sys.argv[1]))["fibra"]
count = collections.Counter(r["behavior"] for r in report.values())
close = collections.Counter(r["behaviorClose"] for r in report.values())
print("autobahn fuzzingclient, cases 1-10:", len(report), "cases")
print("  behaviour:", dict(sorted(count.items())))
print("  close behaviour:", dict(sorted(close.items())))
def key(case):
    return [int(p) for p in case.split(".")]
for case in sorted(report, key=key):
    r = report[case]
    if r["behavior"] not in ("OK", "INFORMATIONAL") or r["behaviorClose"] not in ("OK", "INFORMATIONAL"):
        print("  ", case, r["behavior"], r["behaviorClose"])
PY
