package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrDeleted is what WatchResource returns once the resource it watches is gone.
var ErrDeleted = errors.New("the resource was deleted")

// ErrWatchUnsupported is what WatchResource returns when the API answers a watch with a plain
// resource (a server older than watching), after calling fn with it: poll GetResource instead.
var ErrWatchUnsupported = errors.New("the API does not stream resources (?watch=true)")

// WatchResource streams a resource (GET /v1/resources/{id}?watch=true, Server-Sent Events): fn is
// called with the resource at once and at each change of it, until fn returns false (WatchResource
// returns nil), ctx ends (ctx's error), or the resource is deleted (ErrDeleted). A stream the server
// ends (it ends each after 10 minutes), or a connection lost, or a 503 or 429, is watched again
// after a short wait; any other error answer (a 404: the resource does not exist) is returned.
func (c *Client) WatchResource(ctx context.Context, idOrName string, fn func(Resource) bool) error {
	wait := 200 * time.Millisecond
	for {
		stop, err := c.watchOnce(ctx, idOrName, fn)
		switch {
		case stop:
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			if code := StatusCode(err); code != 0 && code != http.StatusServiceUnavailable && code != http.StatusTooManyRequests {
				return err
			}
		default:
			wait = 200 * time.Millisecond // a stream that ended well is watched again soon
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// watchOnce reads one stream; stop says whether WatchResource returns err, or watches again.
func (c *Client) watchOnce(ctx context.Context, idOrName string, fn func(Resource) bool) (stop bool, err error) {
	path := resourcePath(idOrName)
	resp, err := c.send(ctx, request{method: http.MethodGet, path: path, query: url.Values{"watch": {"true"}}},
		"text/event-stream, application/problem+json")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		// An API without watching answers with the resource as it is: that is the first view.
		var r Resource
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return true, ErrWatchUnsupported
		}
		if !fn(r) {
			return true, nil
		}
		return true, ErrWatchUnsupported
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case line == "":
			ev, body := event, data.String()
			event = ""
			data.Reset()
			switch ev {
			case "deleted":
				return true, ErrDeleted
			case "resource":
				var r Resource
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					return true, fmt.Errorf("GET %s?watch=true: decode an event: %w", path, err)
				}
				if !fn(r) {
					return true, nil
				}
			}
		}
	}
	return false, sc.Err()
}
