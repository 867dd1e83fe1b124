//go:build !no_static

package builtins

import _ "github.com/rootd-project/rootd/engine/static" // registers "static"
