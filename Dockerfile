# The xling images: `xling serve` for the sidecar, and `xling train`,
# `xling index`, `xling eval` for the chart's Jobs.
#
#   docker build -t xling .                        # libtorch: every model
#   docker build --target static -t xling:static .  # static models only, no libtorch
#
# Build stage: Debian's libtorch-dev and the gotch adaptation that
# `make deps` runs (see internal/gotchadapt).
FROM golang:1.26-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libtorch-dev libtcmalloc-minimal4 g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOWORK=off go run ./cmd/gotch-adapt -out .build/gotch -work go.work \
 && go build -trimpath -ldflags "-s -w" -o /out/xling ./cmd/xling

# Static-only build: pure Go (CGO_ENABLED=0), so no libtorch, no libc; it
# trains, encodes, serves, indexes and evaluates static models, and says
# that a transformer needs the image above.
FROM golang:1.26-bookworm AS build-static
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w" -o /out/xling ./cmd/xling

FROM gcr.io/distroless/static-debian12:nonroot AS static
COPY --from=build-static /out/xling /usr/local/bin/xling
ENV XLING_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/xling"]
CMD ["serve", "--model", "/models/xling"]

# Run stage (the default target): the libtorch runtime only (no headers, no Python), with
# OpenBLAS behind libblas.so.3 (the reference BLAS is 15x slower) and
# tcmalloc (xling's malloc: flat memory at full speed).
# The package list is scripts/runtime-packages, which `make image-check`
# builds the same filesystem from without a docker daemon.
FROM debian:bookworm-slim
COPY scripts/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && grep -v '^#' /tmp/runtime-packages | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/xling /usr/local/bin/xling
# libgomp reads OMP_WAIT_POLICY before main; xling would re-exec itself to set it.
ENV OMP_WAIT_POLICY=PASSIVE XLING_LOG_FORMAT=json
# The chart's securityContext runs as this user with a read-only root and a
# writable /tmp volume.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/xling"]
CMD ["serve", "--model", "/models/xling"]
