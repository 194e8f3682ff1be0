#!/usr/bin/python3
"""The metrics lab test's client of finwave's --metrics endpoint (tests/lab/metrics_test.sh).

  metrics_probe.py scrape URL
      Prints the metrics text at URL after checking the status and the content type.
  metrics_probe.py check URL --stats FILE --outcomes FILE --status FILE --ctl FILE
      Scrapes URL once, parses it with Debian's python3-prometheus-client, and compares every
      figure with what finwave said elsewhere: `stats`, the outcome lines, `status`, and
      `finwavectl metrics` (FILE). Exit 1 with every mismatch on stderr.
  metrics_probe.py abuse URL
      Bad input: a malformed request line, a huge header, a slow client sending a byte a
      second (while others scrape), 500 connections at once. Exit 1 when the endpoint does not
      answer each as it should.

Standard library and prometheus_client only; every socket has a deadline.
"""

import argparse
import collections
import json
import resource
import selectors
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

CONTENT_TYPE = "text/plain; version=0.0.4"


def fetch(url, timeout=10.0):
    """GET url: (status, content type, body text)."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()


def samples(text):
    """{(sample name, sorted labels): value} and the family names, from exposition text."""
    values = {}
    families = []
    for family in text_string_to_metric_families(text):
        families.append(family.name)
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in values:
                raise ValueError(f"sample {key} appears twice")
            values[key] = sample.value
    return values, families


def value(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))))


class Checks:
    def __init__(self):
        self.failures = []

    def equal(self, what, got, want):
        if got != want:
            self.failures.append(f"{what}: metrics say {got!r}, finwave said {want!r}")

    def true(self, what, condition):
        if not condition:
            self.failures.append(what)


def check(args):
    status, content_type, text = fetch(args.url)
    c = Checks()
    c.equal("HTTP status", status, 200)
    c.true(f"content type {content_type!r}", content_type.startswith(CONTENT_TYPE))
    values, families = samples(text)
    c.true("no finwave_ families", families)
    for family in families:
        c.true(f"family {family} lacks the finwave_ prefix", family.startswith("finwave_"))
    # Bounded label sets: nothing that names one connection.
    for name, labels in values:
        for label, text_value in labels:
            c.true(f"{name}: label {label}={text_value} names an endpoint",
                   label not in ("flow", "client", "server", "port") and ":" not in text_value)

    with open(args.stats) as f:
        stats = json.load(f)
    with open(args.status) as f:
        status_reply = json.load(f)
    outcomes = []
    with open(args.outcomes) as f:
        for line in f:
            event = json.loads(line)
            if event.get("event") == "outcome":
                outcomes.append(event)

    # From the outcomes.
    by_kind = collections.Counter((o["kind"], o["result"], o["closer"]) for o in outcomes)
    seen = {labels: v for (name, labels), v in values.items() if name == "finwave_outcomes_total"}
    want = {(("closer", k[2]), ("kind", k[0]), ("result", k[1])): float(n)
            for k, n in by_kind.items()}
    c.equal("finwave_outcomes_total", seen, want)
    for side in ("client", "server"):
        c.equal(f"FIN retransmissions by the {side}",
                value(values, "finwave_fin_retransmissions_total", side=side),
                float(sum(o["fin_retransmits"][side] for o in outcomes)))
    actions = collections.Counter()
    for o in outcomes:
        for a in o["actions"]:
            actions[(("action", a["action"]), ("role", a["role"]), ("rule", a["rule"]))] += a["count"]
    seen = {labels: v for (name, labels), v in values.items() if name == "finwave_rule_actions_total"}
    c.equal("finwave_rule_actions_total", seen, {k: float(n) for k, n in actions.items()})
    with_fin = [o for o in outcomes if o["closer"] != "none"]
    c.equal("teardown histogram count",
            value(values, "finwave_teardown_duration_seconds_count"), float(len(with_fin)))
    c.equal("teardown histogram +Inf bucket",
            value(values, "finwave_teardown_duration_seconds_bucket", le="+Inf"), float(len(with_fin)))
    total_s = sum(o["teardown_ms"] for o in with_fin) / 1000.0
    got_s = value(values, "finwave_teardown_duration_seconds_sum") or 0.0
    c.true(f"teardown seconds: metrics {got_s}, outcomes {total_s}",
           abs(got_s - total_s) <= 0.001 * max(1, len(with_fin)))
    durations = [o["teardown_ms"] / 1000.0 for o in with_fin]
    for (name, labels), got in values.items():
        if name != "finwave_teardown_duration_seconds_bucket":
            continue
        bound = float(dict(labels)["le"])
        # A duration within rounding of a bound could fall on either side: not judged.
        if any(abs(d - bound) < 1e-5 for d in durations):
            continue
        c.equal(f"teardowns of at most {bound} s", got, float(sum(1 for d in durations if d <= bound)))

    # From stats.
    q, a = stats["queue"], stats["actions"]
    c.equal("segments queued", value(values, "finwave_segments_total", path="queued"), float(q["queued"]))
    c.equal("accept verdicts", value(values, "finwave_verdicts_total", verdict="accept"), float(q["accepted"]))
    c.equal("drop verdicts", value(values, "finwave_verdicts_total", verdict="drop"), float(q["dropped"]))
    c.equal("verdict errors", value(values, "finwave_verdict_errors_total"), float(q["verdict_errors"]))
    c.equal("held now", value(values, "finwave_held_segments"), float(q["held"]))
    for action, key in (("drop", "dropped"), ("delay", "delayed"), ("duplicate", "duplicated"),
                        ("reset", "resets")):
        c.equal(f"{action} actions", value(values, "finwave_actions_total", action=action), float(a[key]))
    c.equal("held overflows", value(values, "finwave_held_overflows_total"), float(a["held_overflow"]))
    c.equal("flows tracked", value(values, "finwave_flows_tracked"), float(stats["flows"]["tracked"]))
    c.equal("kernel queue full drops",
            value(values, "finwave_kernel_queue_drops_total", reason="queue_full"),
            float(stats["kernel"]["queue_dropped"]))
    c.equal("kernel socket full drops",
            value(values, "finwave_kernel_queue_drops_total", reason="socket_full"),
            float(stats["kernel"]["user_dropped"]))
    c.equal("passed unqueued", value(values, "finwave_passed_unqueued_total"),
            float(stats["capture"]["passed_unqueued"]))
    for family, key in (("ipv4", "v4"), ("ipv6", "v6")):
        want = stats["teardown_set"][key]
        c.equal(f"teardown set elements ({family})",
                value(values, "finwave_teardown_set_elements", family=family),
                None if want is None else float(want))
        want = stats["teardown_set"]["refused"][key]
        c.equal(f"teardown set refusals ({family})",
                value(values, "finwave_teardown_set_refused_total", family=family),
                None if want is None else float(want))

    # From status.
    c.equal("build info", value(values, "finwave_build_info", version=status_reply["version"]), 1.0)
    c.equal("enabled rules", value(values, "finwave_rules", state="enabled"),
            float(status_reply["rules_enabled"]))
    clients = value(values, "finwave_control_clients")
    c.true(f"control clients {clients}", clients is not None and clients >= 0)

    # `finwavectl metrics` says the same (the control clients gauge counts finwavectl itself).
    with open(args.ctl) as f:
        ctl_values, ctl_families = samples(f.read())
    c.equal("finwavectl metrics' families", ctl_families, families)
    for key in set(values) | set(ctl_values):
        if key[0] in ("finwave_control_clients", "finwave_teardown_set_elements"):
            continue
        c.equal(f"finwavectl metrics' {key}", ctl_values.get(key), values.get(key))

    if c.failures:
        print("\n".join(c.failures), file=sys.stderr)
        return 1
    print(f"{len(families)} families, {len(values)} samples agree with stats, outcomes and status")
    return 0


# --- Bad input -----------------------------------------------------------------------------


def address(url):
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, parsed.port)


def exchange(url, data, timeout=10.0):
    """Sends data, reads until the server closes: the reply's bytes (b"" if reset)."""
    family, addr = address(url)
    got = b""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what it said may still be there
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
    return got


def status_line(reply):
    return reply.split(b"\r\n", 1)[0].decode(errors="replace")


def abuse(args):
    url = args.url
    failures = []

    # Malformed requests: refused with a 4xx or 505, or the connection closed (at once, or
    # after the 10 s idle timeout when libmicrohttpd waits for more); never the metrics.
    for bad in (b"GARBAGE\r\n\r\n", b"GET /metrics HTTP/9.9\r\n\r\n", b"GET\r\n\r\n",
                b"\x00\xff\x16\x03\x01" * 100 + b"\r\n\r\n", b"GET /metrics HTTP/1.1\r\n" * 50):
        line = status_line(exchange(url, bad, timeout=20))
        if line and not (line.startswith("HTTP/1.1 4") or line.startswith("HTTP/1.1 505")):
            failures.append(f"malformed request {bad[:30]!r}: {line!r}")

    # A header of a megabyte: refused (431) or cut off, never answered with the metrics.
    reply = exchange(url, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) +
                     b"\r\n\r\n")
    if reply and not status_line(reply).startswith("HTTP/1.1 431"):
        failures.append(f"huge header: {status_line(reply)!r}")

    # A slow client: the request line a byte a second for 5 s. Meanwhile scrapes succeed.
    family, addr = address(url)
    slow = socket.socket(family, socket.SOCK_STREAM)
    slow.settimeout(20)
    slow.connect(addr)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    scrapes = []

    def scrape_meanwhile():
        for _ in range(5):
            started = time.monotonic()
            code, _, _ = fetch(url, timeout=5)
            scrapes.append((code, time.monotonic() - started))
            time.sleep(0.5)

    other = threading.Thread(target=scrape_meanwhile)
    other.start()
    for byte in request[:5]:
        slow.sendall(bytes([byte]))
        time.sleep(1)
    other.join()
    slow.sendall(request[5:])
    reply = b""
    while True:
        chunk = slow.recv(65536)
        if not chunk:
            break
        reply += chunk
    slow.close()
    if not status_line(reply).startswith("HTTP/1.1 200"):
        failures.append(f"the slow client got {status_line(reply)!r}")
    if len(scrapes) != 5 or any(code != 200 for code, _ in scrapes):
        failures.append(f"scrapes during the slow client: {scrapes}")

    # 500 connections at once, each a whole request: every one answered with the metrics.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    selector = selectors.DefaultSelector()
    replies = {}
    for i in range(500):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(addr)
        selector.register(s, selectors.EVENT_WRITE, i)
        replies[i] = b""
    deadline = time.monotonic() + 60
    open_count = 500
    while open_count and time.monotonic() < deadline:
        for key, events in selector.select(timeout=1):
            s, i = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                s.sendall(request)
                selector.modify(s, selectors.EVENT_READ, i)
                continue
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                replies[i] += chunk
            else:
                selector.unregister(s)
                s.close()
                open_count -= 1
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    answered = sum(1 for r in replies.values() if status_line(r).startswith("HTTP/1.1 200"))
    if answered != 500:
        failures.append(f"500 connections at once: {answered} answered with 200, {open_count} "
                        "still open at the deadline")

    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    slowest = max(t for _, t in scrapes)
    print(f"bad input handled; scrapes beside the slow client took at most {slowest:.3f} s; "
          "500 concurrent scrapes answered")
    return 0


def scrape(args):
    status, content_type, text = fetch(args.url)
    if status != 200 or not content_type.startswith(CONTENT_TYPE):
        print(f"{args.url}: status {status}, content type {content_type!r}", file=sys.stderr)
        return 1
    samples(text)  # it parses
    sys.stdout.write(text)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("url")
    for option in ("--stats", "--outcomes", "--status", "--ctl"):
        c.add_argument(option, required=True)
    for name in ("abuse", "scrape"):
        sub.add_parser(name).add_argument("url")
    args = parser.parse_args()
    return {"check": check, "abuse": abuse, "scrape": scrape}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
