# syntax=docker/dockerfile:1
#
# Portcullis container image.
#
#   docker build -t portcullis .
#   docker run --rm -p 127.0.0.1:8080:8080 portcullis
#
# Two stages: a full Rust toolchain builds a release binary, and a slim Debian
# image (same glibc as the builder: both bookworm) runs it as a non-root user.

############################ builder ##########################################
FROM rust:1.95-bookworm AS builder

# gcc from the base image is enough: aws-lc-sys (the only crypto library, see
# DEPENDENCIES.md) builds through the `cc` crate with pregenerated bindings on
# x86_64/aarch64 Linux, so no cmake, clang or nasm is installed here.
WORKDIR /build

# Strip symbols from the shipped binary. Set for both builds below so that the
# dependency layer is built with the same profile as the final binary.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

# 1. Dependencies only: build the locked dependency graph against a dummy lib
#    and bin. This layer is reused until Cargo.toml or Cargo.lock changes.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# 2. The real sources. COPY keeps the files' original mtimes, which can be older
#    than the dummy build's artefacts; touch them so cargo rebuilds the crate.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin portcullis \
 && cp target/release/portcullis /usr/local/bin/portcullis

############################ runtime ##########################################
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to MongoDB Atlas / SMTP relays. Nothing else: no curl;
# the health check below uses bash's /dev/tcp.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Fixed uid/gid so volume ownership is predictable across rebuilds and hosts.
# The data and keys directories are created here, owned by that user: a fresh
# named volume mounted on them inherits this ownership. keys/ holds private
# signing keys and the password pre-hash secret, hence 0700.
RUN groupadd --system --gid 10001 portcullis \
 && useradd --system --uid 10001 --gid 10001 \
      --home-dir /var/lib/portcullis --no-create-home \
      --shell /usr/sbin/nologin portcullis \
 && mkdir -p /var/lib/portcullis/data /var/lib/portcullis/keys \
 && chown -R 10001:10001 /var/lib/portcullis \
 && chmod 0700 /var/lib/portcullis/keys

COPY --from=builder /usr/local/bin/portcullis /usr/local/bin/portcullis

ENV PORTCULLIS_LISTEN=0.0.0.0:8080 \
    PORTCULLIS_DATA_DIR=/var/lib/portcullis/data \
    PORTCULLIS_KEYS_DIR=/var/lib/portcullis/keys \
    PORTCULLIS_LOG_FORMAT=json

WORKDIR /var/lib/portcullis

# Numeric uid so orchestrators can verify runAsNonRoot.
USER 10001:10001

EXPOSE 8080

# Readiness over plain TCP with bash (Debian's /bin/sh is dash, which has no
# /dev/tcp, so bash is called explicitly). 200 from /readyz = store reachable.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["portcullis"]
CMD ["serve"]
