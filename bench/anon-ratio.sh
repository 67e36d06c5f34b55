#!/usr/bin/env bash
# The anonymized backup against bare pg_dump, run alternately N times (default 6), with
# medians: single runs on a 2-core machine move by ±0.2 s, which is most of the margin.
#
#   bench/anon-ratio.sh [SCALE] [N]
#
# Needs a run of `bench/backup.sh SCALE` first (its source database and its config in
# target/bench/run-SCALE). COFFRE_BIN as for backup.sh (default target/release/coffre).
set -euo pipefail
SCALE=${1:-100000}
N=${2:-6}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$ROOT/target/bench/run-$SCALE
COFFRE=${COFFRE_BIN:-$ROOT/target/release/coffre}
[[ -f $RUN/coffre.toml ]] || { echo "no $RUN/coffre.toml: run bench/backup.sh $SCALE first" >&2; exit 2; }
[[ -x $COFFRE ]] || { echo "no coffre binary at $COFFRE: cargo build --release, or set COFFRE_BIN" >&2; exit 2; }
URL=$(sed -n 's/^url = "\(postgres:[^"]*\)"/\1/p' "$RUN/coffre.toml" | head -n 1)
now() { date +%s.%N; }
a=() g=()
for _ in $(seq "$N"); do
    s=$(now); pg_dump -d "$URL" > /dev/null; e=$(now); a+=("$(echo "$e - $s" | bc)")
    s=$(now); "$COFFRE" --config "$RUN/coffre.toml" backup anon --anonymize --json > /dev/null
    e=$(now); g+=("$(echo "$e - $s" | bc)")
    rm -rf "$RUN/fs/anon"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ma=$(median "${a[@]}"); mg=$(median "${g[@]}")
echo "a (pg_dump > /dev/null), s: ${a[*]}"
echo "g (coffre backup --anonymize), s: ${g[*]}"
printf 'median a %.2f s, g %.2f s, g/a %.3f\n' "$ma" "$mg" "$(echo "$mg / $ma" | bc -l)"
