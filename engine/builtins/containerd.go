//go:build !no_containerd

package builtins

import _ "github.com/rootd-project/rootd/engine/containerd" // registers "containerd"
