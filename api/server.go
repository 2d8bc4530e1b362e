// Package api is cheops' HTTP API: Echo handlers, request validation, RFC 9457 errors and the
// OpenAPI document. It records what users declare in the store and tells the resource workflows,
// through the Orchestrator, that something changed; it never talks to a site itself.
package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document the API serves at /openapi.yaml.
func OpenAPI() []byte { return openAPI }

// Orchestrator starts and steers resource workflows.
type Orchestrator interface {
	// Ensure starts the resource's workflow unless it runs already.
	Ensure(ctx context.Context, resourceID string) error
	// Apply tells the workflow that a new generation is stored.
	Apply(ctx context.Context, resourceID string, generation int64) error
	// Delete tells the workflow that a delete was accepted.
	Delete(ctx context.Context, resourceID string) error
	// Signal sends an operator signal (pause, resume, retry, resync) to the workflow.
	Signal(ctx context.Context, resourceID, name string) error
}

// Config is what the API needs.
type Config struct {
	Store        *store.Store
	Orchestrator Orchestrator
	// Drivers validate manifests and site settings; a driver missing here is refused.
	Drivers map[cheops.DriverName]cheops.Driver
	// Ready reports whether the orchestrator's backend (Temporal) answers.
	Ready func(ctx context.Context) error
	Log   *slog.Logger
	// BodyLimit bounds request bodies in bytes (default 1 MiB).
	BodyLimit int64
}

type server struct{ Config }

// New returns the API's HTTP handler.
func New(cfg Config) *echo.Echo {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.BodyLimit == 0 {
		cfg.BodyLimit = 1 << 20
	}
	s := &server{cfg}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Log)
	e.Use(s.recoverer, s.logRequests, s.limitBody)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", openAPI) })

	v1 := e.Group("/v1")
	v1.POST("/sites", s.createSite)
	v1.GET("/sites", s.listSites)
	v1.GET("/sites/:name", s.getSite)
	v1.PUT("/sites/:name", s.putSite)
	v1.DELETE("/sites/:name", s.deleteSite)

	v1.POST("/resources", s.createResource)
	v1.GET("/resources", s.listResources)
	v1.GET("/resources/:id", s.getResource)
	v1.POST("/resources/:id", s.resourceAction)
	v1.PUT("/resources/:id", s.putResource)
	v1.PATCH("/resources/:id", s.patchResource)
	v1.DELETE("/resources/:id", s.deleteResource)
	v1.GET("/resources/:id/events", s.events)
	return e
}

func (s *server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.Log.Error("handler panicked", "method", c.Request().Method, "path", c.Path(), "panic", r)
				err = problem(http.StatusInternalServerError, "internal error; see the server log")
			}
		}()
		return next(c)
	}
}

// logRequests logs method, route, status and latency; never bodies, which may carry credentials.
func (s *server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.Log.Debug("request", "method", c.Request().Method, "route", c.Path(),
			"status", c.Response().Status, "duration", time.Since(start))
		return nil
	}
}

func (s *server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, s.BodyLimit)
		return next(c)
	}
}

func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		return problem(http.StatusServiceUnavailable, "etcd does not answer: "+err.Error())
	}
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			return problem(http.StatusServiceUnavailable, "temporal does not answer: "+err.Error())
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
