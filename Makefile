# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Both install what they need on a fresh Debian machine (hack/deps.sh).
# `make install` (PREFIX, DESTDIR) installs the binary, man pages, shell completion, the systemd unit
# and the Grafana/Prometheus files; docs/install.md.
GO ?= go

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/xdpsec
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# Where the build's outputs go (tests point them at a temporary directory).
BINARY ?= bin/xdpsec
BUILDDIR ?= build

# Man pages carry the date of the last commit, so a build of the same commit writes the same pages.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
export SOURCE_DATE_EPOCH

.PHONY: all build demo test fuzz deps generate bench man completion install uninstall strongswan-plugin install-strongswan-plugin strongswan-plugin-test strongswan-charon-test soak ike-demo

all: build

deps:
	./hack/deps.sh

# -buildvcs=auto stamps the commit (xdpsec version) when built in a git checkout, whatever GOFLAGS says.
# CGO_ENABLED=0: xdpsec run drops its capabilities in every thread with syscall.AllThreadsSyscall,
# which Go offers only in a binary without cgo (docs/security.md, "Capabilities").
build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -o $(BINARY) ./cmd/xdpsec

demo: deps build
	./hack/demo.sh

test: deps
	./hack/test.sh

# Every fuzz target for FUZZTIME each (default 30s; FUZZ=regexp picks targets); new corpus entries go to
# testdata/fuzz, a crasher fails it (hack/fuzz.sh).
fuzz: deps
	./hack/fuzz.sh

generate:
	$(GO) generate ./bpf/...

bench: build
	./hack/bench.sh

# One page per command (xdpsec.1, xdpsec-sa-add.1, …) from the command tree.
man: build
	rm -rf $(BUILDDIR)/man
	$(BINARY) gen-man $(BUILDDIR)/man

completion: build
	mkdir -p $(BUILDDIR)/completion
	$(BINARY) completion bash >$(BUILDDIR)/completion/xdpsec.bash
	$(BINARY) completion zsh >$(BUILDDIR)/completion/_xdpsec
	$(BINARY) completion fish >$(BUILDDIR)/completion/xdpsec.fish

install: build man completion
	install -D -m 755 $(BINARY) $(DESTDIR)$(BINDIR)/xdpsec
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(BUILDDIR)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -D -m 644 $(BUILDDIR)/completion/xdpsec.bash $(DESTDIR)$(BASHCOMPDIR)/xdpsec
	install -D -m 644 $(BUILDDIR)/completion/_xdpsec $(DESTDIR)$(ZSHCOMPDIR)/_xdpsec
	install -D -m 644 $(BUILDDIR)/completion/xdpsec.fish $(DESTDIR)$(FISHCOMPDIR)/xdpsec.fish
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/local/bin/xdpsec|$(BINDIR)/xdpsec|g' dist/systemd/xdpsec@.service >$(DESTDIR)$(SYSTEMDUNITDIR)/xdpsec@.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/xdpsec@.service
	install -D -m 644 dist/grafana/xdpsec.json $(DESTDIR)$(DATADIR)/xdpsec/grafana/xdpsec.json
	install -D -m 644 dist/prometheus/xdpsec-alerts.yml $(DESTDIR)$(DATADIR)/xdpsec/prometheus/xdpsec-alerts.yml
	install -d $(DESTDIR)$(DOCDIR)
	install -m 644 LICENSE LICENSES/* $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/xdpsec $(DESTDIR)$(MANDIR)/man1/xdpsec.1 $(DESTDIR)$(MANDIR)/man1/xdpsec-*.1
	rm -f $(DESTDIR)$(BASHCOMPDIR)/xdpsec $(DESTDIR)$(ZSHCOMPDIR)/_xdpsec $(DESTDIR)$(FISHCOMPDIR)/xdpsec.fish
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/xdpsec@.service
	rm -rf $(DESTDIR)$(DATADIR)/xdpsec $(DESTDIR)$(DOCDIR)

# charon's kernel-xdpsec plugin (ike/strongswan, docs/strongswan.md): built against the source of the
# installed strongSwan; installs Debian's strongSwan and the build dependencies it needs.
strongswan-plugin:
	./hack/strongswan-plugin.sh build

# DESTDIR=/some/root installs into a temporary root instead of /.
install-strongswan-plugin:
	./hack/strongswan-plugin.sh install

strongswan-plugin-test:
	./hack/strongswan-plugin.sh test

# charon with the plugin against real xdpsec daemons in the four-namespace testbed (root): two
# gateways, and one against a plain strongSwan peer (kernel-libipsec). hack/ike, docs/strongswan.md.
strongswan-charon-test:
	go test -tags ike -count=1 -timeout 20m -run 'TestTwoGateways|TestLibipsecPeer|TestMOBIKE' -v ./hack/ike

# Traffic through IKE-keyed tunnels rekeying every 30 s for 10 minutes (CI runs 2): memory, frames,
# the wire, lost echoes (hack/ike/soak_test.go). XDPSEC_SOAK=30m make soak for longer.
XDPSEC_SOAK ?= 10m
soak:
	XDPSEC_SOAK=$(XDPSEC_SOAK) go test -tags ike -count=1 -timeout 60m -run TestSoak -v ./hack/ike

# Two gateways negotiating with charon through the plugin and carrying traffic (root).
ike-demo:
	./hack/ike-demo.sh
