package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rootd-project/rootd/internal/manpage"
)

// manpageCmd prints the command tree as internal/manpage's Help, in JSON,
// for cmd/gendocs: the page is generated from the built binary's own
// commands and flags (the engines compiled in included), as rootd's page is
// from its -h, without parsing cobra's help layout.
const manpageCmd = "__manpage"

func (a *app) manpageCommand() *cobra.Command {
	return &cobra.Command{
		Use:    manpageCmd,
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeJSON(a.stdout, helpOf(cmd.Root()))
		},
	}
}

func helpOf(root *cobra.Command) manpage.Help {
	root.InitDefaultVersionFlag()
	root.InitDefaultHelpFlag()
	intro, _, _ := strings.Cut(root.Long, "\nExit status:\n")
	h := manpage.Help{
		Synopsis: []string{"rootctl [flags] COMMAND [ARGS]"},
		Intro:    textBlocks(intro),
		GNU:      true,
		Sections: []manpage.Section{{Heading: "Exit status", Body: exitStatusHelp}},
	}
	h.Flags = flagsOf(root.PersistentFlags())
	h.Flags = append(h.Flags, flagsOf(root.LocalNonPersistentFlags())...)
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" {
			continue
		}
		usage := strings.TrimPrefix(c.UseLine(), "rootctl ")
		if c.HasAvailableSubCommands() {
			var subs []string
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() {
					subs = append(subs, s.Name())
				}
			}
			usage = c.Name() + " {" + strings.Join(subs, "|") + "}"
		}
		long := c.Long
		if long == "" {
			long = c.Short
		}
		if c.Example != "" {
			long += "\n\nExamples:\n" + c.Example
		}
		h.Commands = append(h.Commands, manpage.Command{Usage: usage, Intro: textBlocks(long), Flags: flagsOf(c.LocalNonPersistentFlags())})
	}
	return h
}

// textBlocks splits help text the way man pages show it: paragraphs, and
// indented lines as they are.
func textBlocks(s string) []manpage.Block {
	var out []manpage.Block
	var cur *manpage.Block
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			cur = nil
			continue
		}
		pre := strings.HasPrefix(l, " ")
		if cur == nil || cur.Pre != pre {
			out = append(out, manpage.Block{Pre: pre})
			cur = &out[len(out)-1]
		}
		if pre {
			l = strings.TrimPrefix(l, "  ")
		}
		cur.Lines = append(cur.Lines, l)
	}
	return out
}

func flagsOf(fs *pflag.FlagSet) []manpage.Flag {
	var out []manpage.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		arg, usage := pflag.UnquoteUsage(f)
		if arg == "bool" || f.NoOptDefVal == "true" {
			arg = ""
		}
		switch f.DefValue {
		case "", "false", "0", "[]", "0s":
		default:
			usage += ` (default "` + f.DefValue + `")`
		}
		out = append(out, manpage.Flag{Name: f.Name, Short: f.Shorthand, Arg: arg, Usage: usage})
	})
	return out
}
