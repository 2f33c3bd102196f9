# syntax=docker/dockerfile:1
#
# The ringmaster image: one static binary (musl, rustls, the tz database bundled) on
# distroless, running as 65532:65532. The operator runs as `ringmaster run` (the default
# command); the simulated agent as `ringmaster agent --simulate`; the node agent as
# `ringmaster agent --backend auto --node-mode` (privileged, root, in the chart's
# DaemonSet).
#
#   docker build -t ringmaster:0.1.0 .
#
# Needs BuildKit (the default builder) for the cache mounts. Builds for linux/amd64.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
# musl-tools brings x86_64-linux-musl-gcc, which the cc crate uses for ring's C and asm;
# busybox-static a static nsenter for the node agent (distroless has no libc for
# util-linux's).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools busybox-static \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add "${TARGET}"
WORKDIR /src
COPY . .
# The registry, git checkouts and target/ are cached across builds; the binary is copied
# out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --target "${TARGET}" --bin ringmaster \
 && install -D -m 0755 "target/${TARGET}/release/ringmaster" /out/ringmaster
# A static binary has no program interpreter, and it runs.
RUN if readelf -l /out/ringmaster | grep -q 'program interpreter'; then \
      echo "ringmaster is dynamically linked" >&2; exit 1; \
    fi \
 && /out/ringmaster --version

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="ringmaster" \
      org.opencontainers.image.description="Risk-based patch management for fleets, as a Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ringmaster /ringmaster
# The node agent (chart: agent.nodeMode) runs host commands through `/busybox nsenter
# --target 1 …`; nothing else uses it.
COPY --from=build /bin/busybox /busybox
USER 65532:65532
ENTRYPOINT ["/ringmaster"]
CMD ["run"]
