package devstack

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestQuietLoggerDropsOnlyRetriedNoise(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := quietLogger(zap.New(core))
	l.Error("Operation failed with internal error.", zap.Error(errors.New("UpdateTaskQueue: database is locked (5) (SQLITE_BUSY)")))
	l.Error("service failures", zap.String("error", "Frontend is not healthy yet"))
	l.With(zap.String("component", "matching")).Error("error fetching user data", zap.Error(errors.New("Not enough hosts to serve the request")))
	l.Error("persistence failure", zap.Error(errors.New("disk full")))
	if logs.Len() != 1 || logs.All()[0].Message != "persistence failure" {
		t.Fatalf("kept %d entries (%v); want only the real error", logs.Len(), logs.All())
	}
	// After the first minute, a frontend that is not healthy is news.
	late := quietCore{zap.New(core).Core(), time.Now().Add(-time.Second)}
	zap.New(late).Error("service failures", zap.String("error", "Frontend is not healthy yet"))
	if logs.Len() != 2 {
		t.Fatalf("after start-up the entry was dropped")
	}
}
