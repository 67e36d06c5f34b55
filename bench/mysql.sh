#!/usr/bin/env bash
# MySQL/MariaDB backup benchmark: coffre against the plain tools, on the billing fixture.
#
#   bench/mysql.sh [SCALE]         SCALE = clients of the billing fixture (default 10000)
#
# Measures wall time, MB/s (of the plain dump size) and peak RSS of:
#   a  mariadb-dump DB > /dev/null, with coffre's flags (src/source/mysql.rs)
#   b  mariadb-dump DB | zstd -1 | age -r RECIPIENT > file (zstd at coffre's default level)
#   c  coffre backup to an fs target
#   d  coffre restore (of c's backup) into a new database
#   e  coffre backup --anonymize (policies/billing.toml, its "public." tables renamed to
#      the database's) to the fs target
#   f  mariadb DB < plain.sql into a new database (the plain counterpart of d)
# then each case's wall time and peak RSS as a ratio of a's, and c/b, d/f, e/c.
# Prints a table and writes target/bench/mysql-SCALE.json.
#
# The server: COFFRE_TEST_MYSQL_URL if set (mysql://user[:password]@host:port[?socket=PATH],
# its database part ignored), else root with no password on 127.0.0.1:3306 if it answers,
# else a throwaway MariaDB (scripts/lib/services.sh; it keeps its data between runs).
# The source database coffre_bench_SCALE is kept for the next run, and loaded again
# (`coffre fixture`) when it is missing or its row counts differ from those of its last
# complete load; the restore targets are dropped.
#
# Knobs (environment):
#   COFFRE_BENCH_CASES=a,b,f   run only these cases (default a,b,c,d,e,f; d needs c)
#   COFFRE_BIN=PATH            use this coffre binary instead of `cargo build --release`
#   COFFRE_BENCH_KEEP=1        keep the dumps and backups of the run (target/bench/mysql-run-SCALE)
#   COFFRE_TEST_MYSQL_URL      the server (see above)
#   COFFRE_TEST_MYSQL=throwaway, COFFRE_MYSQL_PORT (default 33079 here): see scripts/lib/services.sh
set -euo pipefail

SCALE=${1:-10000}
if [[ ! $SCALE =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bench/mysql.sh [SCALE]   (SCALE: a positive integer, default 10000)" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
COFFRE_SAY_PREFIX="[bench-mysql]"
# shellcheck source=../scripts/lib/services.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/services.sh"

CASES=${COFFRE_BENCH_CASES:-a,b,c,d,e,f}
has() { [[ ,$CASES, == *,$1,* ]]; }
for c in ${CASES//,/ }; do
    [[ $c == [abcdef] ]] || coffre_die "unknown case '$c' in COFFRE_BENCH_CASES (cases: a,b,c,d,e,f)"
done
if has d && ! has c; then coffre_die "case d restores the backup of case c: add c to COFFRE_BENCH_CASES"; fi

BENCH=$ROOT/target/bench
DIR=$BENCH/mysql-run-$SCALE
OUT_JSON=$BENCH/mysql-$SCALE.json
# The row counts (and object counts) of the last complete load of the source database.
LOADED=$BENCH/mysql-$SCALE.loaded
# A port apart from scripts/test.sh's; the throwaway server (if any) keeps its data so
# that the source database is reused.
COFFRE_MYSQL_PORT=${COFFRE_MYSQL_PORT:-33079}
COFFRE_MYSQL_KEEP_DATA=1
coffre_svc_init "$BENCH/env" "${COFFRE_TEST_HOME:-$ROOT/target/test-env}"

SRC_DB=coffre_bench_$SCALE
RESTORE_DB=coffre_bench_${SCALE}_restore
PLAIN_DB=coffre_bench_${SCALE}_plain
SERVER_UP=0

# The flags coffre gives mariadb-dump (src/source/mysql.rs, with events = true): keep in step.
DUMP_FLAGS=(--single-transaction --quick --routines --triggers --hex-blob --complete-insert
    --skip-dump-date --no-tablespaces --default-character-set=utf8mb4
    --net-buffer-length=1048576 --max-allowed-packet=1073741824 --events)

# my_sql [DB] SQL: runs SQL on the server; rows tab-separated, no header.
my_sql() {
    local use_db=()
    if (($# == 2)); then
        use_db=("--database=$1")
        shift
    fi
    "$MY_CLIENT" "${MY_CONN[@]}" --batch --skip-column-names --default-character-set=utf8mb4 \
        "${use_db[@]}" -e "$1" </dev/null
}
drop_db() { my_sql "DROP DATABASE IF EXISTS \`$1\`" >/dev/null; }
create_db() { my_sql "CREATE DATABASE \`$1\` CHARACTER SET utf8mb4" >/dev/null; }
db_exists() { [[ $(my_sql "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '$1'") == 1 ]]; }
db_url() { echo "$URL_BASE/$1$URL_QUERY"; }              # with the password, if any
db_url_nopw() { echo "$URL_BASE_NOPW/$1$URL_QUERY"; }    # for the config and restore --to

on_exit() {
    local rc=$?
    set +e
    if ((SERVER_UP)); then
        drop_db "$RESTORE_DB" 2>/dev/null
        drop_db "$PLAIN_DB" 2>/dev/null
    fi
    coffre_svc_stop_all
    if [[ -n ${MY_DEFAULTS:-} ]]; then rm -f "$MY_DEFAULTS"; fi
    if [[ ${COFFRE_BENCH_KEEP:-0} != 1 && -d $DIR ]]; then
        rm -rf "$DIR/plain.sql" "$DIR/b.sql.zst.age" "$DIR/fs" "$DIR/state"
    fi
    rm -rf "${DIR:?}/mysql.pass" "${DIR:?}/home" # the password, if any
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
coffre_ensure_cmds age:age age-keygen:age zstd:zstd /usr/bin/time:time
command -v python3 >/dev/null 2>&1 || coffre_apt_install python3
if [[ -n ${COFFRE_TEST_MYSQL_URL:-} ]]; then
    coffre_ensure_mysql_client
    SERVER_URL=$COFFRE_TEST_MYSQL_URL
else
    coffre_mysql_up
    SERVER_URL=$COFFRE_TEST_MYSQL_URL
fi
MY_CLIENT=$COFFRE_MYSQL_CLIENT
MY_DUMP=$COFFRE_MYSQL_DUMP

# The URL's parts: user, password, host, port, socket; the URL without its database, with
# and without the password; its ?query.
mapfile -t URL_PARTS < <(python3 - "$SERVER_URL" <<'PY'
import sys
from urllib.parse import parse_qs, unquote, urlsplit
u = urlsplit(sys.argv[1])
if u.scheme not in ("mysql", "mariadb"):
    sys.exit(f"not a mysql:// URL: {u.scheme}://...")
socket = parse_qs(u.query).get("socket", [""])[0]
host = u.netloc.rsplit("@", 1)[-1]
user = u.netloc.rsplit("@", 1)[0].split(":", 1)[0] if "@" in u.netloc else ""
password = unquote(u.password or "")
if "\n" in password:
    sys.exit("a password with a newline is not supported here")
print(unquote(u.username or ""))
print(password)
print(u.hostname or "")
print(u.port or "")
print(socket)
print(f"{u.scheme}://{u.netloc}")
print(f"{u.scheme}://{user + '@' if user else ''}{host}")
print(f"?{u.query}" if u.query else "")
PY
) || coffre_die "bad server URL"
((${#URL_PARTS[@]} == 8)) || coffre_die "bad server URL"
MY_USER=${URL_PARTS[0]} MY_PASSWORD=${URL_PARTS[1]} MY_HOST=${URL_PARTS[2]} MY_PORT=${URL_PARTS[3]}
MY_SOCKET=${URL_PARTS[4]} URL_BASE=${URL_PARTS[5]} URL_BASE_NOPW=${URL_PARTS[6]} URL_QUERY=${URL_PARTS[7]}
REDACTED_URL=$URL_BASE_NOPW$URL_QUERY
# Connection options of the plain tools; a password goes in an option file, as coffre does.
MY_CONN=()
MY_DEFAULTS=
RESTORE_ENV=()
if [[ -n $MY_PASSWORD ]]; then
    MY_DEFAULTS=$DIR/my.cnf
    (umask 077 && python3 -c 'import sys; p = sys.argv[1].replace("\\", "\\\\").replace("\"", "\\\""); print(f"[client]\npassword=\"{p}\"")' \
        "$MY_PASSWORD" >"$MY_DEFAULTS")
    MY_CONN+=("--defaults-extra-file=$MY_DEFAULTS") # must come first
    (umask 077 && printf '%s' "$MY_PASSWORD" >"$DIR/mysql.pass")
    # `coffre restore --to` takes no password: its client finds it in ~/.my.cnf (case d).
    mkdir -p "$DIR/home"
    cp -p "$MY_DEFAULTS" "$DIR/home/.my.cnf"
    RESTORE_ENV=(env "HOME=$DIR/home")
fi
if [[ -n $MY_HOST ]]; then MY_CONN+=("--host=$MY_HOST"); fi
if [[ -n $MY_PORT ]]; then MY_CONN+=("--port=$MY_PORT"); fi
if [[ -n $MY_USER ]]; then MY_CONN+=("--user=$MY_USER"); fi
if [[ -n $MY_SOCKET ]]; then MY_CONN+=("--socket=$MY_SOCKET"); fi
my_sql 'SELECT 1' >/dev/null 2>"$LOGS/connect.log" ||
    { cat "$LOGS/connect.log" >&2; coffre_die "cannot connect to $REDACTED_URL"; }
SERVER_UP=1
coffre_say "server: $REDACTED_URL ($(my_sql 'SELECT VERSION()'))"
SRC_URL=$(db_url "$SRC_DB")

# What a complete load leaves: every base table's row count, and the numbers of views,
# routines, triggers and events.
db_signature() {
    local db=$1 t
    my_sql "SELECT table_name FROM information_schema.tables
            WHERE table_schema = '$db' AND table_type = 'BASE TABLE' ORDER BY 1" |
        while read -r t; do
            printf '%s %s\n' "$t" "$(my_sql "$db" "SELECT COUNT(*) FROM \`$t\`")"
        done
    my_sql "SELECT CONCAT('views ', (SELECT COUNT(*) FROM information_schema.views WHERE table_schema = '$db'),
                          ' routines ', (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = '$db'),
                          ' triggers ', (SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = '$db'),
                          ' events ', (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = '$db'))"
}

need_load=1
if db_exists "$SRC_DB" && [[ -s $LOADED ]]; then
    db_signature "$SRC_DB" >"$DIR/signature.source"
    if cmp -s "$DIR/signature.source" "$LOADED"; then need_load=0; fi
fi

need_coffre=0
if has c || has d || has e || ((need_load)); then need_coffre=1; fi
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

if ((need_load)); then
    if db_exists "$SRC_DB"; then
        coffre_say "database $SRC_DB differs from its last complete load: loading it again"
    fi
    coffre_say "loading the billing fixture, scale $SCALE, into $SRC_DB (log: $LOGS/fixture.log)"
    rm -f "$LOADED"
    drop_db "$SRC_DB"
    create_db "$SRC_DB"
    "$COFFRE" fixture --scale "$SCALE" --to "$SRC_URL" >"$LOGS/fixture.log" 2>&1 ||
        { tail -n 20 "$LOGS/fixture.log" >&2; coffre_die "coffre fixture failed"; }
    # Written only once the load is complete: a half-loaded database is never reused.
    db_signature "$SRC_DB" >"$DIR/signature.source"
    cp "$DIR/signature.source" "$LOADED"
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

# The policy of the PostgreSQL fixture, with MySQL's table names ("database.table").
POLICY=$DIR/billing-mysql.toml
sed -E "s/^\[tables\.\"public\./[tables.\"$SRC_DB./" "$ROOT/policies/billing.toml" >"$POLICY"

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
    for name in fsonly anon; do
        cat <<EOF

[sources.$name]
type = "mysql"
url = "$(db_url_nopw "$SRC_DB")"
targets = ["local"]
mysqldump = "$(command -v "$MY_DUMP")"
mysql = "$(command -v "$MY_CLIENT")"
EOF
        if [[ -n $MY_PASSWORD ]]; then echo "password_file = \"$DIR/mysql.pass\""; fi
        if [[ $name == anon ]]; then echo "policy = \"$POLICY\""; fi
    done
} >"$CFG"
mkdir -p "$DIR/fs" "$DIR/state"
[[ -s $DIR/anon.key ]] || head -c 32 /dev/urandom >"$DIR/anon.key"
[[ -s $DIR/integrity.key ]] || head -c 32 /dev/urandom >"$DIR/integrity.key"

# The plain dump: its size is the MB of every MB/s; it is also f's input (and warms the cache).
coffre_say "$MY_DUMP of $SRC_DB (plain, for size and case f)"
"$MY_DUMP" "${MY_CONN[@]}" "${DUMP_FLAGS[@]}" "$SRC_DB" >"$DIR/plain.sql" 2>"$LOGS/plain.log" ||
    { cat "$LOGS/plain.log" >&2; coffre_die "$MY_DUMP failed"; }
PLAIN_BYTES=$(wc -c <"$DIR/plain.sql")

# ------------------------------------------------------------------ measures
TIME=(/usr/bin/time -f '%e %M')

# A failing case ends the run, with the end of its log.
failed() {
    tail -n 20 "$LOGS/$1.log" >&2
    coffre_die "case $1 failed (log: $LOGS/$1.log)"
}

if has a; then
    coffre_say "a: $MY_DUMP > /dev/null"
    "${TIME[@]}" -o "$DIR/times/a" "$MY_DUMP" "${MY_CONN[@]}" "${DUMP_FLAGS[@]}" "$SRC_DB" \
        >/dev/null 2>"$LOGS/a.log" || failed a
fi

if has b; then
    coffre_say "b: $MY_DUMP | zstd -1 | age > file"
    # Outer time: the wall time of the pipeline; inner ones: each process's peak RSS.
    # shellcheck disable=SC2016 # expanded by the inner bash
    "${TIME[@]}" -o "$DIR/times/b" bash -c '
        set -o pipefail
        T=(/usr/bin/time -f "%e %M")
        d=$1 recipient=$2
        shift 2
        "${T[@]}" -o "$d/times/b.dump" "$@" |
            "${T[@]}" -o "$d/times/b.zstd" zstd -1 -q -c |
            "${T[@]}" -o "$d/times/b.age" age -r "$recipient" >"$d/b.sql.zst.age"
    ' _ "$DIR" "$RECIPIENT" "$MY_DUMP" "${MY_CONN[@]}" "${DUMP_FLAGS[@]}" "$SRC_DB" \
        2>"$LOGS/b.log" || failed b
fi

# The backup id in coffre's --json output (one document, else the last line that is one).
backup_id() {
    python3 -c '
import json, sys
text = sys.stdin.read()
try:
    print(json.loads(text)["id"])
except (ValueError, KeyError):
    for line in reversed(text.splitlines()):
        try:
            print(json.loads(line)["id"])
            break
        except (ValueError, KeyError, TypeError):
            pass
' <"$1"
}

BACKUP_ID=
if has c; then
    coffre_say "c: coffre backup fsonly (fs target)"
    "${TIME[@]}" -o "$DIR/times/c" "$COFFRE" --config "$CFG" backup fsonly --json \
        >"$DIR/c.json" 2>"$LOGS/c.log" || failed c
    BACKUP_ID=$(backup_id "$DIR/c.json") || true
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

if has e; then
    coffre_say "e: coffre backup anon --anonymize ($POLICY, fs target)"
    "${TIME[@]}" -o "$DIR/times/e" "$COFFRE" --config "$CFG" backup anon --anonymize --json \
        >"$DIR/e.json" 2>"$LOGS/e.log" || failed e
fi

if has d || has f; then
    [[ -s $DIR/signature.source ]] || db_signature "$SRC_DB" >"$DIR/signature.source"
fi

if has d; then
    coffre_say "d: coffre restore $BACKUP_ID into $RESTORE_DB"
    drop_db "$RESTORE_DB"
    create_db "$RESTORE_DB" # coffre restores into an existing, empty database
    "${TIME[@]}" -o "$DIR/times/d" "${RESTORE_ENV[@]}" "$COFFRE" --config "$CFG" restore "$BACKUP_ID" \
        --to "$(db_url_nopw "$RESTORE_DB")" --json >"$DIR/d.json" 2>"$LOGS/d.log" || failed d
    db_signature "$RESTORE_DB" >"$DIR/signature.d"
fi

if has f; then
    coffre_say "f: $MY_CLIENT $PLAIN_DB < plain.sql"
    drop_db "$PLAIN_DB"
    create_db "$PLAIN_DB"
    "${TIME[@]}" -o "$DIR/times/f" "$MY_CLIENT" "${MY_CONN[@]}" --binary-mode --batch \
        --default-character-set=utf8mb4 --max-allowed-packet=1073741824 "--database=$PLAIN_DB" \
        <"$DIR/plain.sql" >"$LOGS/f.log" 2>&1 || failed f
    db_signature "$PLAIN_DB" >"$DIR/signature.f"
fi

# ------------------------------------------------------------------- report
VERSIONS=$(
    printf 'server=%s\n' "$(my_sql 'SELECT VERSION()')"
    printf 'dump=%s\n' "$("$MY_DUMP" --version | head -n 1)"
    printf 'zstd=%s\n' "$(zstd -q --version)"
    printf 'age=%s\n' "$(age --version)"
    if [[ -n $COFFRE ]]; then printf 'coffre=%s\n' "$("$COFFRE" --version 2>/dev/null | head -n 1 || echo '?')"; fi
)
python3 - "$DIR" "$SCALE" "$PLAIN_BYTES" "$OUT_JSON" "$CASES" "$VERSIONS" "$(nproc)" "$MY_DUMP" "$MY_CLIENT" "$REDACTED_URL" <<'PY'
import json, os, sys, time

d, scale, plain_bytes, out_json, cases, versions, nproc, dump, client, server = sys.argv[1:11]
scale, plain_bytes = int(scale), int(plain_bytes)
cases = cases.split(",")
labels = {
    "a": f"{dump} > /dev/null",
    "b": f"{dump} | zstd -1 | age > file",
    "c": "coffre backup -> fs",
    "d": "coffre restore -> new db",
    "e": "coffre backup --anonymize -> fs",
    "f": f"{client} < plain.sql -> new db",
}

def read_time(path):
    # GNU time may write "Command exited with non-zero status" first: the last line counts.
    with open(path) as f:
        wall, kib = f.read().strip().splitlines()[-1].split()
    return float(wall), int(kib)

def mib(kib):
    return round(kib / 1024, 1)

def coffre_json(case):
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

def signature(name):
    path = os.path.join(d, "signature." + name)
    return open(path).read() if os.path.exists(path) else None

results = {}
for c in "abcdef":
    if c not in cases:
        continue
    wall, kib = read_time(os.path.join(d, "times", c))
    r = {"what": labels[c], "wall_s": wall,
         "mb_per_s": round(plain_bytes / 1e6 / wall, 1) if wall > 0 else None,
         "peak_rss_mib": mib(kib)}
    if c == "b":
        parts = {p: read_time(os.path.join(d, "times", "b." + p)) for p in ("dump", "zstd", "age")}
        r["processes"] = {p: {"wall_s": w, "peak_rss_mib": mib(k)} for p, (w, k) in parts.items()}
        r["peak_rss_mib"] = max(v["peak_rss_mib"] for v in r["processes"].values())
        r["output_bytes"] = os.path.getsize(os.path.join(d, "b.sql.zst.age"))
    if c in ("c", "d", "e"):
        r["coffre"] = coffre_json(c)
    anon = os.path.join(d, "times", c + ".anon")
    if os.path.exists(anon):
        r["peak_anon_rss_mib"] = mib(int(open(anon).read().strip() or 0))
    if c == "e" and r["coffre"] and wall > 0:
        r["rows_per_s"] = round(r["coffre"].get("rows", 0) / wall)
    if c in ("d", "f"):
        r["counts_match_source"] = signature(c) == signature("source")
    results[c] = r

def ratio(x, y):
    if x in results and y in results and results[y]["wall_s"] > 0:
        return {"wall": round(results[x]["wall_s"] / results[y]["wall_s"], 2),
                "peak_rss": round(results[x]["peak_rss_mib"] / results[y]["peak_rss_mib"], 2)
                if results[y]["peak_rss_mib"] > 0 else None}
    return None

ratios = {f"{c}/a": ratio(c, "a") for c in "bcdef" if c in results}
ratios.update({"c/b": ratio("c", "b"), "d/f": ratio("d", "f"), "e/c": ratio("e", "c")})
report = {
    "engine": "mysql",
    "server": server,
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

def fmt_ratio(v, key):
    return "-" if not v or v[key] is None else f"{v[key]:.2f}"

print()
print(f"mysql bench, scale {scale}: plain dump {plain_bytes / 1e6:.1f} MB, {nproc} cores, {server}")
print(f"{'':3}{'case':<36}{'wall s':>9}{'MB/s':>9}{'peak RSS MiB':>14}{'wall/a':>8}{'RSS/a':>7}")
for c, r in results.items():
    mbs = "-" if r["mb_per_s"] is None else f"{r['mb_per_s']:.1f}"
    v = ratio(c, "a")
    print(f"{c:3}{r['what']:<36}{r['wall_s']:>9.2f}{mbs:>9}{r['peak_rss_mib']:>14.1f}"
          f"{fmt_ratio(v, 'wall'):>8}{fmt_ratio(v, 'peak_rss'):>7}")
if "e" in results and "rows_per_s" in results["e"]:
    print(f"anonymized backup: {results['e']['rows_per_s']} rows/s")
if "c" in results and "peak_anon_rss_mib" in results["c"]:
    print(f"coffre backup -> fs: peak anonymous memory {results['c']['peak_anon_rss_mib']} MiB "
          "(heap and stacks; peak RSS above also counts the executable's code pages)")
for c in ("d", "f"):
    if c in results and not results[c]["counts_match_source"]:
        print(f"WARNING: row or object counts after {c} differ from the source (see {d}/signature.*)")
line = [f"{k} {fmt_ratio(v, 'wall')} (RSS {fmt_ratio(v, 'peak_rss')})" for k, v in ratios.items()
        if k in ("c/b", "d/f", "e/c") and v]
if line:
    print("ratios (wall time, RSS in brackets): " + ", ".join(line))
print(f"written: {out_json}")
PY
