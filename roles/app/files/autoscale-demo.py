# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo application of autoscale.hetzner (deployed by the app role with app_source: demo).

One request crosses every tier: the load balancer (X-Forwarded-For), a web server (X-Web-Host,
set by the web role's nginx), this app server, and PostgreSQL, where each page view is written
as a row and read back. Without DATABASE_URL (app_database: false) the visits are kept in this
process's memory instead, and the page says so. Python's standard library and Debian's
python3-psycopg2 only.

    GET /            HTML page: this visit, the path it took, the last visits
    GET /api/visit   the same as JSON (writes a row too)
    GET /api/stats   JSON without writing: visits so far, the database server, this app server
    GET /healthz     200 when the database answers (always without a database), 503 otherwise

Environment: DATABASE_URL (libpq URL, several hosts allowed with target_session_attrs=read-write),
LISTEN_ADDRESS, PORT.
"""
import html
import json
import os
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    import psycopg2
    DATABASE_ERRORS = (psycopg2.Error,)
else:                                   # no database: psycopg2 is not needed
    DATABASE_ERRORS = ()

LISTEN_ADDRESS = os.environ.get("LISTEN_ADDRESS", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8080"))
APP_HOST = socket.gethostname()

SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    client inet,
    web_host text,
    app_host text NOT NULL
)"""

_local = threading.local()
_schema_lock = threading.Lock()
_schema_ready = False


def connection():
    """One connection per thread; a broken one (failover, restart of the database) is replaced."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg2.connect(DATABASE_URL, application_name="autoscale-demo")
        conn.autocommit = True
        _local.conn = conn
    return conn


def query(sql, args=(), retry=True):
    global _schema_ready  # pylint: disable=global-statement
    try:
        conn = connection()
        with conn.cursor() as cur:
            if not _schema_ready:
                with _schema_lock:
                    cur.execute(SCHEMA)
                    _schema_ready = True
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        conn = getattr(_local, "conn", None)
        if conn is not None:
            conn.close()
        _local.conn = None
        if retry:
            return query(sql, args, retry=False)
        raise


def database_info():
    (server, version, standby), = query(
        "SELECT coalesce(host(inet_server_addr()), 'local socket'), current_setting('server_version'), pg_is_in_recovery()")
    return {"server": server, "version": version, "in_recovery": standby}


class MemoryVisits:
    """Without a database: the visits this process has seen (gone when it restarts)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rows = []

    def add(self, web_host):
        with self._lock:
            self._rows.append({"id": len(self._rows) + 1, "at": datetime.now(timezone.utc).isoformat(),
                               "web": web_host, "app": APP_HOST})
            return self._rows[-1], len(self._rows), self._rows[:-6:-1]

    def count(self):
        with self._lock:
            return len(self._rows)


MEMORY = MemoryVisits()


def visit(client, web_host):
    if not DATABASE_URL:
        row, count, recent = MEMORY.add(web_host)
        return {"visit": row["id"], "at": row["at"], "visits": count, "client": client, "web": web_host,
                "app": APP_HOST, "database": None, "recent": recent}
    (visit_id, at), = query("INSERT INTO visits (client, web_host, app_host) VALUES (%s, %s, %s) RETURNING id, at",
                            (client, web_host, APP_HOST))
    (count,), = query("SELECT count(*) FROM visits")
    recent = query("SELECT id, at, web_host, app_host FROM visits ORDER BY id DESC LIMIT 5")
    return {
        "visit": visit_id, "at": at.isoformat(), "visits": count, "client": client,
        "web": web_host, "app": APP_HOST, "database": database_info(),
        "recent": [{"id": r[0], "at": r[1].isoformat(), "web": r[2], "app": r[3]} for r in recent],
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>autoscale.hetzner demo</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto}}td,th{{padding:.2em .8em;text-align:left}}</style>
</head><body>
<h1>autoscale.hetzner demo</h1>
<p>Visit <b>#{visit}</b> of <b>{visits}</b>, {stored}.</p>
<p>Path: client {client} &rarr; web <b>{web}</b> &rarr; app <b>{app}</b>{database}</p>
<table><tr><th>#</th><th>at</th><th>web</th><th>app</th></tr>{rows}</table>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "autoscale-demo"
    sys_version = ""
    protocol_version = "HTTP/1.1"       # keep-alive with nginx's upstream connections

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass                                # nginx logs every request already

    def send(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type + "; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        client = (self.headers.get("X-Real-IP") or self.client_address[0]).strip()
        web_host = self.headers.get("X-Web-Host", "")
        try:
            if path == "/healthz":
                if DATABASE_URL:
                    query("SELECT 1")
                self.send(200, "ok\n", "text/plain")
            elif path == "/api/stats":
                if DATABASE_URL:
                    (count,), = query("SELECT count(*) FROM visits")
                    stats = {"visits": count, "app": APP_HOST, "database": database_info()}
                else:
                    stats = {"visits": MEMORY.count(), "app": APP_HOST, "database": None}
                self.send(200, json.dumps(stats))
            elif path == "/api/visit":
                self.send(200, json.dumps(visit(client, web_host)))
            elif path == "/":
                data = visit(client, web_host)
                rows = "".join("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                    r["id"], html.escape(r["at"]), html.escape(r["web"] or "-"), html.escape(r["app"])) for r in data["recent"])
                db = data["database"]
                if db:
                    stored = "written to PostgreSQL and read back"
                    database = " &rarr; database <b>{}</b> (PostgreSQL {}, {})".format(
                        html.escape(db["server"]), html.escape(db["version"]), "standby" if db["in_recovery"] else "primary")
                else:
                    stored = "kept in this app server's memory (no database configured)"
                    database = ""
                self.send(200, PAGE.format(visit=data["visit"], visits=data["visits"], stored=stored,
                                           client=html.escape(client), web=html.escape(web_host or "(direct)"),
                                           app=html.escape(APP_HOST), database=database, rows=rows), "text/html")
            else:
                self.send(404, json.dumps({"error": "not found"}))
        except DATABASE_ERRORS as exc:
            self.send(503, json.dumps({"error": "database unavailable", "detail": str(exc).strip()[:300]}))


def main():
    server = ThreadingHTTPServer((LISTEN_ADDRESS, PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
