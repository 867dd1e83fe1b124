package rootd

import (
	"context"
	"errors"
	"syscall"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/wire"
)

var errNotFoundLike = []error{engine.ErrNotFound, engine.ErrNotRunning}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// statusOf maps an error onto the status a reply carries: PCP's own code
// where PCP has one, else a negated errno, so PCP's client reports it
// through pmErrStr and rootd's client through errors.Is.
func statusOf(err error) int32 {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, engine.ErrNotFound), errors.Is(err, engine.ErrUnavailable):
		return wire.StatusNoContainer
	case errors.Is(err, engine.ErrAmbiguous):
		return -int32(syscall.ENOTUNIQ)
	case errors.Is(err, engine.ErrNotRunning):
		return -int32(syscall.ESRCH)
	case errors.Is(err, engine.ErrInvalidName):
		return -int32(syscall.EINVAL)
	case errors.Is(err, context.DeadlineExceeded):
		return -int32(syscall.ETIMEDOUT)
	case errors.Is(err, ErrNotAllowed):
		return -int32(syscall.EPERM)
	case errors.As(err, &errno) && errno > 0 && errno < 4096:
		return -int32(errno)
	}
	return wire.StatusGeneric
}
