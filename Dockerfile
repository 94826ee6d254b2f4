# Dockerfile: the one `chainwatch` image. Every stage (probe, parse, chain, policy, run, sql)
# is the same binary with a different subcommand; docker-compose.yml and k8s/ pick the
# subcommand. tests/deploy_manifests.rs checks this file against the manifests.

# Builder: Rust 1.95 on Debian 12 (bookworm), the same Debian as the runtime image, so the
# binary's glibc matches. clang-19 compiles the eBPF object (probe/build.rs; older clang made
# objects the verifier refused) against libbpf-dev's headers.
FROM rust:1.95-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang-19 libbpf-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
ENV CHAINWATCH_CLANG=clang-19
WORKDIR /src
COPY . .
# rdkafka builds librdkafka from source (gcc, make and zlib come with the rust image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chainwatch --bin chainwatch \
    && cp target/release/chainwatch /usr/local/bin/chainwatch

# Runtime: Debian 12 slim with the binary and the documented example config.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/chainwatch --create-home chainwatch
COPY --from=builder /usr/local/bin/chainwatch /usr/local/bin/chainwatch
COPY chainwatch.example.toml /etc/chainwatch/chainwatch.example.toml
WORKDIR /var/lib/chainwatch
# Stages other than the probe run unprivileged; the probe's manifests run it as root with the
# eBPF capabilities (docker-compose.yml `user: "0"`, k8s/probe-daemonset.yaml).
USER 10001
# sql.http_listen (policy engine) and metrics.prometheus_listen, as the manifests set them.
EXPOSE 8181 9464
# Embedded mode by default: every stage in one process on the in-memory bus.
CMD ["chainwatch", "run"]
