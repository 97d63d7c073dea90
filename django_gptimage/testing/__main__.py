"""Serve the loopback OpenAI Images API from the command line.

    python -m django_gptimage.testing --port 8089 --api-key sk-test
    OPENAI_BASE_URL=http://127.0.0.1:8089/v1 OPENAI_API_KEY=sk-test \\
        python manage.py gptimage_generate --prompt "A harbour at dawn" --ratio 16:9 --tier 2K --wait

The first line on stdout is the base URL (ending in ``/v1``). It serves until SIGINT/SIGTERM,
or, with ``--until-stdin-closes``, until its standard input is closed (for harnesses that
start it as a child process: see :func:`django_gptimage.testing.serve_in_subprocess`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .server import IMAGE_MODES, FakeOpenAIServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_gptimage.testing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: %(default)s).")
    parser.add_argument("--port", type=int, default=0, help="Port (default: a free one).")
    parser.add_argument("--api-key", help="Require 'Authorization: Bearer KEY' (default: any key).")
    parser.add_argument("--image-mode", choices=IMAGE_MODES, default="solid", help="(default: %(default)s)")
    parser.add_argument("--delay", type=float, default=0.0, help="Seconds before every answer.")
    parser.add_argument(
        "--images-per-minute", type=int, help="Enforce this many images per sliding minute (429 beyond)."
    )
    parser.add_argument(
        "--requests-per-minute", type=int, help="Enforce this many requests per sliding minute (429 beyond)."
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NEW=KNOWN",
        help="Also serve model id NEW with the limits of the known id KNOWN (repeatable).",
    )
    parser.add_argument(
        "--random-faults",
        type=json.loads,
        help='A seeded random fault mix, as JSON: [{"kind": "server_error", "rate": 0.05}, ...].',
    )
    parser.add_argument("--fault-seed", type=int, help="Seed of the random fault mix.")
    parser.add_argument("--until-stdin-closes", action="store_true", help="Stop when stdin reaches EOF.")
    args = parser.parse_args(argv)
    models = dict(item.partition("=")[::2] for item in args.model)
    if any(not new or not known for new, known in models.items()):
        parser.error("--model takes NEW=KNOWN, e.g. --model gpt-image-2.7=gpt-image-2.6")

    server = FakeOpenAIServer(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        image_mode=args.image_mode,
        delay=args.delay,
        images_per_minute=args.images_per_minute,
        requests_per_minute=args.requests_per_minute,
        models=models,
        random_faults=args.random_faults,
        fault_seed=args.fault_seed,
    ).start()
    print(server.base_url, flush=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    if args.until_stdin_closes:

        def stop_when_stdin_closes() -> None:
            sys.stdin.read()
            done.set()

        threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
