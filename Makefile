# The build entry point packagers expect. 'make' builds bin/rootd and
# bin/rootctl: static (CGO_ENABLED=0), -trimpath, with the release, the commit
# and the commit's date stamped in, so two builds of one commit are byte for
# byte the same wherever they run (scripts/reproducible.sh checks it).
#
#   make                    build bin/rootd and bin/rootctl
#   make man                bin/pkgroot/man/: rootd.8, rootctl.1 (from the binaries' help)
#   make completions        bin/pkgroot/completions/: rootctl's bash, zsh and fish completion
#   make deb rpm            bin/rootd_VERSION-1_ARCH.deb, bin/rootd-VERSION-1.ARCH.rpm
#   make image              the container image rootd:VERSION (local docker, FROM scratch)
#   make package-test       install the .deb, check it, purge it (root; scripts/package-test.sh)
#   make test               the README's test command (as root: sets up engines)
#   make reproducible       build one commit twice in two directories, compare
#   make clean
#
# COMMIT and SOURCE_DATE_EPOCH come from git, or from the environment when
# building from an exported tree.

VERSION           ?= $(shell cat VERSION)
COMMIT            ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
GO                ?= go
BIN               ?= bin

PKG     := github.com/rootd-project/rootd/internal/version
LDFLAGS := -s -w -buildid= -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT) -X $(PKG).Date=$(SOURCE_DATE_EPOCH)
# os/user and net without cgo: users and groups come from /etc/passwd and
# /etc/group only (no NSS modules such as sssd or LDAP), which is what a
# static binary for any distribution and a scratch image need.
export CGO_ENABLED := 0
# go.mod asks for go1.27.3 (security fixes); a machine whose own Go is older
# fetches it through the module proxy.
export GOTOOLCHAIN ?= go1.27.3

.PHONY: all rootd rootctl man completions deb rpm packages image package-test image-test test reproducible clean
all: rootd rootctl

rootd rootctl:
	$(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $(BIN)/$@ ./cmd/$@

# Man pages from the built binaries' own -h (cmd/gendocs), lint-checked;
# gzip -n keeps them reproducible (no name, no time stamp).
STAGE := $(BIN)/pkgroot
man: all
	rm -rf $(STAGE)/man
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./cmd/gendocs -bin $(BIN) -o $(STAGE)/man
	cp packaging/man/rootd-switch.8 $(STAGE)/man/man8/
	mandoc -T lint -W all $(STAGE)/man/man8/rootd.8 $(STAGE)/man/man8/rootd-switch.8 $(STAGE)/man/man1/rootctl.1
	gzip -9nf $(STAGE)/man/man8/rootd.8 $(STAGE)/man/man8/rootd-switch.8 $(STAGE)/man/man1/rootctl.1

# Shell completion from the built rootctl's command tree (cobra), so it
# completes exactly the commands and flags of the binary packaged.
completions: all
	rm -rf $(STAGE)/completions && mkdir -p $(STAGE)/completions
	$(BIN)/rootctl completion bash >$(STAGE)/completions/rootctl.bash
	$(BIN)/rootctl completion zsh >$(STAGE)/completions/_rootctl
	$(BIN)/rootctl completion fish >$(STAGE)/completions/rootctl.fish

# Packages with nfpm used as a library from the separate tool module in
# packaging/ (its dependencies stay out of rootd's go.mod).
ABS_BIN = $(abspath $(BIN))
deb rpm: man completions
	cd packaging && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./cmd/mkpkg -C .. -format $@ -version $(VERSION) -o $(ABS_BIN) -stage $(abspath $(STAGE))
packages: deb rpm

# The container image: the two static binaries in an empty image, labelled.
IMAGE ?= rootd:$(VERSION)
IMAGE_CREATED = $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
image: all
	rm -rf $(STAGE)/image && mkdir -p $(STAGE)/image
	cp $(BIN)/rootd $(BIN)/rootctl packaging/image/Dockerfile $(STAGE)/image/
	touch -d @$(SOURCE_DATE_EPOCH) $(STAGE)/image/*
	docker build -q -t $(IMAGE) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) \
		--build-arg CREATED=$(IMAGE_CREATED) $(STAGE)/image

package-test:
	sh scripts/package-test.sh

image-test:
	sh scripts/image-test.sh

test:
	sh scripts/test.sh

reproducible:
	sh scripts/reproducible.sh

clean:
	rm -rf $(BIN)
