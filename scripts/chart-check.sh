#!/usr/bin/env bash
# Offline check of the Helm chart (charts/coffre): Helm SDK lint and renders, values
# schema (a wrong-type file must be rejected), kubernetes-validate --strict of every
# rendered manifest, yamllint, and the chart's security assertions
# (tests/chart/check_chart.py). No cluster, no helm binary, no cargo.
#
#   bash scripts/chart-check.sh [--chart DIR]
#
# Works from any directory. Installs helm-python-sdk, kubernetes-validate and yamllint
# from PyPI into ${COFFRE_TEST_HOME:-<repo>/target/test-env}/chart-venv (reused when
# present). Exits non-zero if any check fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_HOME=${COFFRE_TEST_HOME:-$ROOT/target/test-env}
mkdir -p "$TEST_HOME" # a relative COFFRE_TEST_HOME is relative to the caller's directory
TEST_HOME=$(cd "$TEST_HOME" && pwd)
VENV=$TEST_HOME/chart-venv
# Pinned (checked with these); the venv is remade when this list changes.
PACKAGES=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 yamllint==1.38.0)

say() { echo "[chart-check] $*" >&2; }

if [[ "$(cat "$VENV/.coffre-packages" 2>/dev/null)" != "${PACKAGES[*]}" ]] ||
    ! "$VENV/bin/python" -c 'import helm_python, kubernetes_validate, yamllint, yaml' \
        >/dev/null 2>&1; then
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        say "python3 cannot make a venv: install python3-venv (apt-get install -y python3-venv)"
        exit 1
    fi
    say "installing ${PACKAGES[*]} into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PACKAGES[@]}"
    echo "${PACKAGES[*]}" >"$VENV/.coffre-packages"
fi

exec "$VENV/bin/python" "$ROOT/tests/chart/check_chart.py" "$@"
