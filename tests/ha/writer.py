#!/usr/bin/env python3
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HA tests' client, run on the lab's witness (in the private network, as an app server is):
writes a numbered row every 50 ms through a libpq multi-host connection string with
target_session_attrs=read-write, and logs every attempt, one line each:

    ack <n> <sent epoch> <acknowledged epoch> <server address>
    err <n> <sent epoch> <failed epoch> <error>

A number is logged as acknowledged only when the commit returned without a warning: PostgreSQL
commits locally and only warns when the wait for the synchronous standby is cancelled, and such a
commit was not acknowledged by the standby. No statement_timeout for the same reason; a dead or cut
off server is left after tcp_user_timeout (5 s) instead.

    writer.py '<libpq dsn>' <table> <log file> <stop file>      (runs until the stop file exists)
"""
import os
import sys
import time

import psycopg2

INTERVAL = 0.05


def main():
    dsn, table, log_path, stop_path = sys.argv[1:5]
    conn = None
    n = 0
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        due = time.monotonic()
        while not os.path.exists(stop_path):
            n += 1
            sent = time.time()
            try:
                if conn is None or conn.closed:
                    conn = psycopg2.connect(dsn)
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute(f"create table if not exists {table} (n int primary key, at timestamptz default clock_timestamp())")
                del conn.notices[:]
                with conn.cursor() as cur:
                    cur.execute(f"insert into {table} (n) values (%s) returning inet_server_addr()::text", (n,))
                    server = cur.fetchone()[0].split("/")[0]
                if any("synchronous replication" in notice for notice in conn.notices):
                    raise RuntimeError("commit not acknowledged by the synchronous standby: " + conn.notices[-1].strip())
                log.write(f"ack {n} {sent:.3f} {time.time():.3f} {server}\n")
            except Exception as exc:  # pylint: disable=broad-except
                message = " ".join(str(exc).split())[:200]
                log.write(f"err {n} {sent:.3f} {time.time():.3f} {type(exc).__name__}: {message}\n")
                try:
                    conn.close()
                except Exception:  # pylint: disable=broad-except
                    pass
                conn = None
            due += INTERVAL
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                due = time.monotonic()


if __name__ == "__main__":
    main()
