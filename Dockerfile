# Multi-stage build: compile with the toolchain image, run on a slim Debian as a non-root user.
# Build: docker build -t mdc .    Run: docker run --rm -p 8086:8086 -v $PWD/data:/data mdc
FROM rust:1-bookworm AS build
# librdkafka's TLS and SASL SCRAM link OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY bench bench
RUN cargo build --release --locked --bin mdc

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /nonexistent mdc \
    && mkdir -p /data && chown mdc /data
COPY --from=build /src/target/release/mdc /usr/local/bin/mdc
COPY config.yaml /etc/mdc/config.yaml
USER mdc
WORKDIR /data
ENV MDC_SINKS__FILE__PATH=/data MDC_HTTP__LISTEN=0.0.0.0:8086
EXPOSE 8086
HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD curl -fsS http://127.0.0.1:8086/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mdc"]
CMD ["run", "--config", "/etc/mdc/config.yaml"]
