# syntax=docker/dockerfile:1
# Hutch's services (ingest, query, project, migrate; `hutch serve` by default) in one image.
# The wheel is built in a stage of its own, so the final image holds neither the source tree
# nor build tools, and runs as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the compiled otel_traces transform (setup.py); the image keeps only the
# wheel it builds.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels hutch
# /data/objects exists and belongs to hutch in the image, so a fresh named volume mounted
# there starts out writable by it.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home hutch \
    && mkdir -p /data/objects \
    && chown -R hutch:hutch /data
USER hutch
WORKDIR /data
ENV HUTCH_DATA=/data \
    HUTCH_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["hutch"]
CMD ["serve"]
