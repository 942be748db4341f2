"""Memory and time of the admin users CSV export on a large directory.

Fills a fresh SQLite database with ``--users`` users (straight through the store, no HTTP),
serves it with ``scimbridge serve`` (one worker process, so its memory is one number), logs an
administrator in, and downloads ``/admin/users.csv`` while sampling the resident memory (RSS)
of the serving processes every 20 ms. A streamed export keeps the worker's RSS flat however
many users there are; a list built in memory would grow with them.

    python bench/export_bench.py --users 100000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from pathlib import Path

import requests
from scim2_models import Email
from scim2_models import Name
from scim2_models import User

from scimbridge.service.directory.mapping import document
from scimbridge.service.directory.mapping import user_columns
from scimbridge.store import resources as store
from scimbridge.store.database import Database

PASSWORD = "correct horse battery staple 42"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("scimbridge")), *args]


def fill(url: str, count: int) -> None:
    """Insert ``count`` active users, 2,000 per transaction.

    One user is built through the SCIM model; the others are copies with their number
    substituted (the model's validation would take most of the time, not the inserts).
    """
    template = User(
        user_name="user#@example.com",
        emails=[Email(value="user#@example.com", primary=True, type="work")],
        name=Name(given_name="Given#", family_name="Family#"),
        display_name="Given# Family#",
        active=True,
    )
    doc = document(template)
    doc_text = json.dumps(doc)
    columns = user_columns(doc)
    database = Database(url)
    now = datetime.now(UTC)
    try:
        for start in range(0, count, 2000):
            with database.write() as conn:
                for n in range(start, min(count, start + 2000)):
                    number = f"{n:06d}"
                    numbered = replace(
                        columns,
                        user_name=columns.user_name.replace("#", number),
                        user_name_key=columns.user_name_key.replace("#", number),
                        display_name=(columns.display_name or "").replace("#", number),
                        display_name_key=(columns.display_name_key or "").replace("#", number),
                        emails=[
                            {
                                k: v.replace("#", number) if isinstance(v, str) else v
                                for k, v in row.items()
                            }
                            for row in columns.emails
                        ],
                    )
                    doc = json.loads(doc_text.replace("#", number))
                    store.insert_user(conn, str(uuid.uuid4()), numbered, doc, None, now)
    finally:
        database.dispose()


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) if found else 0


def _tree(pid: int) -> list[int]:
    """Return the process and its children (gunicorn's master and worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [pid, *(p for kid in kids for p in _tree(kid))]


def _log_in(base: str, email: str, temporary: str) -> requests.Session:
    session = requests.Session()
    token = _CSRF.search(session.get(f"{base}/login", timeout=30).text)
    assert token
    answer = session.post(
        f"{base}/login",
        data={"csrf_token": token.group(1), "identifier": email, "password": temporary},
        timeout=30,
    )
    token = _CSRF.search(answer.text)
    assert token, "no password change form after the first login"
    changed = session.post(
        f"{base}/password/change",
        data={
            "csrf_token": token.group(1),
            "current_password": temporary,
            "new_password": PASSWORD,
            "confirmation": PASSWORD,
        },
        timeout=30,
    )
    assert changed.ok, changed.status_code
    return session


def main() -> int:
    """Fill, serve, download; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="scimbridge-export-bench-"))
    url = f"sqlite:///{workdir / 'scimbridge.db'}"
    port = 18000 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SCIMBRIDGE_DATABASE_URL": url,
        "SCIMBRIDGE_PUBLIC_URL": base,
        "SCIMBRIDGE_MAIL__FILE_DIR": str(workdir / "mail"),
    }
    subprocess.run(_command("db", "upgrade"), env=env, check=True, capture_output=True)
    started = time.monotonic()
    fill(url, arguments.users)
    print(f"filled {arguments.users:,} users in {time.monotonic() - started:.1f} s")
    admin = "bench.admin@example.com"
    created = subprocess.run(
        _command("admin", "create", admin), env=env, check=True, capture_output=True, text=True
    )
    temporary = created.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        _command("serve", "--port", str(port), "--workers", "1", "--threads", "2"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=10)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        session = _log_in(base, admin, temporary)
        # One page of the table first, so the worker has loaded what every page needs.
        session.get(f"{base}/admin/", timeout=60).raise_for_status()
        time.sleep(1)
        processes = _tree(server.pid)
        before = {pid: _rss_kib(pid) for pid in processes}
        samples: list[tuple[float, int, dict[int, int]]] = []
        received = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = {pid: _rss_kib(pid) for pid in processes}
                samples.append((time.monotonic(), received[0], rss))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        sampler.start()
        lines = 0
        with session.get(f"{base}/admin/users.csv", stream=True, timeout=600) as response:
            response.raise_for_status()
            for piece in response.iter_content(chunk_size=64 * 1024):
                received[0] += len(piece)
                lines += piece.count(b"\n")
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        print(f"downloaded {received[0] / 1e6:.1f} MB, {lines - 1:,} rows in {elapsed:.1f} s")
        for pid in processes:
            peak = max(rss[pid] for _, _, rss in samples)
            print(
                f"pid {pid}: RSS before {before[pid] / 1024:.1f} MiB, "
                f"peak during {peak / 1024:.1f} MiB"
            )
            for share in (0.1, 0.25, 0.5, 0.75, 1.0):
                at = next((s for s in samples if s[1] >= share * received[0]), samples[-1])
                print(f"  at {share:>4.0%} of the bytes: {at[2][pid] / 1024:.1f} MiB")
        return 0 if lines - 1 == arguments.users + 1 else 1
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
