package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rootd-project/rootd/engine"
)

// Output formats of ls, resolve and which.
const (
	outTable = "table"
	outWide  = "wide"
	outJSON  = "json"
	outName  = "name"
)

var outputs = []string{outTable, outWide, outJSON, outName}

func checkOutput(o string, allowed []string) error {
	if !slices.Contains(allowed, o) {
		return usagef("-o %s: want one of %s", quoteName(o), strings.Join(allowed, ", "))
	}
	return nil
}

// esc makes a string from an engine safe for a terminal and for a table: a
// container name is whatever its creator wrote, and a name with escape
// sequences or newlines must neither drive the terminal nor forge rows.
// Such a string is printed Go-quoted ("web\x1b[2J"); an ordinary one as it is.
// JSON output escapes by itself and is never passed through this.
func esc(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool {
		return !unicode.IsPrint(r) || r == '"' || r == '\\' || unicode.IsSpace(r)
	}) >= 0 {
		return strconv.Quote(s)
	}
	if s == "" {
		return "-"
	}
	return s
}

// escText is esc for free text (a version, an engine's error message):
// spaces and quotes are fine there, control characters are not.
func escText(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// quoteName is a name in a message: always quoted, so that an empty or odd
// name is visible.
func quoteName(s string) string { return strconv.Quote(s) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// shortID is what docker ps shows for 64-hex-digit IDs; other IDs whole.
func shortID(id string) string { return engine.Container{ID: id}.ShortID() }

// displayName is the name people know c by, as containers.name shows it:
// its first name, or NAMESPACE/POD/CONTAINER for a Kubernetes container
// whose only name is the one within its pod (two pods' "nginx" are two
// different containers); "" if it has none.
func displayName(c Info) string { return engine.DisplayName(c.Names, c.Labels) }

func pidText(pid int) string {
	if pid > 0 {
		return strconv.Itoa(pid)
	}
	return "-"
}

// printContainers prints rows in one of the formats. json prints an array
// (asList) or one object; one container (resolve, which) is printed in
// table and wide as printDetail's one field a line.
func printContainers(w io.Writer, rows []Info, format string, asList bool) error {
	switch format {
	case outJSON:
		if asList {
			if rows == nil {
				rows = []Info{}
			}
			return writeJSON(w, rows)
		}
		return writeJSON(w, rows[0])
	case outName:
		// The display name, or the full ID of a container without one: each
		// line is something rootctl and PCP accept as NAME.
		for _, c := range rows {
			n := displayName(c)
			if n == "" {
				n = c.ID
			}
			fmt.Fprintln(w, esc(n))
		}
		return nil
	}
	if !asList {
		return printDetail(w, rows[0])
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// No HOSTNAME column: a listing carries no hostnames (each would mean
	// entering the container's UTS namespace); resolve shows one.
	if format == outWide {
		fmt.Fprintln(tw, "ENGINE\tID\tNAMES\tSTATE\tPID\tNAMESPACE\tCGROUP\tLABELS")
	} else {
		fmt.Fprintln(tw, "ENGINE\tID\tNAME\tSTATE\tPID\tCGROUP")
	}
	for _, c := range rows {
		if format == outWide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", esc(c.Engine), esc(c.ID), namesText(c),
				esc(c.State), pidText(c.PID), esc(c.Namespace), esc(c.Cgroup), labelCount(c))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", esc(c.Engine), esc(shortID(c.ID)), esc(displayName(c)),
			esc(c.State), pidText(c.PID), esc(c.Cgroup))
	}
	return tw.Flush()
}

func namesText(c Info) string {
	if len(c.Names) == 0 {
		return "-"
	}
	names := make([]string, len(c.Names))
	for i, n := range c.Names {
		names[i] = esc(n)
	}
	return strings.Join(names, ",")
}

// withheld marks labels rootd kept from a user other than root (rootd
// sends such a user only the Kubernetes identity labels; docs/security.md).
const withheld = "withheld: root only"

// labelCount is ls -o wide's LABELS: how many labels the container has, and
// "+withheld" when rootd withheld some from this user.
func labelCount(c Info) string {
	switch {
	case c.LabelsRedacted && len(c.Labels) == 0:
		return "withheld"
	case c.LabelsRedacted:
		return strconv.Itoa(len(c.Labels)) + "+withheld"
	case len(c.Labels) == 0:
		return "-"
	}
	return strconv.Itoa(len(c.Labels))
}

// printDetail prints one container a field a line, every field the source
// gave, labels one a line.
func printDetail(w io.Writer, c Info) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range [][2]string{
		{"engine", esc(c.Engine)}, {"id", esc(c.ID)}, {"names", namesText(c)}, {"state", esc(c.State)},
		{"pid", pidText(c.PID)}, {"namespace", esc(c.Namespace)}, {"cgroup", esc(c.Cgroup)}, {"hostname", esc(c.Hostname)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		labels = append(labels, esc(k)+"="+esc(c.Labels[k]))
	}
	switch {
	case c.LabelsRedacted && len(labels) == 0:
		labels = []string{"(" + withheld + ")"}
	case c.LabelsRedacted:
		labels = append(labels, "(others "+withheld+")")
	case len(labels) == 0:
		labels = []string{"-"}
	}
	for i, l := range labels {
		key := ""
		if i == 0 {
			key = "labels:"
		}
		fmt.Fprintf(tw, "%s\t%s\n", key, l)
	}
	return tw.Flush()
}

// publicLabels are the labels rootd sends every allowed user: the
// Kubernetes identity (rootd/view.go). A label filter on any other key
// cannot match for a user other than root.
var publicLabels = []string{engine.LabelPodNamespace, engine.LabelPodName, engine.LabelContainerName, engine.LabelPodUID}

// hiddenLabelFilters returns the label filters on keys rootd withholds from
// a user other than root.
func (f filters) hiddenLabelFilters() []string {
	var out []string
	for _, l := range f.labels {
		k, _, _ := strings.Cut(l, "=")
		if !slices.Contains(publicLabels, k) {
			out = append(out, l)
		}
	}
	return out
}

// filters are ls's --filter KEY=VALUE options: different keys must all
// match, values of one key are alternatives (as docker ps --filter).
type filters struct {
	engines, states, names []string
	labels                 []string // "k" or "k=v"
}

var filterKeys = []string{"engine", "state", "name", "label"}

func parseFilters(specs []string) (filters, error) {
	var f filters
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		if !ok || v == "" {
			return f, usagef("--filter %s: want KEY=VALUE with KEY one of %s", quoteName(s), strings.Join(filterKeys, ", "))
		}
		switch k {
		case "engine":
			f.engines = append(f.engines, v)
		case "state":
			switch engine.State(v) {
			case engine.StateRunning, engine.StatePaused, engine.StateRestarting, engine.StateStopped:
			default:
				return f, usagef("--filter state=%s: want running, paused, restarting or stopped", esc(v))
			}
			f.states = append(f.states, v)
		case "name":
			if _, err := path.Match(v, ""); err != nil {
				return f, usagef("--filter name=%s: %v", esc(v), err)
			}
			f.names = append(f.names, v)
		case "label":
			f.labels = append(f.labels, v)
		default:
			return f, usagef("--filter %s: unknown key %s (want %s)", quoteName(s), quoteName(k), strings.Join(filterKeys, ", "))
		}
	}
	return f, nil
}

func (f filters) match(c Info) bool {
	if len(f.engines) > 0 && !slices.Contains(f.engines, c.Engine) {
		return false
	}
	if len(f.states) > 0 && !slices.Contains(f.states, c.State) {
		return false
	}
	if len(f.names) > 0 && !slices.ContainsFunc(f.names, func(p string) bool { return nameMatches(c, p) }) {
		return false
	}
	if len(f.labels) > 0 && !slices.ContainsFunc(f.labels, func(l string) bool { return labelMatches(c, l) }) {
		return false
	}
	return true
}

// nameMatches: a pattern with glob characters is matched against every name
// whole (path.Match: '*' does not cross '/', as in NAMESPACE/POD/CONTAINER);
// a plain one is a prefix of a name or of the ID.
func nameMatches(c Info, p string) bool {
	glob := strings.ContainsAny(p, `*?[\`)
	for _, n := range append([]string{displayName(c)}, c.Names...) {
		if glob {
			if ok, _ := path.Match(p, n); ok {
				return true
			}
		} else if strings.HasPrefix(n, p) {
			return true
		}
	}
	return !glob && strings.HasPrefix(c.ID, p)
}

func labelMatches(c Info, l string) bool {
	k, v, hasValue := strings.Cut(l, "=")
	got, ok := c.Labels[k]
	return ok && (!hasValue || got == v)
}

func printStatus(w io.Writer, st Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	ready := "no (building its first index)"
	if st.Ready {
		ready = "yes"
	}
	fmt.Fprintf(tw, "version:\t%s\n", escText(st.Version))
	if st.Commit != "" {
		fmt.Fprintf(tw, "commit:\t%s\n", escText(st.Commit))
	}
	if !st.Started.IsZero() {
		fmt.Fprintf(tw, "started:\t%s\n", st.Started.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "ready:\t%s\n", ready)
	fmt.Fprintf(tw, "containers:\t%d\n", st.Containers)
	if st.Clients > 0 {
		fmt.Fprintf(tw, "clients:\t%d\n", st.Clients)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tHEALTH\tCONTAINERS\tSTATES\tLAST ERROR")
	for _, e := range st.Engines {
		var states []string
		for _, s := range slices.Sorted(maps.Keys(e.States)) {
			states = append(states, fmt.Sprintf("%s=%d", s, e.States[s]))
		}
		last := "-"
		if e.Error != "" {
			last = escText(e.Error)
			if !e.LastError.IsZero() {
				last = e.LastError.UTC().Format(time.RFC3339) + " " + last
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", esc(e.Name), esc(e.Health), e.Containers, esc(strings.Join(states, ",")), last)
	}
	return tw.Flush()
}
