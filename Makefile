# The build entry point packagers expect. 'make' builds bin/rootd and
# bin/rootctl: static (CGO_ENABLED=0), -trimpath, with the release, the commit
# and the commit's date stamped in, so two builds of one commit are byte for
# byte the same wherever they run (scripts/reproducible.sh checks it).
#
#   make                    build bin/rootd and bin/rootctl
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

.PHONY: all rootd rootctl test reproducible clean
all: rootd rootctl

rootd rootctl:
	$(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $(BIN)/$@ ./cmd/$@

test:
	sh scripts/test.sh

reproducible:
	sh scripts/reproducible.sh

clean:
	rm -rf $(BIN)
