package activities

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/cheops-io/cheops"
)

// A compensation wave brings each site back to the committed generation as CompensateReplica
// would: an untouched site keeps its object and only its record goes back; a site that took the new
// generation is applied the committed one again; a site the committed generation did not have
// loses the replica the new generation made. Running the wave again changes nothing.
func TestCompensateWaveBringsEachSiteBack(t *testing.T) {
	ctx := context.Background()
	s, d, a, env := waveFixture(t, "kept", "restored", "added")
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"kept", "restored"}, MaxParallel: 2, Attempt: 1})
	if _, err := env.ExecuteActivity(a.CommitGeneration, CommitInput{ResourceID: "r1", Generation: 1, Sites: []string{"kept", "restored"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateResource(ctx, "r1", func(r *cheops.Resource) (*cheops.Event, error) {
		r.Generation, r.Manifest = 2, json.RawMessage(`{"data":{"v":"2"}}`)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 2, Sites: []string{"restored", "added"}, MaxParallel: 2, Attempt: 1})
	d.applied = map[string]int{}

	in := CompensateWaveInput{ResourceID: "r1", Generation: 2, Sites: []string{"kept", "restored", "added"}, Untouched: []string{"kept"}, MaxParallel: 2, Attempt: 1}
	for run := 1; run <= 2; run++ {
		v, err := env.ExecuteActivity(a.CompensateWave, in)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		var out CompensateWaveOutput
		if err := v.Get(&out); err != nil {
			t.Fatal(err)
		}
		for i, o := range out.Sites {
			if o.Site != in.Sites[i] || o.Class != "" {
				t.Fatalf("run %d: outcome %d = %+v, want %s brought back", run, i, o, in.Sites[i])
			}
		}
		kept, err := s.GetReplica(ctx, "r1", "kept")
		if err != nil || kept.State != cheops.ReplicaReady || kept.ObservedGeneration != 1 || kept.Message != "rollback of generation 2 to generation 1" {
			t.Fatalf("run %d: kept = %+v, %v; want Ready at generation 1 with the rollback's message", run, kept, err)
		}
		restored, err := s.GetReplica(ctx, "r1", "restored")
		if err != nil || restored.State != cheops.ReplicaReady || restored.ObservedGeneration != 1 {
			t.Fatalf("run %d: restored = %+v, %v; want Ready at generation 1", run, restored, err)
		}
		if _, err := s.GetReplica(ctx, "r1", "added"); err == nil {
			t.Fatalf("run %d: the replica generation 2 added is still recorded", run)
		}
		// The first run applies generation 1 again on the site that took generation 2, and only
		// there; the second applies nothing.
		if want := map[int]int{1: 1, 2: 0}[run]; d.applied["restored"] != want || d.applied["kept"] != 0 || d.applied["added"] != 0 {
			t.Fatalf("run %d: applied %v; want restored %d times, the others never", run, d.applied, want)
		}
		d.applied = map[string]int{}
	}
	evs, err := s.Events(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	rolledBack := map[string]int{}
	for _, ev := range evs {
		if ev.Type == cheops.EventRolledBack {
			rolledBack[ev.Site]++
		}
	}
	if rolledBack["kept"] != 1 || rolledBack["restored"] != 1 || rolledBack["added"] != 1 {
		t.Fatalf("RolledBack events per site = %v, want one each", rolledBack)
	}
}
