# Build the `reauth` binary, then run it on a slim Debian with CA certificates only.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p reauth-http --bin reauth

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/reauth reauth \
    && mkdir -p /var/lib/reauth && chown reauth /var/lib/reauth
COPY --from=build /src/target/release/reauth /usr/local/bin/reauth
USER reauth
# `serve` only: the dev outbox never runs in this image. Operators' endpoints (/metrics, /ops)
# listen on their own port; publish 9091 to your metrics network only, never to the internet.
ENV REAUTH_LISTEN=0.0.0.0:8080 REAUTH_OPS_LISTEN=0.0.0.0:9091 REAUTH_DATA_DIR=/var/lib/reauth REAUTH_LOG_FORMAT=json
EXPOSE 8080 9091
ENTRYPOINT ["reauth"]
CMD ["serve"]
