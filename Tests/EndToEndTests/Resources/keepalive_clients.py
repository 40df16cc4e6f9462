"""Clients that keep connections open and busy on every listener of `ca serve`, until killed.

Usage: keepalive_clients.py ROOT_PEM HTTPS_PORT METRICS_PORT REVOCATION_PORT COUNT_FILE

One thread per client: HTTPS keep-alive (GET /roots and /health on one connection), /metrics
keep-alive every 20 ms (as a scraper that does not close), /metrics once a second on a second
kept-open connection (Prometheus' pace), and the revocation listener's /crl (it closes after
each answer). Every 100 answers the total is written to COUNT_FILE, so the test knows the
clients are running before it stops the server.
"""
import http.client
import ssl
import sys
import threading
import time

root, https_port, metrics_port, revocation_port, count_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
answers = 0
lock = threading.Lock()


def counted():
    global answers
    with lock:
        answers += 1
        if answers % 100 == 0:
            with open(count_file, "w") as f:
                f.write(str(answers))


def client(make, paths, pause):
    while True:
        try:
            connection = make()
            while True:
                for path in paths:
                    connection.request("GET", path)
                    connection.getresponse().read()
                    counted()
                time.sleep(pause)
        except Exception:
            time.sleep(0.02)


context = ssl.create_default_context(cafile=root)
clients = [
    (lambda: http.client.HTTPSConnection("127.0.0.1", https_port, context=context, timeout=5), ["/roots", "/health"], 0.01),
    (lambda: http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5), ["/metrics"], 0.02),
    (lambda: http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5), ["/metrics"], 1.0),
    (lambda: http.client.HTTPConnection("127.0.0.1", revocation_port, timeout=5), ["/crl"], 0.01),
]
for make, paths, pause in clients:
    threading.Thread(target=client, args=(make, paths, pause), daemon=True).start()
while True:
    time.sleep(1)
