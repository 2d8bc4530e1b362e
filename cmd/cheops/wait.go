package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// errGone is what wait returns once the resource no longer exists.
var errGone = errors.New("the resource no longer exists")

// wait follows a resource, showing each site's progress (see progress), until done says so, the
// resource is Failed, Degraded or RolledBack, it is gone (errGone), or the timeout passes. It
// follows the API's stream of the resource's changes (?watch=true), and polls an API that has none.
func (f *clientFlags) wait(cmd *cobra.Command, c *client.Client, id string, timeout time.Duration, done func(client.Resource) bool) (client.Resource, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	p := newProgress(cmd.ErrOrStderr())
	var last client.Resource
	var result error
	step := func(r client.Resource) bool {
		last = r
		p.show(r)
		switch {
		case done(r):
			return false
		case r.State == cheops.ResourceFailed || r.State == cheops.ResourceDegraded || r.State == cheops.ResourceRolledBack:
			result = fmt.Errorf("resource %s is %s", r.Name, r.State)
			return false
		}
		return true
	}
	err := c.WatchResource(ctx, id, step)
	if errors.Is(err, client.ErrWatchUnsupported) {
		err = poll(ctx, c, id, step)
	}
	switch {
	case errors.Is(err, client.ErrDeleted) || client.IsNotFound(err):
		p.gone()
		return last, errGone
	case ctx.Err() != nil && cmd.Context().Err() == nil:
		p.end()
		return last, fmt.Errorf("still %s after %s", last.State, timeout)
	case err != nil:
		p.end()
		return last, err
	}
	p.end()
	return last, result
}

// poll calls fn with the resource every half second until fn returns false, ctx ends, or the
// resource is gone.
func poll(ctx context.Context, c *client.Client, id string, fn func(client.Resource) bool) error {
	for {
		r, err := c.GetResource(ctx, id)
		switch {
		case client.IsNotFound(err):
			return client.ErrDeleted
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		case !fn(r):
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// progress shows a resource's state and each site's replica as they change. On a terminal it
// keeps one line per site, rewritten in place; elsewhere (a file, a pipe, CI) it writes a line for
// each change, so a log reads as the history of the replication.
type progress struct {
	w     io.Writer
	tty   bool
	width int
	// plain: what was last written per site, and of the resource.
	seen  map[string]string
	state cheops.ResourceState
	name  string
	// tty: how many lines the last drawing took.
	drawn int
	last  client.Resource
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, seen: map[string]string{}}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 20 {
			p.width = width
		}
	}
	return p
}

// replicaLine is what progress shows of one replica.
func replicaLine(rep cheops.Replica) string {
	return strings.TrimSpace(fmt.Sprintf("%-9s gen=%d %s %s", rep.State, rep.ObservedGeneration, rep.LocalID, replicaMessage(rep)))
}

func (p *progress) show(r client.Resource) {
	p.name, p.last = r.Name, r
	if p.tty {
		p.draw(r)
		return
	}
	if r.State != p.state {
		p.state = r.State
		fmt.Fprintf(p.w, "resource %s: %s\n", r.Name, r.State)
	}
	present := map[string]bool{}
	for _, rep := range r.Replicas {
		present[rep.Site] = true
		line := replicaLine(rep)
		if p.seen[rep.Site] != line {
			p.seen[rep.Site] = line
			fmt.Fprintf(p.w, "  %-20s %s\n", rep.Site, line)
		}
	}
	for _, site := range slices.Sorted(maps.Keys(p.seen)) {
		if !present[site] {
			fmt.Fprintf(p.w, "  %-20s removed\n", site)
			delete(p.seen, site)
		}
	}
}

// draw rewrites the block of lines the last drawing wrote: the resource, then one line per site.
func (p *progress) draw(r client.Resource) {
	lines := []string{fmt.Sprintf("resource %s: %s, generation %d, %d/%d Ready", r.Name, r.State, r.Generation, r.ReadyReplicas(), len(r.Replicas))}
	for _, rep := range r.Replicas {
		lines = append(lines, fmt.Sprintf("  %-20s %s", rep.Site, replicaLine(rep)))
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dF\x1b[J", p.drawn) // to the start of the block, and clear it
	}
	for _, l := range lines {
		if p.width > 0 && len(l) >= p.width {
			l = l[:p.width-1] // a wrapped line would throw the count of lines off
		}
		b.WriteString(l + "\n")
	}
	p.drawn = len(lines)
	fmt.Fprint(p.w, b.String())
}

// gone says the resource no longer exists.
func (p *progress) gone() {
	if p.tty {
		p.draw(client.Resource{Resource: cheops.Resource{Name: p.name, Generation: p.last.Generation}, State: cheops.ResourceDeleting})
		return
	}
	for _, site := range slices.Sorted(maps.Keys(p.seen)) {
		fmt.Fprintf(p.w, "  %-20s removed\n", site)
	}
	clear(p.seen)
}

// end writes the summary: how many replicas are Ready at the resource's generation.
func (p *progress) end() {
	r := p.last
	if r.ID == "" {
		return
	}
	fmt.Fprintf(p.w, "resource %s: %s, %d/%d replicas Ready at generation %d\n", r.Name, r.State, r.ReadyReplicas(), len(r.Replicas), r.Generation)
}
