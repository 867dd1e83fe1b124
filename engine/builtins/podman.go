//go:build !no_podman

package builtins

import _ "github.com/rootd-project/rootd/engine/podman" // registers "podman"
