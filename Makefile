# hitkit: build, test, demo and benchmark targets.
# `make demo` and `make test` work on a fresh Debian machine as root: they
# install the peers they need first (make deps).

GO      ?= go
BIN     := bin/hitkit
PKGS    := tgt istgt libiscsi-bin fio libnbd-bin nbdkit qemu-utils qemu-block-extra fuse3 iproute2 e2fsprogs tmux python3-aiosmtpd bind9-dnsutils openssl
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin

.PHONY: all deps build test demo bench fuzz clean

all: build

# Installs the Debian packages that the tests and the demo use, when missing.
deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build:
	$(GO) build -o $(BIN) .

# The whole suite: unit, interop (tgtd, istgt, libiscsi) and end-to-end tests.
test: deps build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...

demo: deps build
	./scripts/demo.sh

bench: deps build
	./scripts/bench.sh

# Runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
