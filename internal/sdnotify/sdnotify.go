// Package sdnotify tells systemd about the daemon's state (sd_notify(3)):
// one datagram per message to the unix socket named by $NOTIFY_SOCKET.
// Nothing is sent when the variable is unset, so the daemon runs the same
// outside systemd.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// The messages rootd sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notifier sends state changes to the service manager. The zero value and
// nil send nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET and removes the variable
// from the environment, so that the agents rootd starts do not inherit it
// and speak for rootd. It returns nil when the variable is unset.
func FromEnv() (*Notifier, error) {
	addr, ok := os.LookupEnv("NOTIFY_SOCKET")
	if !ok {
		return nil, nil
	}
	os.Unsetenv("NOTIFY_SOCKET")
	return New(addr)
}

// New returns a Notifier for addr: an absolute path, or "@name" for a
// socket in the abstract namespace (Go's net package turns the leading @
// into the NUL byte the kernel expects).
func New(addr string) (*Notifier, error) {
	if !strings.HasPrefix(addr, "/") && !(strings.HasPrefix(addr, "@") && len(addr) > 1) {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or @abstract name", addr)
	}
	return &Notifier{addr: &net.UnixAddr{Name: addr, Net: "unixgram"}}, nil
}

// Notify sends state, e.g. Ready, in one datagram. A nil Notifier does
// nothing.
func (n *Notifier) Notify(state string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	if state == "" {
		return errors.New("sdnotify: empty state")
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	return nil
}
