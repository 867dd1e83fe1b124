package wire

import (
	"fmt"
	"syscall"
)

// PCP error codes that travel in a header's status field. Everything else
// rootd sends there is a negated errno.
const (
	StatusGeneric     = -12345 // PM_ERR_GENERIC
	StatusNoContainer = -12399 // PM_ERR_NOCONTAINER
)

// StatusError is a non-zero status received in a reply. It matches its
// errno with errors.Is, so callers can test errors.Is(err, syscall.ESRCH).
type StatusError int32

// ErrNoContainer is the status for an unknown container.
var ErrNoContainer error = StatusError(StatusNoContainer)

func (e StatusError) Error() string {
	switch e {
	case StatusNoContainer:
		return "no such container (PM_ERR_NOCONTAINER)"
	case StatusGeneric:
		return "generic error (PM_ERR_GENERIC)"
	}
	if e < 0 && e > -4096 {
		return syscall.Errno(-e).Error()
	}
	return fmt.Sprintf("status %d", int32(e))
}

// Is makes a status match the errno it carries.
func (e StatusError) Is(target error) bool {
	errno, ok := target.(syscall.Errno)
	return ok && e < 0 && e > -4096 && syscall.Errno(-e) == errno
}

// Errno returns the errno a status carries, if it is one.
func (e StatusError) Errno() (syscall.Errno, bool) {
	if e < 0 && e > -4096 {
		return syscall.Errno(-e), true
	}
	return 0, false
}

// StatusFromErrno returns the wire status for an errno.
func StatusFromErrno(errno syscall.Errno) int32 { return -int32(errno) }
