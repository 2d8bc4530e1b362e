package activities

import (
	"fmt"
	"testing"

	"github.com/cheops-io/cheops"
)

// A rollout orders the sites by its groups (canary first, then region=eu, then the rest) and splits
// each group into waves of its size, a percentage being of the sites in scope.
func TestRolloutWaves(t *testing.T) {
	labels := map[string]map[string]string{
		"a": {"canary": "true"}, "b": {"region": "eu"}, "c": {"region": "eu"}, "d": {"region": "us"},
		"e": {"region": "eu", "canary": "true"}, "f": {},
	}
	apply := []string{"a", "b", "c", "d", "e", "f"}
	for _, c := range []struct {
		ro   cheops.Rollout
		want string
	}{
		{cheops.Rollout{MaxUnavailable: cheops.WaveSize{N: 2}}, "[[a b] [c d] [e f]]"},
		{cheops.Rollout{MaxUnavailable: cheops.WaveSize{N: 50, Percent: true}}, "[[a b c] [d e f]]"},
		{cheops.Rollout{Groups: []string{"canary=true"}}, "[[a e] [b c d f]]"},
		{cheops.Rollout{Groups: []string{"canary=true", "region=eu"}, MaxUnavailable: cheops.WaveSize{N: 1}}, "[[a] [e] [b] [c] [d] [f]]"},
		{cheops.Rollout{}, "[[a b c d e f]]"},
	} {
		if got := fmt.Sprint(rolloutWaves(c.ro, apply, len(apply), labels)); got != c.want {
			t.Errorf("%+v: waves %s; want %s", c.ro, got, c.want)
		}
	}
}
