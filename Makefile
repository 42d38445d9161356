# agentfs: see README.md. Every target works on a fresh clone.
GO       ?= go
BIN      := bin/agentfs
# REPO: repository for `make run`; empty means the default ($AGENTFS_REPO, else ~/.agentfs).
REPO     ?=
MNT      ?= $(CURDIR)/mnt
# Packages whose tests exercise concurrency run under the race detector.
RACE_PKGS := ./store/... ./branch/... ./api/... ./gc/... ./remote/... ./work/...
# The whole fs suite takes minutes under -race; these are its concurrent tests.
RACE_FS_TESTS := TestManyBranchesConcurrent|TestRollbackWhileMounted|TestForkWhileMounted

.PHONY: all build test test-race lint run bench bench-quick crash clean fmt

all: build

# agentfs version reports the commit: the go command stamps it in a git clone; these flags
# also cover worktrees and GOFLAGS=-buildvcs=false (cmd/agentfs/version_cmd.go).
COMMIT   := $(shell git rev-parse HEAD 2>/dev/null)
MODIFIED := $(shell test -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo true || echo false)
LDFLAGS  := -X main.buildCommit=$(COMMIT) -X main.buildModified=$(MODIFIED)

build:
	@test -x $(BIN) || echo "building $(BIN): the first build compiles the cloud SDKs and takes a few minutes (about 2-6 min on 2 cores); later builds take seconds"
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/agentfs

# -count=1: never reuse cached results, so flaky tests show up.
test:
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -race -count=1 -timeout 30m $(RACE_PKGS)
	$(GO) test -race -count=1 -timeout 30m -run '$(RACE_FS_TESTS)' ./fs/

# Lint only what git tracks and the module's own packages: never whatever `make run` serves
# at ./mnt (a user's files, possibly Go code of another project).
PKGS = $(shell $(GO) list -e ./... | grep -v '^github.com/agentfs/agentfs/mnt\(/\|$$\)')

lint:
	@test -z "$$(git ls-files -z '*.go' | xargs -0 gofmt -l | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	@$(GO) mod tidy -diff || (echo "go.mod/go.sum: run go mod tidy" && exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

fmt:
	git ls-files -z '*.go' | xargs -0 gofmt -w

# The main job: serve branch main of the default repository at ./mnt until Ctrl-C.
run: build
	mkdir -p $(MNT)
	$(BIN) $(if $(REPO),--repo $(REPO)) serve --init --mount main:$(MNT)

# BENCH_FLAGS: e.g. "--json bench.json --compare /mnt/other" (see bench/cmd/agentfs-bench).
bench: build
	$(GO) run ./bench/cmd/agentfs-bench -bin $(BIN) $(BENCH_FLAGS)

bench-quick: build
	$(GO) run ./bench/cmd/agentfs-bench -bin $(BIN) -quick $(BENCH_FLAGS)

# Long crash test for releases: 1,000 kill -9 of a daemon under fsyncing writers.
crash: build
	AGENTFS_CRASH_KILLS=1000 $(GO) test -v -count=1 -timeout 180m -run TestCrash ./cmd/agentfs/

clean:
	rm -rf bin
