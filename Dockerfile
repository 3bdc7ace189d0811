# Carillon container image: `carillon serve` as a non-root user, configured by CARILLON_*.
#
#   docker build -t carillon .
#   docker run -d --name carillon -p 8080:8080 -p 3478:3478/udp -v carillon-data:/data \
#       -e CARILLON_PUBLIC_HOST=<address clients reach> carillon
#
# Three stages: `builder` makes the virtual environment (dependencies in their own layer,
# pinned by deploy/constraints.txt, before the source is copied), `web` bundles the demo
# page when web/ is in the build context, and the final stage holds only python3, libopus0,
# that venv and the page. Every command calls `python3`, so the file builds both on the
# official Python image (python3 in /usr/local/bin) and on plain Debian bookworm, where the
# stages install Debian's python3 (3.11, in /usr/bin) when it is missing.
#
# BASE_IMAGE can be pinned to a digest for reproducible builds:
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- builder: the venv at /opt/carillon/venv (same path in the final stage) --------------
FROM ${BASE_IMAGE} AS builder
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN set -eux; \
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
        apt-get update; \
        apt-get install -y --no-install-recommends python3 python3-venv; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/carillon/venv
WORKDIR /src
# Dependencies first: this layer is rebuilt only when pyproject.toml or the pins change.
COPY pyproject.toml deploy/constraints.txt /src/
RUN set -eux; \
    python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(p['project']['dependencies']))" > requirements.txt; \
    /opt/carillon/venv/bin/pip install --constraint constraints.txt --requirement requirements.txt
# Then the project itself, built as a wheel and installed without touching the dependencies.
COPY README.md /src/
COPY mediaserver /src/mediaserver
COPY signaling /src/signaling
COPY mediacodecs /src/mediacodecs
COPY bench /src/bench
RUN set -eux; \
    /opt/carillon/venv/bin/pip wheel --no-deps --wheel-dir /wheels /src; \
    /opt/carillon/venv/bin/pip install --no-deps --no-index /wheels/carillon-*.whl; \
    /opt/carillon/venv/bin/pip check; \
    /opt/carillon/venv/bin/pip uninstall -y -q pip setuptools

# --- web: the demo page's bundle, when web/ exists ----------------------------------------
# web/ is optional: each COPY names one file that always exists (pyproject.toml) so that a
# pattern matching nothing copies nothing instead of failing. /out ends up empty without web/.
FROM ${BASE_IMAGE} AS web
ARG DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY pyproject.toml web/package.json* web/package-lock.json* /src/web/
RUN set -eux; \
    mkdir -p /out; \
    if [ -f web/package-lock.json ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends nodejs npm; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/*; \
        cd web; \
        npm ci --no-audit --no-fund --loglevel=error; \
    fi
COPY pyproject.toml web* /src/web/
RUN set -eux; \
    if [ -f web/build.sh ] && [ -f web/package-lock.json ]; then \
        sh web/build.sh --no-install; \
        find web -maxdepth 1 -type f \( -name '*.html' -o -name '*.css' -o -name '*.svg' \
            -o -name '*.ico' -o -name '*.png' \) -exec cp -p {} /out/ \; ; \
        cp -a web/dist /out/dist; \
    fi

# --- runtime -----------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="carillon" \
      org.opencontainers.image.description="Self-hosted meetings media server that speaks the Amazon Chime SDK protocols" \
      org.opencontainers.image.licenses="Apache-2.0"
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    packages="libopus0"; \
    command -v python3 >/dev/null || packages="$packages python3"; \
    apt-get update; \
    apt-get install -y --no-install-recommends $packages; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 carillon; \
    useradd --system --uid 10001 --gid carillon --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin carillon; \
    mkdir -p /data; \
    chown carillon:carillon /data; \
    chmod 0750 /data
COPY --from=builder /opt/carillon/venv /opt/carillon/venv
COPY --from=web /out/ /opt/carillon/web/
COPY deploy/healthcheck.py /opt/carillon/healthcheck.py
ENV PATH=/opt/carillon/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CARILLON_HOST=0.0.0.0 \
    CARILLON_HTTP_PORT=8080 \
    CARILLON_UDP_PORT=3478 \
    CARILLON_DATA_DIR=/data
# The server reads the demo page from web/ beside its packages (mediaserver/app.py WEB_DIR),
# which in the venv is site-packages/web. Then a smoke test: the command starts, libopus loads.
RUN set -eux; \
    ln -s /opt/carillon/web "$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/web"; \
    carillon serve --help >/dev/null; \
    python3 -c 'import opuslib.api'
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080/tcp 3478/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "/opt/carillon/healthcheck.py"]
ENTRYPOINT ["carillon", "serve"]
