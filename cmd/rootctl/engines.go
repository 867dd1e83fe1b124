package main

// The engines rootctl uses: engine/builtins is the one list, shared with
// rootd; its build tags leave engines out.
import _ "github.com/rootd-project/rootd/engine/builtins"
