# syntax=docker/dockerfile:1
# claimsvc: a static binary on distroless, running as non-root.
#   docker build -t claimsvc .
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api ./api
COPY cmd ./cmd
COPY internal ./internal
COPY migrations ./migrations
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" \
      -o /out/claimsvc ./cmd/claimsvc

# static-debian12 carries CA certificates (for mqtts://) and tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/claimsvc /claimsvc
# distroless's nonroot user, by number: runAsNonRoot can only check a numeric user
USER 65532:65532
ENV CLAIMSVC_HTTP_ADDR=:8080
EXPOSE 8080
# Exec form: distroless has no shell or curl, so the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/claimsvc", "healthcheck"]
ENTRYPOINT ["/claimsvc"]
CMD ["serve"]
