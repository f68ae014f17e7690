# syntax=docker/dockerfile:1
#
# One image holds every orderpipe binary (everything under cmd/); each docker-compose service
# picks its binary with `command`. The binaries are static (CGO_ENABLED=0) and embed their
# migrations, Lua scripts and JSON Schemas, so the runtime image needs nothing else.
#
#   docker build -t orderpipe:dev .
#   docker run --rm orderpipe:dev api -h

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# ./cmd/... builds every binary, so a new command needs no change here.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

# Alpine rather than distroless: compose healthchecks need an HTTP client inside the container
# (busybox wget), and `init` chains two orderctl commands with /bin/sh.
FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 10001 orderpipe \
 && adduser -S -D -H -u 10001 -G orderpipe -s /sbin/nologin orderpipe
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
EXPOSE 8080
# No ENTRYPOINT: the command names the binary (`api`, `order-worker`, `orderctl migrate`, ...).
CMD ["api"]
