#!/usr/bin/env python3
"""Helpers of scripts/api-fuzz.sh (standard library only).

    fuzz_helper.py free-ports N             N distinct free TCP ports on 127.0.0.1
    fuzz_helper.py make-db PATH             a small SQLite database (one table, a few rows)
    fuzz_helper.py password                 a strong random password (coffre's policy)
    fuzz_helper.py json-field FIELD         reads JSON on stdin, prints one top-level field
    fuzz_helper.py prepare BASE WORKDIR     logs the admin in (TOTP), creates the fuzz API
                                            token, users of every other role, a backup and a
                                            drill; writes WORKDIR/fuzz.token
                                            and the session token WORKDIR/admin.session
    fuzz_helper.py check-token BASE WORKDIR the fuzz token still answers GET /api/v1/me
    fuzz_helper.py settle BASE WORKDIR      waits until no job runs; prints their tally

BASE is the API's origin (http://127.0.0.1:PORT). `prepare` reads the admin's name,
password and TOTP secret from WORKDIR/admin.name, admin.password and admin.totp.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import sqlite3
import struct
import sys
import time
import urllib.error
import urllib.request


def die(msg):
    print(f"[api-fuzz] ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps) ----

def totp_at(secret_b32, unix, step=30, digits=6):
    s = secret_b32.strip().replace(" ", "").upper()
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    counter = struct.pack(">Q", int(unix) // step)
    mac = hmac.new(key, counter, hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


# ---- HTTP ----

def call(base, method, path, token=None, body=None, timeout=60):
    data = None
    headers = {"accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        value = raw.decode(errors="replace")
    return status, value


def expect(what, got, want):
    status, value = got
    if status != want:
        die(f"{what}: HTTP {status} (expected {want}): {value}")
    return value


def read(workdir, name):
    with open(os.path.join(workdir, name), encoding="utf-8") as f:
        return f.read().strip()


def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def wait_jobs(base, token, kinds, timeout=120):
    """Waits until a job of each kind has finished; returns the jobs."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = expect("list jobs", call(base, "GET", "/api/v1/jobs", token), 200)["jobs"]
        done = {j.get("kind") for j in jobs if j.get("status") not in (None, "running")}
        if set(kinds) <= done:
            return jobs
        if time.monotonic() > deadline:
            die(f"jobs {kinds} not finished within {timeout} s: {jobs}")
        time.sleep(0.5)


def prepare(base, workdir):
    name = read(workdir, "admin.name")
    password = read(workdir, "admin.password")
    secret = read(workdir, "admin.totp")

    # The one login of the run (a TOTP code is accepted once per 30 s step).
    session = expect(
        "login",
        call(base, "POST", "/api/v1/login", None,
             {"name": name, "password": password, "totp": totp_at(secret, time.time())}),
        200,
    )
    if session.get("must_change_password"):
        die(f"the admin must change its password first: {session}")
    admin = session["token"]
    write_secret(os.path.join(workdir, "admin.session"), admin)

    # A few API tokens first, so that the fuzz token is not the only one to revoke.
    for i in range(3):
        expect("create spare token", call(base, "POST", "/api/v1/tokens", admin,
                                          {"name": f"spare-{i}", "days": 30}), 201)
    fuzz = expect("create fuzz token",
                  call(base, "POST", "/api/v1/tokens", admin, {"name": "fuzz"}), 201)
    write_secret(os.path.join(workdir, "fuzz.token"), fuzz["token"])
    write_secret(os.path.join(workdir, "fuzz.token_id"), str(fuzz["id"]))

    # One user of every other role, so that the user routes list something.
    for role in ("operator", "support", "auditor"):
        expect(f"create {role}", call(base, "POST", "/api/v1/users", admin,
                                      {"name": f"fuzz-{role}", "role": role}), 201)

    # A backup, then a drill of it, so that jobs, drills and backups have data.
    expect("trigger backup", call(base, "POST", "/api/v1/sources/lite/backups", admin), 202)
    wait_jobs(base, admin, ["backup"])
    expect("trigger drill", call(base, "POST", "/api/v1/sources/lite/drills", admin), 202)
    jobs = wait_jobs(base, admin, ["backup", "drill"])
    for j in jobs:
        if j.get("status") != "ok":
            die(f"a setup job did not succeed: {j}")
    drills = expect("list drills", call(base, "GET", "/api/v1/drills", admin), 200)["drills"]
    if not drills:
        die("the drill left no report")
    backups = expect("list backups", call(base, "GET", "/api/v1/backups", admin), 200)
    print(f"[api-fuzz] prepared: fuzz token id {fuzz['id']}, {len(jobs)} jobs, "
          f"{len(drills)} drill report(s), {len(backups['backups'])} backup(s), users "
          f"{[u['name'] for u in expect('list users', call(base, 'GET', '/api/v1/users', admin), 200)['users']]}")


def check_token(base, workdir):
    token = read(workdir, "fuzz.token")
    status, value = call(base, "GET", "/api/v1/me", token)
    if status != 200:
        die(f"the fuzz token no longer works (GET /api/v1/me: HTTP {status} {value}): "
            "the run's later requests were refused, not fuzzed")
    print(f"[api-fuzz] fuzz token still valid ({value.get('user')}, {value.get('role')})")


def settle(base, workdir, timeout=180):
    """Waits until no job runs (the fuzzing triggers backups and drills); prints a tally."""
    token = read(workdir, "admin.session")
    deadline = time.monotonic() + timeout
    while True:
        jobs = expect("list jobs", call(base, "GET", "/api/v1/jobs?limit=1000", token), 200)["jobs"]
        running = [j for j in jobs if j.get("status") == "running"]
        if not running:
            break
        if time.monotonic() > deadline:
            die(f"{len(running)} job(s) still running after {timeout} s: {running}")
        time.sleep(0.5)
    tally = {}
    for j in jobs:
        key = f"{j.get('kind')} {j.get('status')}"
        tally[key] = tally.get(key, 0) + 1
    print(f"[api-fuzz] jobs after the fuzzing: {dict(sorted(tally.items()))}")


def free_ports(n):
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    print(" ".join(map(str, ports)))


def make_db(path):
    if os.path.exists(path):
        os.remove(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount REAL)")
        conn.executemany("INSERT INTO t (id, name, amount) VALUES (?, ?, ?)",
                         [(i, f"row {i}", i * 1.5) for i in range(1, 21)])
    conn.close()


def password():
    # 3 of 4 classes and more than 12 characters whatever token_urlsafe draws.
    print("Fz-" + secrets.token_urlsafe(18) + "-7q!")


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "free-ports" and len(args) == 1:
        free_ports(int(args[0]))
    elif cmd == "make-db" and len(args) == 1:
        make_db(args[0])
    elif cmd == "password" and not args:
        password()
    elif cmd == "json-field" and len(args) == 1:
        print(json.load(sys.stdin)[args[0]])
    elif cmd == "prepare" and len(args) == 2:
        prepare(*args)
    elif cmd == "check-token" and len(args) == 2:
        check_token(*args)
    elif cmd == "settle" and len(args) == 2:
        settle(*args)
    elif cmd == "totp" and len(args) == 1:  # for debugging: the code of now
        print(totp_at(args[0], time.time()))
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
