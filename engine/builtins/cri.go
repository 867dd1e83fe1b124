//go:build !no_cri

package builtins

import _ "github.com/rootd-project/rootd/engine/cri" // registers "cri"
