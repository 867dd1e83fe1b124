//go:build !no_lxc

package builtins

import _ "github.com/rootd-project/rootd/engine/lxc" // registers "lxc"
