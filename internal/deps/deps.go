// Package deps pins the project's chosen dependencies while the packages
// that use them are written. It is removed once each is imported for real.
package deps

import (
	_ "github.com/containerd/containerd/v2/client"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/moby/moby/client"
	_ "github.com/opencontainers/runtime-spec/specs-go"
	_ "golang.org/x/sync/singleflight"
	_ "golang.org/x/sys/unix"
)
