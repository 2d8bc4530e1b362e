package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name string
	data string
}

// readEvents reads a stream's events into a channel until it ends.
func readEvents(t *testing.T, resp *http.Response) <-chan sseEvent {
	t.Helper()
	out := make(chan sseEvent, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

// Watching a resource streams its view at once, then each change of it (a replica recorded, its
// site turning unreachable, which shows the replica Unknown), then "deleted" when it is forgotten;
// a bad watch value is a 422 naming the field.
func TestWatchStreamsChanges(t *testing.T) {
	h := newAPI(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	st := newStore(t)
	ctx := context.Background()
	addSite(t, h, "paris")
	rec := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": "watched", "manifest": cm("watched"),
		"scope": map[string]any{"sites": []string{"paris"}}})
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body)
	}
	r := decodeResource(t, rec)

	if rec := do(t, h, http.MethodGet, "/v1/resources/watched?watch=yes", nil); rec.Code != http.StatusUnprocessableEntity ||
		!strings.Contains(rec.Body.String(), `"field":"watch"`) {
		t.Fatalf("watch=yes: %d %s", rec.Code, rec.Body)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/resources/watched?watch=true", nil)
	req.Header.Set("Authorization", "Bearer viewer-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readEvents(t, resp)
	view := func(ev sseEvent) (state cheops.ResourceState, reps []cheops.Replica) {
		t.Helper()
		if ev.name != "resource" {
			t.Fatalf("event %q %s; want a resource event", ev.name, ev.data)
		}
		var v struct {
			State    cheops.ResourceState
			Replicas []cheops.Replica
		}
		if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
			t.Fatal(err)
		}
		return v.State, v.Replicas
	}
	if state, _ := view(nextEvent(t, events)); state != cheops.ResourcePending {
		t.Fatalf("first event: %s; want Pending", state)
	}

	if _, err := st.UpdateReplica(ctx, r.ID, "paris", func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State, rep.ObservedGeneration, rep.LocalID = cheops.ReplicaReady, 1, "uid-1"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if state, reps := view(nextEvent(t, events)); state != cheops.ResourceReady || reps[0].State != cheops.ReplicaReady {
		t.Fatalf("after the replica was recorded: %s %+v; want Ready", state, reps)
	}

	if _, err := st.UpdateSite(ctx, "paris", nil, func(s *cheops.Site) (*cheops.Event, error) {
		s.Health = cheops.SiteUnreachable
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if state, reps := view(nextEvent(t, events)); state != cheops.ResourceDegraded || reps[0].State != cheops.ReplicaUnknown {
		t.Fatalf("after paris turned unreachable: %s %+v; want Degraded, Unknown", state, reps)
	}

	if err := st.DeleteReplica(ctx, r.ID, "paris", nil); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, events) // no replica left
	if err := st.DeleteResource(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.name != "deleted" || !strings.Contains(ev.data, r.ID) {
		t.Fatalf("after the resource was forgotten: %q %s; want deleted", ev.name, ev.data)
	}
	if _, ok := <-events; ok {
		t.Fatal("the stream goes on after the resource is gone")
	}
}
