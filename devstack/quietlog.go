package devstack

import (
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// quietCore drops the embedded Temporal server's log entries about conditions it retries and
// that mean nothing is wrong, which it logs at ERROR with a stack trace (one restart printed 1,386
// lines, 29 of them "database is locked"):
//   - SQLite being busy: with one SQLite file, a restart makes the matching service's task-queue
//     leases collide for a moment (SQLITE_BUSY, "database is locked");
//   - during its first minute, the frontend not yet healthy and the membership ring not yet formed,
//     while our own client and the server's services start against it;
//   - once it is stopping, its own workers' polls and dials failing against the services it stops;
//   - the notice that Nexus' HTTP endpoints are off, a feature cheops does not use.
//
// Every other entry passes through untouched.
type quietCore struct {
	zapcore.Core
	startingUntil time.Time
	stopping      *atomic.Bool
}

func (c quietCore) With(fields []zapcore.Field) zapcore.Core {
	return quietCore{c.Core.With(fields), c.startingUntil, c.stopping}
}

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c quietCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	texts := []string{e.Message}
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType {
			texts = append(texts, err.Error())
		} else if f.Type == zapcore.StringType {
			texts = append(texts, f.String)
		}
	}
	starting := time.Now().Before(c.startingUntil)
	stopping := c.stopping != nil && c.stopping.Load()
	for _, t := range texts {
		if retried(t) || starting && startingUp(t) || stopping && stoppingDown(t) || strings.HasPrefix(t, "HTTP API port has not been set. Nexus") {
			return nil
		}
	}
	return c.Core.Write(e, fields)
}

func stoppingDown(s string) bool {
	return strings.Contains(s, "Failed to poll for task") || strings.Contains(s, "network dial error")
}

func retried(s string) bool {
	return strings.Contains(s, "database is locked") || strings.Contains(s, "SQLITE_BUSY")
}

func startingUp(s string) bool {
	return strings.Contains(s, "Frontend is not healthy yet") || strings.Contains(s, "Not enough hosts to serve the request")
}

// quietLogger wraps a zap logger so it drops the entries quietCore drops; stopping says when the
// server is being stopped.
func quietLogger(l *zap.Logger, stopping *atomic.Bool) *zap.Logger {
	until := time.Now().Add(time.Minute)
	return l.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietCore{c, until, stopping} }))
}
