package lxc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rootd-project/rootd/engine"
)

// infoTimeout bounds one run of the --lxc-info command.
const infoTimeout = 5 * time.Second

// maxInfoOutput bounds what is kept of its output; lxc-info prints a few
// hundred bytes.
const maxInfoOutput = 64 << 10

// infoStatus runs the configured lxc-info command for one container.
func (e *Engine) infoStatus(ctx context.Context, name string) status {
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	args := append(e.infoCmd[1:len(e.infoCmd):len(e.infoCmd)], "-n", name)
	cmd := exec.CommandContext(ctx, e.infoCmd[0], args...)
	var out, errOut cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		e.log.Warn("lxc-info command failed; container shown as stopped",
			"name", name, "command", e.infoCmd[0], "err", err, "stderr", strings.TrimSpace(errOut.String()))
		return status{state: engine.StateStopped, unsettled: ctx.Err() != nil}
	}
	st, pid, err := parseLXCInfo(out.Bytes())
	if err != nil {
		e.log.Warn("cannot parse lxc-info output; container shown as stopped", "name", name, "err", err)
		return stopped
	}
	state := lxcToState(st)
	if !state.HasProcess() {
		pid = 0
	} else if pid == 0 {
		e.log.Warn("lxc-info gave no PID for a running container; shown as stopped", "name", name, "state", st)
		return status{state: engine.StateStopped, unsettled: true}
	}
	return status{state: state, pid: pid, unsettled: !lxcHasInit(st) && st != lxcStopped}
}

var errNoState = errors.New("no State line")

// parseLXCInfo reads "State: RUNNING" and "PID: 1234" from lxc-info's
// output. PID is 0 when absent (stopped containers have none).
func parseLXCInfo(out []byte) (lxcState, int, error) {
	var (
		state    lxcState
		pid      int
		sawState bool
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "state":
			s, ok := parseLXCState(value)
			if !ok {
				return 0, 0, fmt.Errorf("unknown state %q", value)
			}
			state, sawState = s, true
		case "pid":
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 {
				return 0, 0, fmt.Errorf("bad PID %q", value)
			}
			pid = n
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !sawState {
		return 0, 0, errNoState
	}
	return state, pid, nil
}

func parseLXCState(s string) (lxcState, bool) {
	for i, n := range lxcStateNames {
		if strings.EqualFold(s, n) {
			return lxcState(i), true
		}
	}
	return 0, false
}

// cappedBuffer keeps the first maxInfoOutput bytes written to it and
// discards the rest, so a runaway command cannot fill memory.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxInfoOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
