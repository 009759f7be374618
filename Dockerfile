# syntax=docker/dockerfile:1
#
# driftgate's image: the release binary on distroless/cc (glibc, CA certificates, no shell),
# running as the numeric non-root user 65532.
#
#   docker build -t driftgate:0.1.0 .
#   kind load docker-image driftgate:0.1.0        # for a kind cluster
#
# The Deployment in manifests/ sets everything else (listen address, certificate and policy
# folders, journal) through DRIFTGATE_* variables and mounts; the root filesystem stays read-only.

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the build folder between builds of the same machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin driftgate \
 && install -D -m 0755 target/release/driftgate /out/driftgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/driftgate /usr/local/bin/driftgate
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/driftgate"]
CMD ["serve"]
