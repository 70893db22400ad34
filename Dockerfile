# parlor: one binary, every role. Build: docker build -t parlor .
# Run: docker run -p 8080:8080 parlor serve --listen 0.0.0.0:8080

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin parlor \
 && strip target/release/parlor

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/parlor --create-home parlor
COPY --from=build /src/target/release/parlor /usr/local/bin/parlor
USER parlor
WORKDIR /var/lib/parlor
ENV PARLOR_DATA_DIR=/var/lib/parlor/data \
    PARLOR_LISTEN=0.0.0.0:8080 \
    PARLOR_LOG_FORMAT=json
EXPOSE 8080 50051 50052
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["parlor"]
CMD ["serve"]
