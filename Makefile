# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both install what they need on a fresh Debian machine (hack/deps.sh).
GO ?= go

.PHONY: all build demo test deps generate bench

all: build

deps:
	./hack/deps.sh

build:
	$(GO) build -o bin/xdpsec ./cmd/xdpsec

demo: deps build
	./hack/demo.sh

test: deps
	./hack/test.sh

generate:
	$(GO) generate ./bpf/...

bench: build
	./hack/bench.sh
