# The agentfs image: one static binary on a distroless base (CA certificates for object
# storage, nothing else). Build: docker build -t agentfs:latest .
# The entrypoint is agentfs itself: docker run agentfs:latest --repo /repo serve --init
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/agentfs ./cmd/agentfs

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/agentfs /usr/local/bin/agentfs
ENTRYPOINT ["/usr/local/bin/agentfs"]
