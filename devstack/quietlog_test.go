package devstack

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestQuietLoggerDropsOnlyRetriedNoise(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	stopping := &atomic.Bool{}
	l := quietLogger(zap.New(core), stopping)
	l.Error("Operation failed with internal error.", zap.Error(errors.New("UpdateTaskQueue: database is locked (5) (SQLITE_BUSY)")))
	l.Error("service failures", zap.String("error", "Frontend is not healthy yet"))
	l.With(zap.String("component", "matching")).Error("error fetching user data", zap.Error(errors.New("Not enough hosts to serve the request")))
	l.Warn("HTTP API port has not been set. Nexus HTTP endpoints will not be available.")
	l.Warn("Failed to poll for task.", zap.String("WorkerType", "WorkflowWorker"))
	l.Error("persistence failure", zap.Error(errors.New("disk full")))
	if logs.Len() != 2 || logs.All()[0].Message != "Failed to poll for task." || logs.All()[1].Message != "persistence failure" {
		t.Fatalf("kept %d entries (%v); want the failed poll (the server is not stopping) and the real error", logs.Len(), logs.All())
	}
	// Once the server is stopping, its own workers' failed polls are expected.
	stopping.Store(true)
	l.Warn("Failed to poll for task.", zap.String("WorkerType", "WorkflowWorker"))
	if logs.Len() != 2 {
		t.Fatalf("a failed poll while stopping was kept")
	}
	// After the first minute, a frontend that is not healthy is news.
	late := quietCore{zap.New(core).Core(), time.Now().Add(-time.Second), nil}
	zap.New(late).Error("service failures", zap.String("error", "Frontend is not healthy yet"))
	if logs.Len() != 3 {
		t.Fatalf("after start-up the entry was dropped")
	}
}
