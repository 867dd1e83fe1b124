//go:build !no_docker

package builtins

import _ "github.com/rootd-project/rootd/engine/docker" // registers "docker"
