package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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
// Every change etcd reports is read back; only a view that differs from the last one sent is sent.
// The view is also read back at each keep-alive, so a change made while the watch was starting is
// sent within watchKeepAlive at worst.
func (s *server) watchResource(c echo.Context, r cheops.Resource) error {
	ctx := c.Request().Context()
	changes := s.Store.WatchResource(ctx, r.ID)
	w := c.Response()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var last []byte
	send := func(event string, data []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(WriteTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		return rc.Flush()
	}
	// sendView reads the view and sends it if it changed; done is set once the resource is gone.
	sendView := func() (done bool, err error) {
		cur, err := s.Store.GetResource(ctx, r.ID)
		if err == nil {
			// A caller bound to some sites stops seeing a resource placed elsewhere since.
			var ok bool
			if ok, err = s.visible(c, cur, nil); err == nil && !ok {
				err = store.ErrNotFound
			}
		}
		if errors.Is(err, store.ErrNotFound) {
			b, _ := json.Marshal(map[string]string{"id": r.ID, "name": r.Name})
			return true, send("deleted", b)
		}
		if err != nil {
			return false, err
		}
		v, err := s.view(c, cur)
		if err != nil {
			return false, err
		}
		b, err := json.Marshal(v)
		if err != nil || bytes.Equal(b, last) {
			return false, err
		}
		last = b
		return false, send("resource", b)
	}
	if done, err := sendView(); done || err != nil {
		return nil // the headers are sent: an error can only end the stream
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
				return nil // etcd ended the watch: the client watches again
			}
			select {
			case <-time.After(watchDebounce):
			case <-ctx.Done():
				return nil
			}
		case <-keepAlive.C:
			_ = rc.SetWriteDeadline(time.Now().Add(WriteTimeout))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
		if done, err := sendView(); done || err != nil {
			return nil
		}
	}
}
