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
ENV REAUTH_LISTEN=0.0.0.0:8080 REAUTH_DATA_DIR=/var/lib/reauth REAUTH_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["reauth"]
CMD ["serve"]
