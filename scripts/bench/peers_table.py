#!/usr/bin/env python3
"""Prints scripts/bench-peers' one markdown table from its results (JSON lines).

usage: peers_table.py RESULTS_JSONL
Each figure is the median over the rounds with the range in brackets; the last column is the
ratio of auto-ssl's median to each peer's (above 1: auto-ssl has more of it).
"""
import json
import statistics
import sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
machine = next(r for r in records if r["kind"] == "machine")
servers = ["ours", "cfssl", "cfssldb"]
sign = {s: [r for r in records if r["kind"] == "sign" and r["server"] == s] for s in servers}
rounds = max((len(v) for v in sign.values()), default=0)


def summary(values, fmt):
    if not values:
        return "—", None
    median = statistics.median(values)
    text = fmt(median)
    if len(values) > 1:
        text += f" ({fmt(min(values))}–{fmt(max(values))})"
    return text, median


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


rows = []


def row(label, per_server, fmt):
    cells, medians = [], []
    for s in servers:
        text, median = summary(per_server.get(s, []), fmt)
        cells.append(text)
        medians.append(median)
    rows.append(f"| {label} | " + " | ".join(cells) + " | " + " / ".join(ratio(medians[0], m) for m in medians[1:]) + " |")


def per_run(f):
    return {s: [f(r) for r in runs] for s, runs in sign.items()}


def number(x):
    return f"{x:,.0f}"


row("`/sign` throughput, certificates/s (wrk -t2 -c16)", per_run(lambda r: r["wrk"]["rps"]), number)
row("`/sign` p50 latency, ms", per_run(lambda r: r["wrk"]["p50_us"] / 1000), lambda x: f"{x:.1f}")
row("`/sign` p99 latency, ms", per_run(lambda r: r["wrk"]["p99_us"] / 1000), lambda x: f"{x:.1f}")
row("server CPU per certificate, µs", per_run(lambda r: r["cpu_s"] * 1e6 / max(r["wrk"]["ok"], 1)), number)
def wrk_us(r):
    return r["wrk_cpu_s"] * 1e6 / max(r["wrk"]["requests"], 1)


row("wrk's own CPU per request, µs", per_run(wrk_us), number)
failures = {s: sum(r["wrk"]["bad"] + r["wrk"]["socket_errors"] for r in runs) for s, runs in sign.items()}
answered = {s: sum(r["wrk"]["ok"] for r in runs) for s, runs in sign.items()}
rows.append("| other answers or socket errors / certificates answered, all rounds | "
            + " | ".join(f"{failures[s]} / {answered[s]:,}" for s in servers) + " | — |")
rows.append("| database rows added minus certificates answered, per round | "
            + " | ".join(", ".join(f"+{r['rows'] - r['wrk']['ok']}" for r in sign[s])
                         if sign[s] and sign[s][0]["has_db"] else "no database" for s in servers) + " | — |")

acme = {}
for r in records:
    if r["kind"] == "acme":
        acme.setdefault(r["server"], []).append(r)
if acme:
    # The ACME peer (Caddy's acme_server) takes the cfssl column's place in these rows.
    def acme_row(label, f, fmt):
        ours = [f(r) for r in acme.get("ours", [])]
        caddy = [f(r) for r in acme.get("caddy", [])]
        a, ma = summary(ours, fmt)
        c, mc = summary(caddy, fmt)
        rows.append(f"| {label} | {a} | Caddy acme_server: {c} | — | {ratio(ma, mc)} |")
    acme_row("ACME full issuance (4 clients, http-01), certificates/s", lambda r: r["ok"] / r["seconds"], lambda x: f"{x:.1f}")
    acme_row("ACME server CPU per certificate, ms", lambda r: r["cpu_s"] * 1000 / max(r["ok"], 1), lambda x: f"{x:.1f}")
    rows.append("| ACME failures / certificates, all rounds | "
                f"{sum(r['failed'] for r in acme.get('ours', []))} / {sum(r['ok'] for r in acme.get('ours', [])):,} | "
                f"Caddy acme_server: {sum(r['failed'] for r in acme.get('caddy', []))} / {sum(r['ok'] for r in acme.get('caddy', [])):,} | — | — |")
    rss = {(r["kind"], r["server"]): r["kib"] / 1024 for r in records if r["kind"].startswith("rss_")}
    if ("rss_idle", "caddy") in rss:
        rows.append(f"| RSS after start / peak after the loads, MiB | {rss[('rss_idle', 'ours')]:.0f} / {rss[('rss_peak', 'ours')]:.0f} | "
                    f"Caddy acme_server: {rss[('rss_idle', 'caddy')]:.0f} / {rss[('rss_peak', 'caddy')]:.0f} | — | — |")

for kind, label in [("rss_idle", "RSS after start, MiB"), ("rss_peak", "RSS peak (VmHWM) after the loads, MiB")]:
    row(label, {r["server"]: [r["kib"] / 1024] for r in records if r["kind"] == kind}, lambda x: f"{x:.0f}")
for r in records:
    if r["kind"] == "command":
        rows.append(f"| `{r['command']}`, ms (hyperfine -N, 40 runs: mean ± σ; median) | "
                    f"{r['mean'] * 1000:.1f} ± {r['stddev'] * 1000:.1f}; {r['median'] * 1000:.1f} | — | — | — |")

print(f"\n{machine['date']}, {machine['cores']} cores, load average at start {machine['load']}; "
      f"medians of {rounds} interleaved rounds (range in brackets).\n")
print("| measurement | auto-ssl | cfssl (no database) | cfssl + SQLite certdb | auto-ssl ÷ cfssl / ÷ cfssl+SQLite |")
print("|---|---|---|---|---|")
print("\n".join(rows))

# The CPU budget at 1.3x cfssl's rate (#21 item 1), against the P-256 floor. Both servers are
# CPU-bound on cores they share with wrk, so at a rate R a server has cores / R seconds per
# request minus what wrk spends on it. OpenSSL's one-core figures (the slower of its two runs)
# price the P-256 operations: ours verifies the token and the CSR and signs; cfssl verifies the
# CSR and signs.
p256 = [r for r in records if r["kind"] == "p256"]
if p256 and sign["ours"] and sign["cfssl"]:
    sign_us = max(1e6 / r["sign_per_s"] for r in p256)
    verify_us = max(1e6 / r["verify_per_s"] for r in p256)
    cfssl_rate = statistics.median(r["wrk"]["rps"] for r in sign["cfssl"])
    wrk_ours_us = statistics.median(wrk_us(r) for r in sign["ours"])
    target = 1.3 * cfssl_rate
    budget = machine["cores"] * 1e6 / target - wrk_ours_us
    floor = 2 * verify_us + sign_us
    print(f"\nP-256 on one core (openssl speed, slower of {len(p256)} runs): sign {sign_us:.0f} µs, verify {verify_us:.0f} µs. "
          f"At 1.3× cfssl's median rate ({target:,.0f}/s) on {machine['cores']} cores, with wrk's {wrk_ours_us:.0f} µs per request, "
          f"our server would have {budget:.0f} µs of CPU per certificate; its two verifications and one signature "
          f"take {floor:.0f} µs of it, leaving {budget - floor:.0f} µs for TLS, HTTP, the certificate, the durable row and the audit line.")
