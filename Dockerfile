# lq in one image: the collector, the dashboard, and every other `lq` subcommand.
#
#   docker build -t lq .                       # or: podman build -t lq .
#   docker run --rm lq lq --help
#   docker compose up -d                       # collector + dashboard on a volume (compose.yaml)
#
# BASE is any Debian-like image with python3 (>= 3.11) and its venv module: the public
# python:3.11-slim-bookworm by default; the tests build FROM a Debian base made locally with
# debootstrap (docs/deploy.md). The build reaches the package index as the build machine
# does; a machine whose TLS goes through its own CA passes that bundle as a build secret
# (`--secret id=pip-cert,src=/etc/ssl/certs/ca-certificates.crt`), which never lands in a
# layer.
ARG BASE=python:3.11-slim-bookworm

# -- the dependency list, alone: the layer that installs it is rebuilt only when it changes
# (not on every edit of pyproject.toml's tool settings)
FROM ${BASE} AS requirements
COPY pyproject.toml /tmp/
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]["dependencies"]))' > /requirements.txt

# -- build: a virtualenv at /opt/lq with lq's dependencies, byte-compiled, pruned ----------
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_COMPILE=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/lq
WORKDIR /app
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi; \
    /opt/lq/bin/pip install --quiet -r /tmp/requirements.txt
COPY pyproject.toml ./
COPY README.md ./
COPY lq ./lq
COPY notebooks ./notebooks
# lq itself from /app (its notebooks are found beside the package), no build isolation:
# setuptools is fetched for this one step and removed with pip below
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi; \
    /opt/lq/bin/pip install --quiet "setuptools>=77" wheel \
    && /opt/lq/bin/pip install --quiet --no-deps --no-build-isolation -e . \
        --config-settings editable_mode=compat \
    && rm -rf build lq.egg-info/SOURCES.txt
# What the final stage leaves out (docs/deploy.md, "What takes the space"):
# - rfc3987-syntax and lark: jsonschema builds a Lark grammar at import when they are
#   installed (jupyter_events validates formats); every server start and kernel paid seconds
# - debugpy: a dashboard kernel needs no debugger (ipykernel runs without it)
# - pip, setuptools, wheel: nothing is installed at run time
# - test suites inside packages
# Then everything is byte-compiled once, here, instead of on each cold start.
RUN /opt/lq/bin/pip uninstall --quiet -y rfc3987-syntax lark debugpy \
    && /opt/lq/bin/pip uninstall --quiet -y pip setuptools wheel \
    && find /opt/lq/lib -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} + \
    && /opt/lq/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/lq/lib /app/lq \
    && /opt/lq/bin/python -c 'import lq.cli, lq.dashboard, lq.dashboard.server' \
    && /opt/lq/bin/lq --help > /dev/null

# -- the image ------------------------------------------------------------------------------
FROM ${BASE}
ARG LQ_UID=10001
RUN groupadd --gid ${LQ_UID} lq \
    && useradd --uid ${LQ_UID} --gid lq --home-dir /home/lq --create-home \
        --shell /usr/sbin/nologin lq \
    && mkdir -p /data \
    && chown lq:lq /data
COPY --from=build /opt/lq /opt/lq
COPY --from=build /app /app
ENV PATH=/opt/lq/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LQ_DB=/data/lq.sqlite \
    MPLCONFIGDIR=/tmp/matplotlib
USER lq
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8866
# SIGTERM is what `docker stop` sends: the collector flushes and exits 0, the dashboard
# stops its server and kernels
STOPSIGNAL SIGTERM
# The dashboard beyond loopback needs a token: $LQ_DASHBOARD_TOKEN or --token-file (never
# an argument). Logs go to stdout. Any other subcommand: `docker run ... lq lq collect ...`.
CMD ["lq", "dashboard", "--host", "0.0.0.0", "--port", "8866", "--log-file", "/dev/stdout"]
