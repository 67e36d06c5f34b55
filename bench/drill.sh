#!/usr/bin/env bash
# Restore-drill benchmark: the RTO of the billing fixture at SCALE clients.
#
#   bench/drill.sh [SCALE]        SCALE = clients of the billing fixture (default 100000)
#
# Loads (or reuses) the PostgreSQL database coffre_bench_SCALE, takes one coffre backup to
# an fs target, then runs `coffre drill` into a scratch database on the same server and
# prints the report's timings: restore (download, SHA-256, age, zstd, psql in one
# transaction, streamed), read-back (counts and checksums of every table), assertions,
# recovery (= the RTO measured), total, and the peak RSS of the drill.
# Writes target/bench/drill-SCALE.json (the drill report plus the peak RSS).
#
# Knobs: COFFRE_BIN=PATH (default: cargo build --release); COFFRE_TEST_PG=throwaway and
# COFFRE_PG_PORT as in scripts/lib/services.sh.
set -euo pipefail

SCALE=${1:-100000}
if [[ ! $SCALE =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bench/drill.sh [SCALE]   (SCALE: a positive integer, default 100000)" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COFFRE_SAY_PREFIX="[bench-drill]"
# shellcheck source=../scripts/lib/services.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/services.sh"

BENCH=$ROOT/target/bench
DIR=$BENCH/drill-run-$SCALE
OUT_JSON=$BENCH/drill-$SCALE.json
COFFRE_PG_PORT=${COFFRE_PG_PORT:-54339}
COFFRE_PG_KEEP_DATA=1
coffre_svc_init "$BENCH/env" "${COFFRE_TEST_HOME:-$ROOT/target/test-env}"
trap 'coffre_svc_stop_all' EXIT

coffre_ensure_base_tools
coffre_pg_up
PG_ADMIN=$COFFRE_TEST_PG_URL
SRC_DB=coffre_bench_$SCALE
SRC_URL=${PG_ADMIN%/*}/$SRC_DB

if [[ -n ${COFFRE_BIN:-} ]]; then
    BIN=$COFFRE_BIN
else
    coffre_say "cargo build --release"
    cargo build --release --quiet
    BIN=$ROOT/target/release/coffre
fi

clients=$(psql -X -A -t -q -w "$SRC_URL" -c "SELECT count(*) FROM clients" 2>/dev/null || true)
if [[ $clients != "$SCALE" ]]; then
    coffre_say "loading the billing fixture at scale $SCALE into $SRC_DB"
    psql -X -q -w "$PG_ADMIN" -c "DROP DATABASE IF EXISTS \"$SRC_DB\"" -c "CREATE DATABASE \"$SRC_DB\""
    "$BIN" fixture --scale "$SCALE" --to "$SRC_URL" >/dev/null
fi

rm -rf "$DIR"
mkdir -p "$DIR"
RECIPIENT=$("$BIN" keygen --json --out "$DIR/identity.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["recipient"])')
"$BIN" keygen --secret "$DIR/integrity.key" 2>/dev/null
cat >"$DIR/coffre.toml" <<TOML
state_dir = "state"
[integrity]
key_file = "integrity.key"
[encryption]
recipients = ["$RECIPIENT"]
identity_file = "identity.txt"
[targets.local]
type = "fs"
path = "store"
[sources.billing]
type = "postgres"
url = "$SRC_URL"
targets = ["local"]
[drills.billing]
scratch_url = "$PG_ADMIN"
rto_seconds = 900
assertions = ["SELECT count(*) = 0 FROM factures WHERE total_ttc < 0", "SELECT count(*) = $SCALE FROM clients"]
TOML

coffre_say "coffre backup (scale $SCALE)"
"$BIN" --config "$DIR/coffre.toml" backup billing --json >"$DIR/backup.json"
coffre_say "coffre drill"
/usr/bin/time -f '%M' -o "$DIR/drill.rss" "$BIN" --config "$DIR/coffre.toml" drill billing --json >"$DIR/drill.json" || {
    coffre_warn "the drill failed:"
    cat "$DIR/drill.json" >&2
    exit 1
}
python3 - "$DIR" "$OUT_JSON" "$SCALE" <<'PY'
import json, sys
d, out, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
backup = json.load(open(f"{d}/backup.json"))
report = json.load(open(f"{d}/drill.json"))
rss_kib = int(open(f"{d}/drill.rss").read().split()[-1])
t = report["timings"]
mb = backup["plaintext_bytes"] / 1e6
print(f"scale {scale}: {mb:.0f} MB of SQL, {report['rows']} rows, {backup['stored_bytes']/1e6:.1f} MB stored")
print(f"  restore     {t['restore_s']:7.2f} s  ({mb / max(t['restore_s'], 1e-9):.1f} MB/s: download, SHA-256, age, zstd, psql)")
print(f"  read-back   {t['verify_s']:7.2f} s  (counts and checksums of {len(report['tables'])} tables)")
print(f"  assertions  {t['assertions_s']:7.2f} s")
print(f"  recovery    {t['recovery_s']:7.2f} s  = RTO measured (rto_seconds {report['rto_seconds']}): {'ok' if report['ok'] else 'FAILED'}")
print(f"  total       {t['total_s']:7.2f} s  (with backup pick, scratch database create and drop)")
print(f"  peak RSS    {rss_kib / 1024:7.1f} MiB")
json.dump({"scale": scale, "plaintext_bytes": backup["plaintext_bytes"], "peak_rss_kib": rss_kib,
           "report": report}, open(out, "w"), indent=2)
PY
