# syntax=docker/dockerfile:1
# coffre's image: `docker build -t coffre:0.1.0 .` from the repository root.
# Used by the Helm chart (charts/coffre), which runs it as UID/GID 10001 with a
# read-only root filesystem, the config in /etc/coffre and state_dir in /var/lib/coffre.

# ---- Build --------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Sources only (see .dockerignore); Cargo.lock pins every dependency (--locked).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
# The registry and target/ are BuildKit caches: a rebuild recompiles only what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin coffre \
    && install -D -m 0755 target/release/coffre /out/coffre

# ---- Runtime ------------------------------------------------------------------------
FROM debian:bookworm-slim
# postgresql-client-15: pg_dump and psql of the PostgreSQL source, restores and drills
# (major pinned: a dump restores on a server of the same major or newer; Debian's
# /usr/bin/pg_dump wrapper picks it; also at /usr/lib/postgresql/15/bin).
# mariadb-client: mariadb-dump and mariadb of the MySQL source (coffre's defaults, tried
# before mysqldump and mysql), restores and drills; they work against MySQL 5.7/8 too.
# tini: PID 1 that forwards SIGTERM to coffre (graceful shutdown) and reaps children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        mariadb-client \
        postgresql-client-15 \
        tini \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 coffre \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/coffre \
        --no-create-home --shell /usr/sbin/nologin coffre \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/coffre \
    && install -d -m 0755 /etc/coffre
COPY --from=builder /out/coffre /usr/local/bin/coffre
ENV COFFRE_CONFIG=/etc/coffre/config.toml
WORKDIR /var/lib/coffre
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# [service] listen (/healthz, /readyz, /metrics) when it is set to 0.0.0.0:9187.
EXPOSE 9187
ENTRYPOINT ["tini", "--", "coffre"]
CMD ["--help"]
LABEL org.opencontainers.image.title="coffre" \
      org.opencontainers.image.description="Backup, anonymization and restore-drill appliance for billing databases" \
      org.opencontainers.image.licenses="Apache-2.0"
