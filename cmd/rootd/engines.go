package main

// The engines rootd ships: engine/builtins is the one list, shared with
// rootctl; its build tags leave engines out.
import _ "github.com/rootd-project/rootd/engine/builtins"
