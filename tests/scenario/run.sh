#!/usr/bin/env bash
# Runs the seed scenario once: a throwaway PostgreSQL seeded with seed.sql, the stand-in servers,
# then the agent; stops everything on exit (also on failure or Ctrl-C) and exits non-zero when
# any part failed. Needs root (PostgreSQL runs as the postgres user) and setup.sh done.
#
#   tests/scenario/run.sh [--benign] [--record FILE.jsonl.gz [--check]]
#
# --benign   the benign twin: the user never asks for a backup, so nothing is uploaded
# --record   run the agent under `chainwatch capture` (binary from $CHAINWATCH, else `chainwatch`
#            on PATH) and write its JSON lines, gzipped, to FILE: only the agent and its
#            children are captured, the servers run outside the capture
# --check    after --record: check_capture.py on the recording (every step visible after
#            `chainwatch parse`, no lost exec events, no credential in the output)
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

benign=() record="" check=""
while (($#)); do
    case "$1" in
        --benign) benign=(--benign) ;;
        --record) record="${2:?--record needs a file}"; shift ;;
        --check) check=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
log() { echo "run.sh: $*" >&2; }
if [[ -n "$record" ]]; then
    record="$(realpath -m "$record")"
    cw="${CHAINWATCH:-$(command -v chainwatch || true)}"
    [[ -x "$cw" ]] || { log "--record needs the chainwatch binary (set CHAINWATCH=/path/to/chainwatch)"; exit 2; }
fi

[[ -x "$CW_SCENARIO_VENV/bin/python3" && -s "$CW_SCENARIO_PKI/server.pem" ]] \
    || { log "run tests/scenario/setup.sh first (no venv in $CW_SCENARIO_VENV or no PKI in $CW_SCENARIO_PKI)"; exit 2; }
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[[ -x "$pg_bin/initdb" ]] || { log "no PostgreSQL server binaries; run setup.sh"; exit 2; }

# A neutral work directory: the agent's cwd, its conversation file and a copy of the CA.
work="$CW_SCENARIO_WORKDIR"
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
cp "$CW_SCENARIO_DIR"/{agent.py,common.sh,run-agent-only} "$work/"
cp "$CW_SCENARIO_PKI/ca.pem" "$work/ca.pem"
logs="$work/logs"
pgdata="$work/pgdata"
mkdir -p "$logs" "$pgdata" "$work/pgsock"
chown postgres: "$pgdata" "$work/pgsock" "$logs"
chmod 700 "$pgdata"

servers_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$servers_pid" ]] && kill -0 "$servers_pid" 2>/dev/null; then
        kill -TERM "$servers_pid" 2>/dev/null || true
        wait "$servers_pid" 2>/dev/null || true
    fi
    if [[ -f "$pgdata/postmaster.pid" ]]; then
        runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$pgdata"
    if ((rc == 0)); then log "ok; work dir $work (logs in $logs)"; else log "FAILED ($rc); logs in $logs"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PostgreSQL on 127.0.0.1:$CW_PORT_PG, SCRAM logins over TCP, seeded with seed.sql.
runuser -u postgres -- "$pg_bin/initdb" -D "$pgdata" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 >"$logs/initdb.log" 2>&1
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pgdata" -l "$logs/postgres.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $CW_PORT_PG -k $work/pgsock -c ssl=off" start >/dev/null
runuser -u postgres -- "$pg_bin/psql" -q -v ON_ERROR_STOP=1 -h "$work/pgsock" -p "$CW_PORT_PG" -U postgres \
    -d postgres -f - <"$CW_SCENARIO_DIR/seed.sql" >"$logs/seed.log" 2>&1 \
    || { log "seeding PostgreSQL failed:"; cat "$logs/seed.log" >&2; exit 1; }
log "postgres on 127.0.0.1:$CW_PORT_PG (data $pgdata)"

# The stand-ins; wait for their "ready".
"$CW_SCENARIO_VENV/bin/python3" -u "$CW_SCENARIO_DIR/servers.py" >"$logs/servers.out" 2>"$logs/servers.log" &
servers_pid=$!
for _ in $(seq 1 100); do
    grep -q '^ready' "$logs/servers.out" 2>/dev/null && break
    kill -0 "$servers_pid" 2>/dev/null || { log "servers.py died:"; cat "$logs/servers.log" >&2; exit 1; }
    sleep 0.1
done
grep -q '^ready' "$logs/servers.out" || { log "servers.py not ready after 10 s"; exit 1; }
log "stand-ins: llm :$CW_PORT_LLM jira :$CW_PORT_JIRA slack :$CW_PORT_SLACK pastebin :$CW_PORT_PASTEBIN vectors(gRPC) :$CW_PORT_VECTOR"

# The agent, from the work directory.
cd "$work"
if [[ -n "$record" ]]; then
    mkdir -p "$(dirname "$record")"
    "$cw" capture -- "$work/run-agent-only" "${benign[@]}" 2>"$logs/capture.log" | gzip -n -9 >"$record"
    st=("${PIPESTATUS[@]}")
    cat "$logs/capture.log" >&2
    ((st[0] == 0)) || { log "the captured agent failed (${st[0]})"; exit 1; }
    log "recorded $(zcat "$record" | wc -l) records to $record"
    if [[ -n "$check" ]]; then
        /usr/bin/python3 "$CW_SCENARIO_DIR/check_capture.py" --chainwatch "$cw" "${benign[@]}" "$record"
    fi
else
    "$work/run-agent-only" "${benign[@]}"
fi
