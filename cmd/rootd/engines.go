package main

// The engines rootd ships. Adding an engine is one package under engine/
// and one line here.
import (
	_ "github.com/rootd-project/rootd/engine/containerd"
	_ "github.com/rootd-project/rootd/engine/docker"
	_ "github.com/rootd-project/rootd/engine/lxc"
	_ "github.com/rootd-project/rootd/engine/podman"
	_ "github.com/rootd-project/rootd/engine/static"
)
