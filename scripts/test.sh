#!/usr/bin/env bash
# The test command: installs what is missing, starts PostgreSQL, MariaDB and two
# SeaweedFS "regions", then runs cargo fmt --check, clippy and cargo test against them,
# checks the Helm chart offline (scripts/chart-check.sh) and fuzzes the admin API with
# schemathesis (scripts/api-fuzz.sh).
#
#   bash scripts/test.sh [ARGS...]      ARGS go to `cargo test --all-targets`
#
# Works from any directory, as root on a fresh Debian machine (apt, PyPI). Everything it
# makes goes under ${COFFRE_TEST_HOME:-target/test-env}; it stops what it started.
# COFFRE_TEST_PG=throwaway forces a throwaway PostgreSQL cluster even if 127.0.0.1:5432 answers;
# COFFRE_TEST_MYSQL=throwaway a throwaway MariaDB even if root gets in on 127.0.0.1:3306.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_HOME=${COFFRE_TEST_HOME:-$ROOT/target/test-env}
mkdir -p "$TEST_HOME" # a relative COFFRE_TEST_HOME is relative to the caller's directory
TEST_HOME=$(cd "$TEST_HOME" && pwd)
cd "$ROOT"
COFFRE_SAY_PREFIX="[test.sh]"
# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/services.sh"

coffre_svc_init "$TEST_HOME"
export COFFRE_TEST_HOME=$COFFRE_SVC_HOME

on_exit() {
    local rc=$?
    set +e
    coffre_svc_stop_all
    if ((rc != 0)) && [[ ${CI:-} == true ]]; then
        local f
        for f in "$COFFRE_SVC_LOGS"/weed-*.log "$COFFRE_SVC_LOGS"/postgres.log "$COFFRE_SVC_LOGS"/mariadb.log; do
            [[ -s $f ]] || continue
            echo "---- last lines of $f"
            tail -n 15 "$f"
        done
    fi
    coffre_say "logs: $COFFRE_SVC_LOGS"
    if ((rc == 0)); then coffre_say "OK"; else coffre_say "FAILED (exit $rc)"; fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Tools.
coffre_ensure_base_tools
coffre_ensure_weed
# Tests that stop and restart a region start their own SeaweedFS with this binary.
export COFFRE_TEST_WEED_BIN=$COFFRE_WEED
coffre_say "tools: age $(age --version), zstd $(zstd -q --version), sqlite3 $(sqlite3 --version | cut -d' ' -f1), weed $COFFRE_SEAWEEDFS_VERSION"

# 2. PostgreSQL (exports COFFRE_TEST_PG_URL).
coffre_pg_up

# 3. MariaDB (exports COFFRE_TEST_MYSQL_URL).
coffre_mysql_up

# 4. Two S3 regions (exports COFFRE_TEST_S3_ENDPOINTS, _ACCESS_KEY, _SECRET_KEY).
coffre_s3_up

# 5. Shared seed for the cross-check.
if [[ -d $ROOT/../shared/fixtures/billing ]]; then
    COFFRE_TEST_SHARED_FIXTURES=$(cd "$ROOT/../shared/fixtures/billing" && pwd)
    export COFFRE_TEST_SHARED_FIXTURES
    coffre_say "shared fixtures: $COFFRE_TEST_SHARED_FIXTURES (cross-check runs)"
else
    unset COFFRE_TEST_SHARED_FIXTURES
    coffre_say "NOTE: ../shared/fixtures/billing not found: the cross-check against the shared seed is NOT run"
fi

# 6. Checks and tests; the first failure stops the run.
coffre_say "cargo fmt --check"
cargo fmt --check
coffre_say "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
coffre_say "cargo test --all-targets${*:+ $*}"
cargo test --all-targets "$@"

# 7. The Helm chart, offline (Helm SDK, kubernetes-validate --strict, yamllint), then every
#    config.toml it renders loaded by the coffre just built.
coffre_say "helm chart: bash scripts/chart-check.sh"
rm -rf "$TEST_HOME/chart-render"
bash "$ROOT/scripts/chart-check.sh" --dump "$TEST_HOME/chart-render"
for f in "$TEST_HOME"/chart-render/*/config*.toml; do
    # The default values render a chart, not a usable config (no source yet).
    [[ $f == */defaults/* ]] && continue
    "$ROOT/target/debug/coffre" --config "$f" config check
done

# 8. The admin API fuzzed by schemathesis against the OpenAPI document coffre serves:
#    no 5xx; status codes, response schemas and authentication as documented.
coffre_say "admin API fuzzing: bash scripts/api-fuzz.sh"
bash "$ROOT/scripts/api-fuzz.sh"
