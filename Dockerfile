# syntax=docker/dockerfile:1
# The one jiaxin image: every service runs it (`jiaxin serve --service <name>`).
#   docker build -t registry.example.org/jiaxin/jiaxin:0.1.0 .
# Build stage: the workspace's pinned toolchain; librdkafka and SQLite are compiled from the
# crates' bundled sources (gcc, make), protobuf with protox (no protoc needed).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin jiaxin \
    && install -D -m 0755 target/release/jiaxin /out/jiaxin

# Runtime: glibc and nothing else, running as the distroless nonroot user (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/jiaxin /usr/local/bin/jiaxin
# The embedded mode's data directory; Kubernetes deployments use PostgreSQL and a read-only root.
WORKDIR /home/nonroot
ENV JIAXIN_GRPC_LISTEN=0.0.0.0:50051 \
    JIAXIN_ADMIN_LISTEN=0.0.0.0:9464 \
    JIAXIN_DATA_DIR=/home/nonroot/data \
    JIAXIN_LOG_FORMAT=json
EXPOSE 50051 9464
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/jiaxin"]
CMD ["serve"]
