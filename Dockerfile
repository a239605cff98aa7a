# syntax=docker/dockerfile:1
# Converger: build with the official Rust image, run on Debian slim as a
# non-root user. `docker compose up` builds it (docker-compose.yml); alone:
#
#   docker build -t converger .
#   docker run -p 4000:4000 -p 4001:4001 -v converger-data:/var/lib/converger converger
#
# The same defaults as `cargo run`: HTTP, WebSocket and admin on 4000, the
# binary protocol on 4001, embedded storage in the data volume unless
# DATABASE_URL is set. Every option is a CONVERGER_* variable (`converger --help`).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The cargo registry and the target dir are build caches, not layers.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p converger-server --bin converger \
    && install -D target/release/converger /out/converger

FROM debian:bookworm-slim
# curl for the health check; ca-certificates for HTTPS deliveries (webhooks, WhatsApp).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/converger --shell /usr/sbin/nologin converger \
    && install -d -o converger -g converger -m 0700 /var/lib/converger
COPY --from=build /out/converger /usr/local/bin/converger
USER converger
WORKDIR /var/lib/converger
ENV CONVERGER_HTTP_ADDR=0.0.0.0:4000 \
    CONVERGER_BINARY_ADDR=0.0.0.0:4001 \
    CONVERGER_DATA_DIR=/var/lib/converger
VOLUME ["/var/lib/converger"]
EXPOSE 4000 4001
# Ready = storage answers (and, in a cluster, NATS is connected). The port is
# CONVERGER_HTTP_ADDR's: change both together.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:4000/health/ready"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["converger"]
