#!/usr/bin/env bash
# rounds.sh [ROUNDS] [OUT]: interleaved rounds of reign_bench (figures 1-3)
# and each peer's local figures (1-2), one after another, on this machine.
# With REMOTE=1: reign_bench's figures 4,5 and the remote figures of
# hollywood and protoactor (PEERS to change) instead.
# Binaries are built first so that no compile runs during a measurement.
set -euo pipefail
rounds=${1:-3}
out=${2:-results/$(date +%Y%m%d-%H%M%S)}
reign=${REIGN:-$(cd "$(dirname "$0")/../.." && pwd)}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out" "$here/bin"
(cd "$reign" && go build -o "$here/bin/reign_bench" ./cmd/reign_bench)
if [ -n "${REMOTE:-}" ]; then
	peers=${PEERS:-hollywood protoactor}
	reign_only=4,5 peer_only=4,5
else
	peers=${PEERS:-hollywood protoactor goakt ergo}
	reign_only=1,2,3 peer_only=1,2
fi
for p in $peers; do (cd "$here" && go build -o "bin/$p" "./cmd/$p"); done
git -C "$reign" rev-parse HEAD > "$out/reign_commit" 2>/dev/null || true
nproc > "$out/nproc"
for r in $(seq 1 "$rounds"); do
	echo "round $r: $(uptime)" | tee -a "$out/uptime.log"
	"$here/bin/reign_bench" -only "$reign_only" -json > "$out/r$r-reign.json"
	for p in $peers; do
		echo "round $r $p: $(uptime)" >> "$out/uptime.log"
		"$here/bin/$p" -only "$peer_only" -json > "$out/r$r-$p.json"
	done
done
echo "end: $(uptime)" | tee -a "$out/uptime.log"
python3 "$here/summarize.py" "$out" | tee "$out/summary.txt"
