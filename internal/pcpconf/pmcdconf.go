package pcpconf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// The ways pmcd talks to an agent, as pmcd.conf names them.
const (
	IPCDSO    = "dso"
	IPCPipe   = "pipe"
	IPCSocket = "socket"
)

// maxDomain is pmcd's MAXDOMID: the largest domain number it accepts.
const maxDomain = 510

// maxLine is the longest logical line pmcd reads (ten of its 1024-byte
// buffers); it gives up on the file past that.
const maxLine = 10 * 1024

// Agent is one agent line of pmcd.conf.
type Agent struct {
	Label  string
	Domain int
	IPC    string // IPCDSO, IPCPipe or IPCSocket
	// Argv is the command pmcd starts (pipe agents, and socket agents
	// that name one), word for word as pmcd stores it; nil for DSO agents
	// and socket agents pmcd only connects to.
	Argv     []string
	NotReady bool
	Line     int // the line the agent's specification starts on
}

// ErrPMCDConf marks a problem in pmcd.conf. Lines with errors are skipped,
// as pmcd reports them; an unterminated quote ends the parse, as it does
// in pmcd.
var ErrPMCDConf = errors.New("pmcd.conf")

// ParsePMCDConf reads pmcd's configuration the way pmcd's own scanner does
// (src/pmcd/src/config.c): agent lines until the first line that starts with
// '[' (the access control section); words separated by white space; '#'
// starts a comment unless escaped or quoted; a word that starts with '"'
// runs to the next unescaped '"' and may hold white space; a backslash
// before '"' or '#' is dropped; a line ending in a backslash continues on
// the next. pmcd expands nothing: no variables, no '~'.
//
// It returns every agent line that pmcd would accept, and the errors of the
// lines it would reject.
func ParsePMCDConf(r io.Reader) ([]Agent, error) {
	var (
		agents []Agent
		errs   []error
	)
	lines := newLineReader(r)
	domains := map[int]string{}
	for {
		line, lineNo, err := lines.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				errs = append(errs, err)
			}
			break
		}
		words, err := tokenize(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: line %d: %w", ErrPMCDConf, lineNo, err))
			break // pmcd gives up on the file at a scanner error
		}
		if len(words) == 0 {
			continue
		}
		if strings.HasPrefix(words[0], "[") {
			break // [access]: no agents after this
		}
		a, err := parseAgent(words, domains)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: line %d: %w", ErrPMCDConf, lineNo, err))
			continue
		}
		a.Line = lineNo
		domains[a.Domain] = a.Label
		agents = append(agents, a)
	}
	return agents, errors.Join(errs...)
}

func parseAgent(w []string, domains map[int]string) (Agent, error) {
	a := Agent{Label: w[0]}
	if len(w) < 2 || !allDigits(w[1]) {
		return a, fmt.Errorf("expected domain number for %q agent", a.Label)
	}
	for _, c := range w[1] {
		a.Domain = a.Domain*10 + int(c-'0')
		if a.Domain > maxDomain {
			return a, fmt.Errorf("illegal domain number %s for %q agent", w[1], a.Label)
		}
	}
	if other, ok := domains[a.Domain]; ok {
		return a, fmt.Errorf("domain number for %q agent clashes with %q agent", a.Label, other)
	}
	if len(w) < 3 {
		return a, errors.New("expected `dso', `socket' or `pipe'")
	}
	rest := w[3:]
	switch strings.ToLower(w[2]) {
	case IPCDSO:
		a.IPC = IPCDSO
		if len(rest) != 2 {
			return a, errors.New("a DSO agent takes an entry point and a path")
		}
		if !strings.HasPrefix(rest[1], "/") {
			return a, fmt.Errorf("path %q to PMDA is not absolute", rest[1])
		}
	case IPCPipe:
		a.IPC = IPCPipe
		if len(rest) == 0 || !strings.EqualFold(rest[0], "binary") {
			return a, errors.New("pipe PDU type expected (`binary')")
		}
		rest = rest[1:]
		for len(rest) > 0 && strings.EqualFold(rest[0], "notready") {
			a.NotReady = true
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return a, errors.New("command to create pipe agent expected")
		}
		a.Argv = rest
	case IPCSocket:
		a.IPC = IPCSocket
		if len(rest) == 0 {
			return a, errors.New("expected socket address domain (`inet', `ipv6', or `unix')")
		}
		switch strings.ToLower(rest[0]) {
		case "inet", "ipv6", "unix":
		default:
			return a, errors.New("expected socket address domain (`inet', `ipv6', or `unix')")
		}
		if len(rest) < 2 {
			return a, errors.New("expected socket port name or number")
		}
		if len(rest) > 2 {
			a.Argv = rest[2:]
		}
	default:
		return a, errors.New("expected `dso', `socket' or `pipe'")
	}
	return a, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isSpace is C's isspace in the "C" locale.
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// tokenize splits one logical line (without its newline) into words.
func tokenize(line string) ([]string, error) {
	var words []string
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) || line[i] == '#' {
			return words, nil
		}
		start := i
		quoted := line[i] == '"'
		end := i + 1
		closed := false
		for ; end < len(line); end++ {
			c := line[end]
			escaped := line[end-1] == '\\'
			if quoted {
				if c == '"' && !escaped {
					closed = true
					break
				}
				continue
			}
			if isSpace(c) || c == '#' && !escaped {
				break
			}
		}
		if quoted && !closed {
			return nil, errors.New("unterminated quoted string")
		}
		raw := line[start:end]
		if quoted {
			raw = raw[1:]
			end++ // past the closing quote; the next word may follow at once
		}
		words = append(words, unescape(raw))
		i = end
	}
}

// unescape drops each backslash that comes before '"' or '#'.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '#') {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lineReader yields logical lines: a line ending in a backslash is joined
// to the next, the backslash becoming a space, as pmcd does.
type lineReader struct {
	r    *bufio.Reader
	line int
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: bufio.NewReader(r)} }

func (lr *lineReader) next() (string, int, error) {
	var b strings.Builder
	first := lr.line + 1
	for {
		s, err := lr.r.ReadString('\n')
		if s == "" && err != nil {
			if b.Len() > 0 {
				return b.String(), first, nil
			}
			return "", first, err
		}
		lr.line++
		s = strings.TrimSuffix(s, "\n")
		if b.Len()+len(s) > maxLine {
			return "", first, fmt.Errorf("%w: line %d: ridiculously long line", ErrPMCDConf, lr.line)
		}
		if strings.HasSuffix(s, `\`) && err == nil {
			b.WriteString(s[:len(s)-1])
			b.WriteByte(' ')
			continue
		}
		b.WriteString(s)
		return b.String(), first, nil
	}
}

// DefaultPMDARoot is where PCP installs pmdaroot.
const DefaultPMDARoot = "/var/lib/pcp/pmdas/root/pmdaroot"

// StartsPMDARoot returns the agent line that would have pmcd start PCP's
// pmdaroot: the program is its default path, or any program named pmdaroot.
func StartsPMDARoot(agents []Agent) (Agent, bool) {
	for _, a := range agents {
		if len(a.Argv) == 0 {
			continue
		}
		if a.Argv[0] == DefaultPMDARoot || filepath.Base(a.Argv[0]) == "pmdaroot" {
			return a, true
		}
	}
	return Agent{}, false
}
