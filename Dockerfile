# syntax=docker/dockerfile:1
# One image with the four binaries: huoyue-ingest, huoyue-aggregate,
# huoyue-query and huoyue-gen. Build from the repository root:
#   docker build -t huoyue:dev .
# Usage, compose and Kubernetes: docs/operations.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build -----------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

# librdkafka is compiled from source by rdkafka-sys (make, a C/C++ compiler);
# openssl-sys links the system OpenSSL found through pkg-config; libz-sys uses
# the system zlib. Versions are not pinned: the release's security updates
# should land on rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libssl-dev pkg-config make g++ zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The caches keep the crates.io downloads and the target directory between
# builds (BuildKit); the binaries are copied out of the cached target dir.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      -p huoyue-ingest -p huoyue-aggregate -p huoyue-query -p huoyue-benches --bins \
 && mkdir -p /out \
 && for bin in huoyue-ingest huoyue-aggregate huoyue-query huoyue-gen; do \
      cp "target/release/$bin" /out/; \
    done

# ---- runtime ---------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim

# tini as PID 1 forwards SIGTERM to the binary (the ingest flushes,
# checkpoints and commits on SIGTERM) and reaps children.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g tini \
 && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid/gid, so the lake volume's ownership is predictable
# (Kubernetes: securityContext runAsUser/fsGroup 10001). /lake is created owned
# by it so that a fresh Docker named volume mounted there inherits the owner.
RUN groupadd --system --gid 10001 huoyue \
 && useradd --system --uid 10001 --gid huoyue --home-dir /home/huoyue --create-home \
      --shell /usr/sbin/nologin huoyue \
 && mkdir -p /lake \
 && chown huoyue:huoyue /lake

COPY --from=builder /out/ /usr/local/bin/
# the nightly compaction of the recent days (the CronJob huoyue-compact)
COPY --chmod=0755 deploy/huoyue-compact-recent /usr/local/bin/

USER 10001:10001
WORKDIR /home/huoyue
# 9187: the ingest's --metrics-addr; 8080: huoyue-query serve --listen.
EXPOSE 9187 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["huoyue-ingest", "--help"]
