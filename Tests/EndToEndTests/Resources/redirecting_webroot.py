"""A web server for the http-01 redirect test: plain HTTP answers every request with a redirect
(to HTTPS on another port, or with ?target=... to any URL given on the command line), HTTPS serves
files from a webroot. Usage: redirecting_webroot.py WEBROOT HTTP_PORT HTTPS_PORT CERT KEY [LOCATION]"""
import http.server
import os
import signal
import ssl
import sys
import threading

# The test stops this server with SIGTERM; a signal mask inherited from the test runner may block it.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

webroot, http_port, https_port, cert, key = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
fixed_location = sys.argv[6] if len(sys.argv) > 6 else None


class Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.headers.get("Host", "localhost").split(":")[0]
        location = fixed_location or f"https://{host}:{https_port}{self.path}"
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        sys.stderr.write("http: " + (args[0] % args[1:]) + "\n")


class Files(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=webroot, **kwargs)

    def log_message(self, *args):
        sys.stderr.write("https: " + (args[0] % args[1:]) + "\n")


plain = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), Redirect)
secure = http.server.ThreadingHTTPServer(("127.0.0.1", https_port), Files)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
secure.socket = context.wrap_socket(secure.socket, server_side=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
print("ready", flush=True)
secure.serve_forever()
