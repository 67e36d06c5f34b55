#!/usr/bin/env bash
# Fuzzes the admin API with schemathesis (PyPI) against the OpenAPI document that
# `coffre serve` itself serves: any 5xx, or any other failed check, fails the run.
#
#   bash scripts/api-fuzz.sh
#
# Works from any directory. Uses ${COFFRE_BIN:-target/debug/coffre} (built with
# `cargo build` if missing). Everything goes under ${COFFRE_TEST_HOME:-target/test-env}:
# the venv (fuzz-venv, reused), and a throwaway workspace (api-fuzz/, made anew each run,
# kept afterwards for a look: coffre.toml, serve.log, schemathesis reports).
# Knobs: COFFRE_FUZZ_EXAMPLES (default 25 per operation), COFFRE_FUZZ_SEED (default 20261123),
# COFFRE_FUZZ_CHECKS (default all) and COFFRE_FUZZ_EXCLUDE_CHECKS (default
# positive_data_acceptance, since JSON Schema cannot say what the handlers also check: an
# age recipient's bech32 checksum, a password's strength; empty: none excluded).
#
# The run: keys, a config with one fs target, one SQLite source (with a drill), [service]
# and [api] on free loopback ports; the first admin from `coffre user create-admin`;
# `coffre serve` in the background; one login (TOTP computed in Python), an API token for
# the fuzzing, users of the other roles, a backup and a drill (so that routes have data);
# then schemathesis on every operation, authenticated with the API token (loading the
# schema too). Two passes, so that no request can cut the fuzzing's own authentication:
#   1. every operation but DELETE /api/v1/tokens/{id}, with the API token (a logout with
#      an API token ends nothing: it only ends sessions);
#   2. DELETE /api/v1/tokens/{id} alone, with the admin's session token (a session is not
#      an API token: no id revokes it).
# Then the fuzz token must still answer GET /api/v1/me.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_HOME=${COFFRE_TEST_HOME:-$ROOT/target/test-env}
mkdir -p "$TEST_HOME" # a relative COFFRE_TEST_HOME is relative to the caller's directory
TEST_HOME=$(cd "$TEST_HOME" && pwd)
cd "$ROOT"
COFFRE_SAY_PREFIX="[api-fuzz]"
# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/services.sh"

SCHEMATHESIS_VERSION=4.32.5 # the version this script was checked with
EXAMPLES=${COFFRE_FUZZ_EXAMPLES:-25}
SEED=${COFFRE_FUZZ_SEED:-20261123}
# Every check but positive_data_acceptance: the document declares every body field and
# query parameter, but JSON Schema cannot say all a handler checks (an age recipient's
# bech32 checksum, a password's strength), so some schema-valid bodies are rightly
# refused with 400.
CHECKS=${COFFRE_FUZZ_CHECKS:-all}
EXCLUDE_CHECKS=${COFFRE_FUZZ_EXCLUDE_CHECKS-positive_data_acceptance}
VENV=$TEST_HOME/fuzz-venv
WS=$TEST_HOME/api-fuzz
HELPER=$ROOT/tests/api-fuzz/fuzz_helper.py
BIN=${COFFRE_BIN:-$ROOT/target/debug/coffre}
ADMIN=fuzz-admin
SERVE_PID=

# stop_serve: SIGTERM, then waits (SIGKILL after 30 s); sets SERVE_RC to its exit code.
SERVE_RC=
stop_serve() {
    [[ -n $SERVE_PID ]] || return 0
    local i
    kill -TERM "$SERVE_PID" 2>/dev/null
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        coffre_warn "coffre serve (pid $SERVE_PID) still running 30 s after SIGTERM: SIGKILL"
        kill -KILL "$SERVE_PID" 2>/dev/null
    fi
    SERVE_RC=0
    wait "$SERVE_PID" 2>/dev/null || SERVE_RC=$?
    SERVE_PID=
}

on_exit() {
    local rc=$?
    set +e
    stop_serve
    if ((rc != 0)) && [[ -s $WS/serve.log ]]; then
        echo "---- last lines of $WS/serve.log"
        tail -n 40 "$WS/serve.log"
    fi
    if ((rc == 0)); then coffre_say "OK"; else coffre_say "FAILED (exit $rc); workspace: $WS"; fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. schemathesis, in its own venv.
mkdir -p "$TEST_HOME/logs"
COFFRE_SVC_LOGS=$TEST_HOME/logs # where coffre_apt_install logs, if python3-venv is missing
COFFRE_APT_UPDATED=0
coffre_ensure_python_venv
PIPLOG=$TEST_HOME/logs/fuzz-pip.log
if [[ $("$VENV/bin/st" --version 2>/dev/null) != "st, version $SCHEMATHESIS_VERSION" ]]; then
    coffre_say "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV (log: $PIPLOG)"
    if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        rm -rf "$VENV"
        python3 -m venv "$VENV" >>"$PIPLOG" 2>&1 || { tail -n 20 "$PIPLOG" >&2; coffre_die "python3 -m venv failed"; }
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" >>"$PIPLOG" 2>&1 ||
        { tail -n 20 "$PIPLOG" >&2; coffre_die "pip install schemathesis failed (log: $PIPLOG)"; }
fi
ST=$VENV/bin/st
PY=$VENV/bin/python

# 2. coffre and a throwaway workspace.
if [[ ! -x $BIN ]]; then
    coffre_say "cargo build (no $BIN)"
    cargo build --quiet
fi
rm -rf "$WS"
mkdir -p "$WS"
cd "$WS"
RECIPIENT=$("$BIN" keygen --out identity.txt --json | "$PY" "$HELPER" json-field recipient)
"$BIN" keygen --secret integrity.key >/dev/null 2>&1 || coffre_die "coffre keygen --secret failed"
"$PY" "$HELPER" make-db lite.db
read -r SERVICE_PORT API_PORT < <("$PY" "$HELPER" free-ports 2)
cat >coffre.toml <<EOF
state_dir = "state"

[integrity]
key_file = "integrity.key"

[encryption]
recipients = ["$RECIPIENT"]
identity_file = "identity.txt"

[service]
listen = "127.0.0.1:$SERVICE_PORT"
shutdown_grace_secs = 10

[api]
listen = "127.0.0.1:$API_PORT"
session_minutes = 120

[targets.local]
type = "fs"
path = "backups"

[sources.lite]
type = "sqlite"
path = "lite.db"
targets = ["local"]
policy = "lite-policy.toml"

[drills.lite]
assertions = ["SELECT count(*) BETWEEN 1 AND 20 FROM t"]
EOF
# The policy of lite: its erasure rules let the fuzzer record erasures that the drills
# and copies it triggers then apply.
cat >lite-policy.toml <<'EOF'
locale = "en"

[tables."main.t"]
id = "keep"
name = "first_name"
amount = "keep"

[erasure]
subject = "main.t.id"

[erasure.tables]
"main.t" = { match = "id", action = "delete" }
EOF
check=$("$BIN" --config coffre.toml config check 2>&1) || { echo "$check"; coffre_die "the generated config does not load"; }

# 3. The first admin, the service, the data.
"$PY" "$HELPER" password >admin.password.tmp
chmod 600 admin.password.tmp
mv admin.password.tmp admin.password
echo "$ADMIN" >admin.name
"$BIN" --config coffre.toml user create-admin "$ADMIN" --password-stdin --json <admin.password >admin.json
chmod 600 admin.json
"$PY" "$HELPER" json-field totp_secret <admin.json >admin.totp
chmod 600 admin.totp

coffre_say "coffre serve (service 127.0.0.1:$SERVICE_PORT, api 127.0.0.1:$API_PORT, log: $WS/serve.log)"
"$BIN" --config coffre.toml serve >/dev/null 2>serve.log &
SERVE_PID=$!
for ((i = 0; ; i++)); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SERVICE_PORT/readyz" || true) == 200 ]]; then
        break
    fi
    kill -0 "$SERVE_PID" 2>/dev/null || { wait "$SERVE_PID" || true; SERVE_PID=; coffre_die "coffre serve exited"; }
    ((i < 600)) || coffre_die "coffre serve not ready within 60 s"
    sleep 0.1
done
BASE=http://127.0.0.1:$API_PORT
"$PY" "$HELPER" prepare "$BASE" "$WS"

# 4. schemathesis.
SCHEMA=$BASE/api/v1/openapi.json
common=(
    --checks "$CHECKS"
    --max-examples "$EXAMPLES" --seed "$SEED"
    --workers 1 --generation-database none
    --request-timeout 40 --max-failures 50
    --no-color --output-truncate false
)
[[ -z $EXCLUDE_CHECKS ]] || common+=(--exclude-checks "$EXCLUDE_CHECKS")
# Run from the workspace: nothing (.hypothesis, reports) lands in the repository.
fuzz_pass() { # NAME TOKEN-FILE ST-ARGS...
    local name=$1 token
    token=$(<"$2")
    shift 2
    coffre_say "schemathesis $SCHEMATHESIS_VERSION, pass $name: st --config-file tests/api-fuzz/schemathesis.toml run $SCHEMA ${common[*]} $* (report: $WS/report-$name)"
    "$ST" --config-file "$ROOT/tests/api-fuzz/schemathesis.toml" run "$SCHEMA" -H "Authorization: Bearer $token" "${common[@]}" \
        --report junit,har --report-dir "$WS/report-$name" "$@"
}
status=0
fuzz_pass all fuzz.token --exclude-operation-id revoke_token || status=1
fuzz_pass revoke admin.session --include-operation-id revoke_token || status=1
"$PY" "$HELPER" check-token "$BASE" "$WS" || status=1
# The jobs the fuzzing triggered end before the service is stopped, which must exit 0.
"$PY" "$HELPER" settle "$BASE" "$WS" || status=1
stop_serve
if ((SERVE_RC != 0)); then
    coffre_warn "coffre serve exited $SERVE_RC after SIGTERM (expected 0)"
    status=1
fi
if grep -qE '(panicked|API request failed)' serve.log; then
    echo "---- server errors in $WS/serve.log"
    grep -E '(panicked|API request failed)' serve.log | head -n 20
    status=1
fi
((status == 0)) || coffre_die "schemathesis found failures (see above; reports under $WS)"
