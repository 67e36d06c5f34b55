#!/usr/bin/env bash
# Backup benchmark: coffre against the plain tools, on the billing fixture.
#
#   bench/backup.sh [SCALE]        SCALE = clients of the billing fixture (default 10000)
#
# Measures wall time, MB/s (of the plain pg_dump size) and peak RSS of:
#   a  pg_dump DB > /dev/null
#   b  pg_dump DB | zstd -1 | age -r RECIPIENT > file (zstd at coffre's default level)
#   c  coffre backup to an fs target
#   d  coffre backup to one S3 target (d1), then to two (SeaweedFS "regions")
#   e  coffre restore (of c's backup) into a new database
#   f  psql -f plain.sql into a new database
# then the ratios c/b, d/d1 (the cost of a second region), d/c, e/f, g/a.
# Prints a table and writes target/bench/backup-SCALE.json.
#
# Knobs (environment):
#   COFFRE_BENCH_CASES=a,b,f   run only these cases (default a,b,c,d,e,f,g; e needs c)
#   COFFRE_BIN=PATH            use this coffre binary instead of `cargo build --release`
#   COFFRE_BENCH_KEEP=1        keep the dumps and backups of the run (target/bench/run-SCALE)
#   COFFRE_TEST_S3_ENDPOINTS   (with _ACCESS_KEY, _SECRET_KEY) use these S3 servers instead of
#                              starting two SeaweedFS instances
#   COFFRE_TEST_PG=throwaway, COFFRE_PG_PORT, COFFRE_WEED_PORT_BASE: see scripts/lib/services.sh
# The source database coffre_bench_SCALE is kept for the next run; the restore targets are dropped.
set -euo pipefail

SCALE=${1:-10000}
if [[ ! $SCALE =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bench/backup.sh [SCALE]   (SCALE: a positive integer, default 10000)" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COFFRE_SAY_PREFIX="[bench]"
# shellcheck source=../scripts/lib/services.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/services.sh"

CASES=${COFFRE_BENCH_CASES:-a,b,c,d,e,f,g}
has() { [[ ,$CASES, == *,$1,* ]]; }
for c in ${CASES//,/ }; do
    [[ $c == [abcdefg] ]] || coffre_die "unknown case '$c' in COFFRE_BENCH_CASES (cases: a,b,c,d,e,f,g)"
done
if has e && ! has c; then coffre_die "case e restores the backup of case c: add c to COFFRE_BENCH_CASES"; fi

BENCH=$ROOT/target/bench
DIR=$BENCH/run-$SCALE
OUT_JSON=$BENCH/backup-$SCALE.json
# Ports apart from scripts/test.sh's, so that both can run at once; the throwaway
# cluster (if any) keeps its data so that the source database is reused.
COFFRE_WEED_PORT_BASE=${COFFRE_WEED_PORT_BASE:-27350}
COFFRE_PG_PORT=${COFFRE_PG_PORT:-54339}
COFFRE_PG_KEEP_DATA=1
coffre_svc_init "$BENCH/env" "${COFFRE_TEST_HOME:-$ROOT/target/test-env}"

SRC_DB=coffre_bench_$SCALE
RESTORE_DB=coffre_bench_${SCALE}_restore
PLAIN_DB=coffre_bench_${SCALE}_plain
PG_ADMIN=
PG_BASE=

drop_db() { psql -X -q -w "$PG_ADMIN" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$1\"" >/dev/null; }
create_db() { psql -X -q -w "$PG_ADMIN" -c "CREATE DATABASE \"$1\"" >/dev/null; }
db_exists() { [[ $(psql -X -At -w "$PG_ADMIN" -c "SELECT 1 FROM pg_database WHERE datname = '$1'") == 1 ]]; }

on_exit() {
    local rc=$?
    set +e
    if [[ -n $PG_ADMIN ]]; then
        drop_db "$RESTORE_DB" 2>/dev/null
        drop_db "$PLAIN_DB" 2>/dev/null
        drop_db "${SRC_DB}_loading" 2>/dev/null
    fi
    coffre_svc_stop_all
    if [[ ${COFFRE_BENCH_KEEP:-0} != 1 && -d $DIR ]]; then
        rm -rf "$DIR/plain.sql" "$DIR/b.sql.zst.age" "$DIR/fs" "$DIR/state"
    fi
    ((rc == 0)) || coffre_say "FAILED (exit $rc); logs: $DIR/logs, $COFFRE_SVC_LOGS"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$DIR" "$OUT_JSON"
mkdir -p "$DIR/logs" "$DIR/times"
LOGS=$DIR/logs

# --------------------------------------------------------------------- setup
coffre_ensure_cmds age:age age-keygen:age zstd:zstd curl:curl /usr/bin/time:time \
    psql:postgresql-client pg_dump:postgresql-client pg_isready:postgresql-client
command -v python3 >/dev/null 2>&1 || coffre_apt_install python3

coffre_pg_up
PG_ADMIN=$COFFRE_TEST_PG_URL
PG_BASE=${PG_ADMIN%/*}
SRC_URL=$PG_BASE/$SRC_DB

need_coffre=0
if has c || has d || has e || has g || ! db_exists "$SRC_DB"; then need_coffre=1; fi
COFFRE=
if ((need_coffre)); then
    if [[ -n ${COFFRE_BIN:-} ]]; then
        COFFRE=$COFFRE_BIN
    else
        coffre_say "cargo build --release (log: $LOGS/build.log)"
        cargo build --release >"$LOGS/build.log" 2>&1 ||
            { tail -n 30 "$LOGS/build.log" >&2; coffre_die "cargo build --release failed"; }
        COFFRE=$ROOT/target/release/coffre
    fi
    [[ -x $COFFRE ]] || coffre_die "no coffre binary at $COFFRE"
fi

if ! db_exists "$SRC_DB"; then
    coffre_say "loading the billing fixture, scale $SCALE, into $SRC_DB (log: $LOGS/fixture.log)"
    drop_db "${SRC_DB}_loading"
    create_db "${SRC_DB}_loading"
    "$COFFRE" fixture --scale "$SCALE" --to "$PG_BASE/${SRC_DB}_loading" >"$LOGS/fixture.log" 2>&1 ||
        { tail -n 20 "$LOGS/fixture.log" >&2; coffre_die "coffre fixture failed"; }
    # Renamed only once complete: a half-loaded database is never reused.
    psql -X -q -w "$PG_ADMIN" -c "ALTER DATABASE \"${SRC_DB}_loading\" RENAME TO \"$SRC_DB\"" >/dev/null
else
    coffre_say "reusing database $SRC_DB"
fi

# Key: coffre's own when coffre runs, else age-keygen's.
if has c || has d || has e; then
    "$COFFRE" keygen --out "$DIR/identity.txt" --json >"$DIR/keygen.json" 2>"$LOGS/keygen.log" ||
        { cat "$LOGS/keygen.log" >&2; coffre_die "coffre keygen failed"; }
    RECIPIENT=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["recipient"])' <"$DIR/keygen.json")
else
    age-keygen -o "$DIR/identity.txt" 2>/dev/null
    RECIPIENT=$(age-keygen -y "$DIR/identity.txt")
fi
[[ $RECIPIENT == age1* ]] || coffre_die "bad recipient '$RECIPIENT'"

if has d; then
    if [[ -z ${COFFRE_TEST_S3_ENDPOINTS:-} ]]; then
        coffre_ensure_python_venv
        coffre_ensure_weed
        coffre_s3_up
    else
        : "${COFFRE_TEST_S3_ACCESS_KEY:?COFFRE_TEST_S3_ENDPOINTS is set: set COFFRE_TEST_S3_ACCESS_KEY too}"
        : "${COFFRE_TEST_S3_SECRET_KEY:?COFFRE_TEST_S3_ENDPOINTS is set: set COFFRE_TEST_S3_SECRET_KEY too}"
        coffre_say "S3: using $COFFRE_TEST_S3_ENDPOINTS"
    fi
    IFS=, read -r S3_EP1 S3_EP2 _ <<<"$COFFRE_TEST_S3_ENDPOINTS,"
    [[ -n $S3_EP1 && -n $S3_EP2 ]] || coffre_die "COFFRE_TEST_S3_ENDPOINTS must list two endpoints"
    coffre_s3_mkbucket "$S3_EP1" bench-r1 || coffre_die "cannot create bucket bench-r1 on $S3_EP1"
    coffre_s3_mkbucket "$S3_EP2" bench-r2 || coffre_die "cannot create bucket bench-r2 on $S3_EP2"
fi

CFG=$DIR/coffre.toml
{
    cat <<EOF
state_dir = "$DIR/state"

[encryption]
recipients = ["$RECIPIENT"]
identity_file = "$DIR/identity.txt"

[anonymization]
key_file = "$DIR/anon.key"

[integrity]
key_file = "$DIR/integrity.key"

[targets.local]
type = "fs"
path = "$DIR/fs"
EOF
    if has d; then
        for i in 1 2; do
            ep=S3_EP$i
            cat <<EOF

[targets.r$i]
type = "s3"
bucket = "bench-r$i"
endpoint = "${!ep}"
access_key_id_env = "COFFRE_TEST_S3_ACCESS_KEY"
secret_access_key_env = "COFFRE_TEST_S3_SECRET_KEY"
EOF
        done
    fi
    cat <<EOF

[sources.fsonly]
type = "postgres"
url = "$SRC_URL"
targets = ["local"]
EOF
    cat <<EOF

[sources.anon]
type = "postgres"
url = "$SRC_URL"
targets = ["local"]
policy = "$ROOT/policies/billing.toml"
EOF
    if has d; then
        cat <<EOF

[sources.ones3]
type = "postgres"
url = "$SRC_URL"
targets = ["r1"]

[sources.twos3]
type = "postgres"
url = "$SRC_URL"
targets = ["r1", "r2"]
EOF
    fi
} >"$CFG"
mkdir -p "$DIR/fs" "$DIR/state"
[[ -s $DIR/anon.key ]] || head -c 32 /dev/urandom >"$DIR/anon.key"
[[ -s $DIR/integrity.key ]] || head -c 32 /dev/urandom >"$DIR/integrity.key"

# The plain dump: its size is the MB of every MB/s; it is also f's input (and warms the cache).
coffre_say "pg_dump of $SRC_DB (plain, for size and case f)"
pg_dump "$SRC_URL" >"$DIR/plain.sql" 2>"$LOGS/plain.log" ||
    { cat "$LOGS/plain.log" >&2; coffre_die "pg_dump failed"; }
PLAIN_BYTES=$(wc -c <"$DIR/plain.sql")

# ------------------------------------------------------------------ measures
TIME=(/usr/bin/time -f '%e %M')

# A failing case ends the run, with the end of its log.
failed() {
    tail -n 20 "$LOGS/$1.log" >&2
    coffre_die "case $1 failed (log: $LOGS/$1.log)"
}

if has a; then
    coffre_say "a: pg_dump > /dev/null"
    "${TIME[@]}" -o "$DIR/times/a" pg_dump "$SRC_URL" >/dev/null 2>"$LOGS/a.log" || failed a
fi

if has b; then
    coffre_say "b: pg_dump | zstd -1 | age > file"
    # Outer time: the wall time of the pipeline; inner ones: each process's peak RSS.
    # shellcheck disable=SC2016 # expanded by the inner bash
    "${TIME[@]}" -o "$DIR/times/b" bash -c '
        set -o pipefail
        T=(/usr/bin/time -f "%e %M")
        "${T[@]}" -o "$1/times/b.pg_dump" pg_dump "$2" |
            "${T[@]}" -o "$1/times/b.zstd" zstd -1 -q -c |
            "${T[@]}" -o "$1/times/b.age" age -r "$3" >"$1/b.sql.zst.age"
    ' _ "$DIR" "$SRC_URL" "$RECIPIENT" 2>"$LOGS/b.log" || failed b
fi

BACKUP_ID=
if has c; then
    coffre_say "c: coffre backup fsonly (fs target)"
    "${TIME[@]}" -o "$DIR/times/c" "$COFFRE" --config "$CFG" backup fsonly --json \
        >"$DIR/c.json" 2>"$LOGS/c.log" || failed c
    BACKUP_ID=$(python3 -c '
import json, sys
text = sys.stdin.read()
try:
    print(json.loads(text)["id"])
except (ValueError, KeyError):  # not one document: the last line that is one
    for line in reversed(text.splitlines()):
        try:
            print(json.loads(line)["id"])
            break
        except (ValueError, KeyError, TypeError):
            pass
' <"$DIR/c.json") || true
    [[ -n $BACKUP_ID ]] || coffre_die "no backup id in the JSON of case c ($DIR/c.json)"
fi

# Peak anonymous memory (heap and stacks: the data a process holds, without the
# executable's code pages that GNU time's peak RSS also counts), sampled every 20 ms.
peak_anon_kib() {
    local out=$1 pid peak=0 a rc
    shift
    "$@" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        a=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        if [[ -n $a ]] && ((a > peak)); then peak=$a; fi
        sleep 0.02
    done
    wait "$pid" && rc=0 || rc=$?
    echo "$peak" >"$out"
    return "$rc"
}

if has c; then
    coffre_say "c': coffre backup fsonly again, sampling its anonymous memory"
    peak_anon_kib "$DIR/times/c.anon" "$COFFRE" --config "$CFG" backup fsonly --json \
        >/dev/null 2>>"$LOGS/c.log" || failed c
fi

if has d; then
    coffre_say "d1: coffre backup ones3 (one S3 target)"
    "${TIME[@]}" -o "$DIR/times/d1" "$COFFRE" --config "$CFG" backup ones3 --json \
        >"$DIR/d1.json" 2>"$LOGS/d1.log" || failed d1
    coffre_say "d: coffre backup twos3 (two S3 targets)"
    "${TIME[@]}" -o "$DIR/times/d" "$COFFRE" --config "$CFG" backup twos3 --json \
        >"$DIR/d.json" 2>"$LOGS/d.log" || failed d
fi

if has g; then
    coffre_say "g: coffre backup anon --anonymize (policies/billing.toml, fs target)"
    "${TIME[@]}" -o "$DIR/times/g" "$COFFRE" --config "$CFG" backup anon --anonymize --json \
        >"$DIR/g.json" 2>"$LOGS/g.log" || failed g
fi

# Row counts of every table, to check that a restore restored something.
table_counts() {
    local url=$1 t
    psql -X -At -w "$url" -c "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1" |
        while read -r t; do
            printf '%s %s\n' "$t" "$(psql -X -At -w "$url" -c "SELECT count(*) FROM $t")"
        done
}
if has e || has f; then table_counts "$SRC_URL" >"$DIR/counts.source"; fi

if has e; then
    coffre_say "e: coffre restore $BACKUP_ID"
    drop_db "$RESTORE_DB"
    create_db "$RESTORE_DB" # coffre restores into an existing, empty database
    "${TIME[@]}" -o "$DIR/times/e" "$COFFRE" --config "$CFG" restore "$BACKUP_ID" \
        --to "$PG_BASE/$RESTORE_DB" --json >"$DIR/e.json" 2>"$LOGS/e.log" || failed e
    table_counts "$PG_BASE/$RESTORE_DB" >"$DIR/counts.e"
fi

if has f; then
    coffre_say "f: psql -f plain.sql"
    drop_db "$PLAIN_DB"
    create_db "$PLAIN_DB"
    "${TIME[@]}" -o "$DIR/times/f" psql -X -v ON_ERROR_STOP=1 -q -f "$DIR/plain.sql" \
        "$PG_BASE/$PLAIN_DB" >"$LOGS/f.log" 2>&1 || failed f
    table_counts "$PG_BASE/$PLAIN_DB" >"$DIR/counts.f"
fi

# ------------------------------------------------------------------- report
VERSIONS=$(
    printf 'server=%s\n' "$(psql -X -At -w "$PG_ADMIN" -c 'show server_version')"
    printf 'pg_dump=%s\n' "$(pg_dump --version | awk '{print $3}')"
    printf 'zstd=%s\n' "$(zstd -q --version)"
    printf 'age=%s\n' "$(age --version)"
    if [[ -n $COFFRE ]]; then printf 'coffre=%s\n' "$("$COFFRE" --version 2>/dev/null | head -n 1 || echo '?')"; fi
)
python3 - "$DIR" "$SCALE" "$PLAIN_BYTES" "$OUT_JSON" "$CASES" "$VERSIONS" "$(nproc)" <<'PY'
import json, os, sys, time

d, scale, plain_bytes, out_json, cases, versions, nproc = sys.argv[1:8]
scale, plain_bytes = int(scale), int(plain_bytes)
cases = cases.split(",")
labels = {
    "a": "pg_dump > /dev/null",
    "b": "pg_dump | zstd -1 | age > file",
    "c": "coffre backup -> fs",
    "d1": "coffre backup -> 1 x S3",
    "d": "coffre backup -> 2 x S3",
    "e": "coffre restore -> new db",
    "f": "psql -f plain.sql -> new db",
    "g": "coffre backup --anonymize -> fs",
}

def read_time(path):
    # GNU time may write "Command exited with non-zero status" first: the last line counts.
    with open(path) as f:
        wall, kib = f.read().strip().splitlines()[-1].split()
    return float(wall), int(kib)

def mib(kib):
    return round(kib / 1024, 1)

def coffre_json(case):
    # coffre --json prints one (pretty) JSON document on stdout.
    path = os.path.join(d, case + ".json")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    try:
        return json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None

def counts(name):
    path = os.path.join(d, "counts." + name)
    return open(path).read() if os.path.exists(path) else None

results = {}
for c in ["a", "b", "c", "d1", "d", "e", "f", "g"]:
    if c.rstrip("1") not in cases:
        continue
    wall, kib = read_time(os.path.join(d, "times", c))
    r = {"what": labels[c], "wall_s": wall, "mb_per_s": round(plain_bytes / 1e6 / wall, 1) if wall > 0 else None,
         "peak_rss_mib": mib(kib)}
    if c == "b":
        parts = {p: read_time(os.path.join(d, "times", "b." + p)) for p in ("pg_dump", "zstd", "age")}
        r["processes"] = {p: {"wall_s": w, "peak_rss_mib": mib(k)} for p, (w, k) in parts.items()}
        r["peak_rss_mib"] = max(v["peak_rss_mib"] for v in r["processes"].values())
        r["output_bytes"] = os.path.getsize(os.path.join(d, "b.sql.zst.age"))
    if c in ("c", "d1", "d", "e", "g"):
        r["coffre"] = coffre_json(c)
    anon = os.path.join(d, "times", c + ".anon")
    if os.path.exists(anon):
        r["peak_anon_rss_mib"] = mib(int(open(anon).read().strip() or 0))
    if c == "g" and r["coffre"] and wall > 0:
        r["rows_per_s"] = round(r["coffre"].get("rows", 0) / wall)
    if c in ("e", "f"):
        r["row_counts_match_source"] = counts(c) == counts("source")
    results[c] = r

def ratio(x, y):
    if x in results and y in results and results[y]["wall_s"] > 0:
        return {"wall": round(results[x]["wall_s"] / results[y]["wall_s"], 2),
                "peak_rss": round(results[x]["peak_rss_mib"] / results[y]["peak_rss_mib"], 2)
                if results[y]["peak_rss_mib"] > 0 else None}
    return None

ratios = {"c/b": ratio("c", "b"), "d/d1": ratio("d", "d1"), "d/c": ratio("d", "c"),
          "e/f": ratio("e", "f"), "g/a": ratio("g", "a")}
report = {
    "scale": scale,
    "plain_dump_bytes": plain_bytes,
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "cores": int(nproc),
    "versions": dict(l.split("=", 1) for l in versions.splitlines() if "=" in l),
    "units": {"mb_per_s": "plain dump bytes / 1e6 / wall_s", "peak_rss_mib": "MiB (GNU time %M)"},
    "cases": results,
    "ratios": ratios,
}
os.makedirs(os.path.dirname(out_json), exist_ok=True)
with open(out_json, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")

print()
print(f"backup bench, scale {scale}: plain dump {plain_bytes / 1e6:.1f} MB, {nproc} cores")
print(f"{'':3}{'case':<32}{'wall s':>9}{'MB/s':>9}{'peak RSS MiB':>14}")
for c, r in results.items():
    mbs = "-" if r["mb_per_s"] is None else f"{r['mb_per_s']:.1f}"
    print(f"{c:3}{r['what']:<32}{r['wall_s']:>9.2f}{mbs:>9}{r['peak_rss_mib']:>14.1f}")
if "g" in results and "rows_per_s" in results["g"]:
    print(f"anonymized backup: {results['g']['rows_per_s']} rows/s")
if "c" in results and "peak_anon_rss_mib" in results["c"]:
    print(f"coffre backup -> fs: peak anonymous memory {results['c']['peak_anon_rss_mib']} MiB "
          "(heap and stacks; peak RSS above also counts the executable's code pages)")
for c in ("e", "f"):
    if c in results and not results[c]["row_counts_match_source"]:
        print(f"WARNING: row counts after {c} differ from the source (see {d}/counts.*)")
line = []
for k, v in ratios.items():
    line.append(f"{k} {v['wall']:.2f} (RSS {v['peak_rss'] if v['peak_rss'] is not None else '-'})" if v else f"{k} -")
print("ratios (wall time, RSS in brackets): " + ", ".join(line))
print(f"written: {out_json}")
PY
