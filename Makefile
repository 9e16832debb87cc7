# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both install what they need on a fresh Debian machine (hack/deps.sh).
GO ?= go

.PHONY: all build demo test deps generate bench strongswan-plugin install-strongswan-plugin strongswan-plugin-test strongswan-charon-test

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

# charon's kernel-xdpsec plugin (ike/strongswan, docs/strongswan.md): built against the source of the
# installed strongSwan; installs Debian's strongSwan and the build dependencies it needs.
strongswan-plugin:
	./hack/strongswan-plugin.sh build

# DESTDIR=/some/root installs into a temporary root instead of /.
install-strongswan-plugin:
	./hack/strongswan-plugin.sh install

strongswan-plugin-test:
	./hack/strongswan-plugin.sh test

# Two real charons negotiating through the plugin against fake daemons (root; no data plane).
strongswan-charon-test:
	./hack/strongswan-charon-test.sh
