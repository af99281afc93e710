#!/bin/sh
# `make run`: supervise services/demo without being PID 1, show the services coming up
# with schema-ctl, then stop everything.
set -eu
cd "$(dirname "$0")/.."
BIN=${SCHEMA_INIT_BIN:-.venv/bin/schema-init}
CTL=$(dirname "$BIN")/schema-ctl
RUN=build/tmp/run
rm -rf "$RUN" /tmp/schema-demo-flaky
mkdir -p "$RUN"
"$BIN" --services services/demo --run-dir "$RUN" --shm "/schema-demo-$$" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
i=0
while [ ! -S "$RUN/schema-init.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
# wait until nothing is starting or recovering any more (at most 20 s)
i=0
while [ $i -lt 80 ]; do
    if ! "$CTL" --socket "$RUN/schema-init.sock" status | grep -Eq 'state=(NEW_PROCESS|FULL_TRUST|RECOVERY)'; then
        break
    fi
    sleep 0.25; i=$((i+1))
done
echo
echo "== schema-ctl status"
"$CTL" --socket "$RUN/schema-init.sock" status
echo "== schema-ctl timing"
"$CTL" --socket "$RUN/schema-init.sock" timing
echo "== logs in $RUN/log: $(find "$RUN/log" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')"
