// Package builtins is the one list of the engines rootd and rootctl ship.
// Importing it registers each of them with package engine, one file per
// engine, as containerd's cmd/containerd/builtins does for its plugins.
//
// Each file carries a build tag that leaves its engine out, so a smaller
// binary is one flag away:
//
//	go build -tags no_lxc,no_static ./cmd/rootd
//
// Adding an engine is its package under engine/ plus one file here.
package builtins
