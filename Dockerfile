# kage-controller image: a static musl binary on a distroless, non-root base.
#
# NOTE: this Dockerfile has never been built on the project's machines (no container runtime
# there); CI images are built elsewhere. See README.md, "Installing on a real cluster".
#
#   docker build -t kage-controller:0.1.0 .
#   docker build --target kage -t kage:0.1.0 .      # the CLI instead

# --- build: static binaries for x86_64-unknown-linux-musl
FROM rust:1.89-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --target x86_64-unknown-linux-musl \
        -p kage-controller -p kage \
 && mkdir -p /out \
 && cp target/x86_64-unknown-linux-musl/dist/kage-controller /out/ \
 && cp target/x86_64-unknown-linux-musl/dist/kage /out/

# --- the CLI (optional target)
FROM gcr.io/distroless/static-debian12:nonroot AS kage
COPY --from=build /out/kage /usr/local/bin/kage
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kage"]

# --- the controller (default target): no shell, no package manager, uid 65532
FROM gcr.io/distroless/static-debian12:nonroot AS controller
LABEL org.opencontainers.image.title="kage-controller" \
      org.opencontainers.image.description="Decrypts kage AgeSecrets into Kubernetes Secrets" \
      org.opencontainers.image.source="https://github.com/kage-dev/kage" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/kage-controller /usr/local/bin/kage-controller
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/kage-controller"]
