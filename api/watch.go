package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// Watching a resource (GET /v1/resources/{id}?watch=true) streams its view as Server-Sent Events:
// a "resource" event with the view at once and at each change of it, a "deleted" event when it is
// gone, and a comment line every watchKeepAlive so proxies keep the connection. A stream ends after
// watchMaxDuration (the client watches again); each write pushes the server's write deadline on.
const (
	watchKeepAlive   = 10 * time.Second
	watchMaxDuration = 10 * time.Minute
	// watchDebounce gathers a burst of changes (a wave's records) into one event.
	watchDebounce = 100 * time.Millisecond
)

// watchResource streams r's view until it is gone, the client leaves, or watchMaxDuration passes.
func (s *server) watchResource(c echo.Context, r cheops.Resource) error {
	changes := s.Store.WatchResource(c.Request().Context(), r.ID)
	return s.stream(c, changes, func() (string, []byte, error) {
		cur, err := s.Store.GetResource(c.Request().Context(), r.ID)
		if err == nil {
			// A caller bound to some sites stops seeing a resource placed elsewhere since.
			var ok bool
			if ok, err = s.visible(c, cur, nil); err == nil && !ok {
				err = store.ErrNotFound
			}
		}
		if errors.Is(err, store.ErrNotFound) {
			b, _ := json.Marshal(map[string]string{"id": r.ID, "name": r.Name})
			return eventDeleted, b, nil
		}
		if err != nil {
			return "", nil, err
		}
		v, err := s.view(c, cur)
		if err != nil {
			return "", nil, err
		}
		b, err := json.Marshal(v)
		return "resource", b, err
	})
}

// eventDeleted is the last event of a stream: what it showed is gone.
const eventDeleted = "deleted"

// stream answers with Server-Sent Events: the event next returns, at once and after each message
// of changes (a burst gathered for watchDebounce), when its data differ from the last sent, until
// next returns eventDeleted or an error, changes is closed (etcd ended the watch: the client
// watches again), the client leaves, or watchMaxDuration passes. next is also called at each
// keep-alive, so a change made while the watch was starting is sent within watchKeepAlive at
// worst: call the watch that gives changes before stream.
func (s *server) stream(c echo.Context, changes <-chan struct{}, next func() (event string, data []byte, err error)) error {
	ctx := c.Request().Context()
	w := c.Response()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(text string) error {
		_ = rc.SetWriteDeadline(time.Now().Add(WriteTimeout))
		if _, err := fmt.Fprint(w, text); err != nil {
			return err
		}
		return rc.Flush()
	}
	var last []byte
	// send reads and sends what changed; done is set once the stream should end.
	send := func() (done bool) {
		event, data, err := next()
		if err != nil {
			return true // the headers are sent: an error can only end the stream
		}
		if event != eventDeleted && bytes.Equal(data, last) {
			return false
		}
		last = data
		// Data of several lines are sent as several data lines, which the client joins again.
		text := "event: " + event + "\ndata: " + strings.ReplaceAll(string(data), "\n", "\ndata: ") + "\n\n"
		return write(text) != nil || event == eventDeleted
	}
	if send() {
		return nil
	}
	keepAlive := time.NewTicker(watchKeepAlive)
	defer keepAlive.Stop()
	end := time.After(watchMaxDuration)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end:
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
			select {
			case <-time.After(watchDebounce):
			case <-ctx.Done():
				return nil
			}
		case <-keepAlive.C:
			if write(": keep-alive\n\n") != nil {
				return nil
			}
		}
		if send() {
			return nil
		}
	}
}
