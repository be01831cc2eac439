"""The markdown report printed to stdout."""

from __future__ import annotations

from typing import Any

from .forwardauth import NAME as AUTH_REQUEST

#: The issue's goals.
HTTP_GOAL = 0.85  # coatcheck / bare Flask over HTTP, each store
FLAT = 1.2  # lookup cost at the largest size / the smallest, drift-corrected


def _num(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def _per_1k(count: int, requests: int) -> str:
    value = count * 1000 / requests if requests else 0.0
    return _num(value, 0 if value == int(value) else 1)


def header(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return [
        f"# coatcheck benchmark ({results['mode']})",
        "",
        "| | |",
        "|---|---|",
        f"| date | {m['date']} |",
        f"| machine | nproc {m['nproc']}, {m['cpu']}, load {' '.join(map(str, m['loadavg']))} |",
        f"| Python | {m['python']} ({m['platform']}) |",
        f"| packages | {packages} |",
        f"| Redis | {results.get('redis', 'n/a')} |",
        f"| elapsed | {results.get('elapsed_s', 0):.0f} s |",
    ]


def throughput(results: dict[str, Any], notes: list[str]) -> list[str]:
    if "inprocess" not in results and "http" not in results:
        return []
    out = [
        "",
        "## Authenticated `GET /api/me`",
        "",
        "Medians over the rounds; the apps take turns in every round, and the ratios are the "
        "medians of the per-round ratios (quote those: absolute figures drift on this "
        f"machine). Goal: coatcheck/bare >= {HTTP_GOAL} over HTTP on both stores.",
        "",
        "| store | driver | coatcheck | bare Flask | anchor | coatcheck/bare | "
        "coatcheck/anchor | goal |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for key, label in (("inprocess", "in-process, ops/s"), ("http", "http, req/s")):
        for store, res in results.get(key, {}).items():
            if "error" in res:
                out.append(f"| {store} | {label} | {res['error']} | | | | | |")
                continue
            cells = []
            for name in ("coatcheck", "bare", "anchor"):
                app = res["apps"].get(name, {})
                if "error" in app:
                    notes.append(f"{key}/{store}: {name} unavailable: {app['error']}")
                p99 = f" (p99 {app['p99_ms']:.0f} ms)" if app.get("p99_ms") is not None else ""
                cells.append(_num(app.get("median")) + p99)
                for bad in ("non_200", "non_2xx", "socket_errors"):
                    if app.get(bad):
                        notes.append(
                            f"{key}/{store}: {name} had {app[bad]} {bad.replace('_', ' ')}"
                        )
                if app.get("after_load", 200) != 200:
                    notes.append(f"{key}/{store}: {name} answered {app['after_load']} after load")
            to_bare, to_anchor = res["ratios"]["coatcheck/bare"], res["ratios"]["coatcheck/anchor"]
            goal = (
                _verdict(None if to_bare is None else to_bare >= HTTP_GOAL) if key == "http" else ""
            )
            out.append(
                f"| {store} | {label} | {' | '.join(cells)} | {_num(to_bare, 2)} | "
                f"{_num(to_anchor, 2)} | {goal} |"
            )
    return out


def traffic(results: dict[str, Any], notes: list[str]) -> list[str]:
    if "traffic" not in results:
        return []
    out = [
        "",
        "## Store traffic (in-process, counted at the store)",
        "",
        "Writes: Redis round trips that wrote (a script that writes counts once) and SQLite "
        "INSERT/UPDATE/DELETE statements. Records: Redis keys plus rows in the app's SQLite "
        "files. Goals: writes per 1,000 read-only requests <= sessions x minutes elapsed "
        "(the bound column); 0 records per 1,000 anonymous requests.",
        "",
        "| store | app | writes per 1,000 `GET /api/me` | bound | records per 1,000 anon "
        "`GET /api/csrf` | records per 1,000 anon `GET /` | writes per 1,000 anon | goal |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for store, res in results.get("traffic", {}).items():
        for name in ("coatcheck", "anchor"):
            app = res.get(name) or {"error": res.get("error", "not run")}
            if "error" in app:
                out.append(f"| {store} | {name} | {app['error']} | | | | | |")
                continue
            me, csrf, root = app["me"], app["anon_csrf"], app["anon_root"]
            anon_writes = csrf["writes"] + root["writes"]
            ok = me["writes"] <= me["write_bound"] and csrf["records"] == root["records"] == 0
            goal = _verdict(ok) if name == "coatcheck" else "-"
            out.append(
                f"| {store} | {name} | {_per_1k(me['writes'], me['requests'])} | "
                f"{me['write_bound']} | {_per_1k(csrf['records'], csrf['requests'])} | "
                f"{_per_1k(root['records'], root['requests'])} | "
                f"{_per_1k(anon_writes, csrf['requests'] + root['requests'])} | {goal} |"
            )
            for seg in (me, csrf, root):
                odd = {k: v for k, v in seg["statuses"].items() if not 200 <= int(k) < 300}
                if odd:
                    notes.append(f"traffic/{store}: {name} got statuses {seg['statuses']}")
    return out


#: The SQLite file of coatcheck's user database (benchmarks/apps.py), and of its store.
USER_DB, STORE_DB = "coatcheck.db", "sessions.db"


def forward_auth(results: dict[str, Any], notes: list[str]) -> list[str]:
    """Return the section on ``GET /api/authz/auth-request`` against ``GET /api/me``."""
    if not any(key in results for key in ("inprocess", "http", "traffic")):
        return []
    out = [
        "",
        "## Forward auth: `GET /api/authz/auth-request` (coatcheck)",
        "",
        "nginx's `auth_request` subrequest for `GET https://app.example.com/some/page` "
        "(`X-Original-URL`, `X-Original-Method`) from 127.0.0.1, which "
        "`COATCHECK_TRUSTED_PROXIES=127.0.0.1/32` believes, with the session cookie; five "
        "access rules, the fourth (`one_factor` on `*.example.com`) deciding. It runs beside "
        "authenticated `GET /api/me` on the same app and session, the two taking turns in "
        "every round. The ratio is auth-request req/s over `GET /api/me` req/s, the median "
        "of the per-round ratios (above 1: auth-request is the cheaper).",
        "",
        "| store | driver | auth-request | µs each (1/rate) | `GET /api/me` | "
        "µs each (1/rate) | auth-request/me |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for key, label in (("inprocess", "in-process, ops/s"), ("http", "http, req/s")):
        for store, res in results.get(key, {}).items():
            figures = res.get(AUTH_REQUEST) or {"error": res.get("error", "not run")}
            if "error" in figures:
                out.append(f"| {store} | {label} | {figures['error']} | | | | |")
                continue
            for bad in ("non_2xx", "socket_errors"):
                if figures.get(bad):
                    notes.append(f"{key}/{store}: auth-request had {figures[bad]} {bad}")
            if figures.get("after_load", 200) != 200:
                notes.append(
                    f"{key}/{store}: auth-request answered {figures['after_load']} after load"
                )
            out.append(
                f"| {store} | {label} | {_num(figures['median'])} | {_num(figures['us'], 1)} | "
                f"{_num(figures['me_median'])} | {_num(figures['me_us'], 1)} | "
                f"{_num(figures['ratio'], 2)} |"
            )
    return out + _forward_auth_traffic(results, notes)


def _forward_auth_traffic(results: dict[str, Any], notes: list[str]) -> list[str]:
    if "traffic" not in results:
        return []
    out = [
        "",
        "Store traffic of auth-request, counted as in the store traffic section. Goals: "
        "writes <= sessions x minutes elapsed (the session's last-seen touch, the bound "
        f"column); 0 SQL statements on the user database (`{USER_DB}`). The store column "
        f"counts the store's own round trips: Redis commands, or SQL statements on `{STORE_DB}`.",
        "",
        "| store | writes per 1,000 auth-request | bound | user-database SQL per 1,000 | "
        "store commands per 1,000 | same for 1,000 `GET /api/me`: writes, user SQL, store | "
        "goal |",
        "|---|--:|--:|--:|--:|---|---|",
    ]
    for store, res in results.get("traffic", {}).items():
        app = res.get("coatcheck") or {"error": res.get("error", "not run")}
        authz = app.get(AUTH_REQUEST)
        if "error" in app or authz is None:
            out.append(f"| {store} | {app.get('error', 'not run')} | | | | | |")
            continue
        cells = []
        for segment in (authz, app["me"]):
            n = segment["requests"]
            store_commands = segment.get("redis", {}).get("commands", 0)
            store_commands += segment["sql"].get(STORE_DB, 0)
            cells.append(
                (
                    _per_1k(segment["writes"], n),
                    _per_1k(segment["sql"].get(USER_DB, 0), n),
                    _per_1k(store_commands, n),
                )
            )
        odd = {k: v for k, v in authz["statuses"].items() if int(k) != 200}
        if odd:
            notes.append(f"traffic/{store}: auth-request got statuses {authz['statuses']}")
        ok = authz["writes"] <= authz["write_bound"] and not authz["sql"].get(USER_DB) and not odd
        (writes, user_sql, store_commands), me = cells
        out.append(
            f"| {store} | {writes} | {authz['write_bound']} | {user_sql} | {store_commands} | "
            f"{', '.join(me)} | {_verdict(ok)} |"
        )
    return out


def lookup(results: dict[str, Any]) -> list[str]:
    runs = results.get("lookup", {})
    sizes = sorted({int(s) for res in runs.values() for s in res.get("sizes", {})})
    if not sizes:
        return []
    span = f"{sizes[-1]:,}/{sizes[0]:,}"
    out = [
        "",
        "## `store.get` against the number of stored sessions",
        "",
        "Mean microseconds per `get` (median over rounds). *live (cached)*: the same few "
        "sessions again and again, as an active user's requests (the stores' read caches "
        "answer); *random (uncached)*: distinct stored sessions with the cache emptied first, "
        "each a real lookup. The growth column is the cost at the largest size over the "
        "smallest, each first divided by the cost on a reference "
        f"store of 1,000 records timed in turn (drift-corrected). Goal: flat (<= {FLAT}).",
        "",
        f"| store | keys | {' | '.join(f'{s:,}' for s in sizes)} | growth {span} | goal |",
        "|---|---|" + "--:|" * len(sizes) + "--:|---|",
    ]
    for store, res in runs.items():
        if "error" in res:
            out.append(f"| {store} | | {res['error']} |" + " |" * (len(sizes) + 1))
            continue
        for what in res["growth"]:
            cells = [_num(res["sizes"].get(s, {}).get(what, {}).get("us"), 1) for s in sizes]
            growth = res["growth"][what]
            goal = _verdict(None if growth is None else growth <= FLAT)
            out.append(f"| {store} | {what} | {' | '.join(cells)} | {_num(growth, 2)} | {goal} |")
    return out


def render(results: dict[str, Any]) -> str:
    """Return the whole report as markdown."""
    notes: list[str] = list(results.get("notes", []))
    lines = header(results) + throughput(results, notes) + traffic(results, notes)
    lines += forward_auth(results, notes) + lookup(results)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)
