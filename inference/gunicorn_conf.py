"""gunicorn settings: ``gunicorn -c inference/gunicorn_conf.py``, run from the directory that holds
``inference/``, serves ``inference.app:create_app()`` on $HOST:$PORT (default 0.0.0.0:8000).

One worker process with many threads (gthread), on purpose: batching (the GPU image's default) gathers
concurrent requests into one onnxruntime call, which only works when they reach the same process, the same
queue and the same session; and /metrics, hot swapping and /info describe one process, not whichever of
several a request happened to reach. onnxruntime releases the GIL while it runs, so the threads of one
process keep both cores busy. (``GUNICORN_CMD_ARGS="--workers 2"`` measured 1,010 req/s against 800 on
2 cores without batching, at the price of per-process metrics and a p99 of 51-60 ms, as keep-alive
connections spread unevenly over the workers.)
"""

import os

wsgi_app = "inference.app:create_app()"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = 1
# request threads: each waits on its image's batch, so this bounds both concurrency and the largest batch
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
timeout = 60  # seconds a worker may go silent before gunicorn restarts it
graceful_timeout = 10  # seconds in-flight requests get on shutdown
keepalive = 5  # seconds an idle keep-alive connection stays open
# gunicorn >= 25.1 opens a management socket at one fixed path under $HOME by default: not needed here,
# and two servers on one machine (tests, benchmarks) would fight over that path
control_socket_disable = True
# the worker heartbeat file: in memory, as a container's overlay /tmp can stall the heartbeat
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# one logging setup for gunicorn's messages and the service's ("inference.*"): INFO and up, to stderr.
# Access lines are off: they cost throughput, and /metrics counts requests by endpoint and status.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}
