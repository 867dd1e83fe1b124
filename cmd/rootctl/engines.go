package main

// The engines rootctl's in-process commands (ls, resolve, which) use.
// Adding an engine is one package under engine/ and one line here and in
// cmd/rootd.
import (
	_ "github.com/rootd-project/rootd/engine/containerd"
	_ "github.com/rootd-project/rootd/engine/docker"
	_ "github.com/rootd-project/rootd/engine/lxc"
	_ "github.com/rootd-project/rootd/engine/podman"
	_ "github.com/rootd-project/rootd/engine/static"
)
