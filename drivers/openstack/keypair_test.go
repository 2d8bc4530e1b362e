package openstack

import (
	"testing"
	"time"
)

// A keypair the replica did not record is its own only when an earlier attempt may have made it
// (since is set) and nova made it since then, give or take the clock skew and nova's seconds.
func TestKeypairMine(t *testing.T) {
	since := time.Date(2026, 11, 26, 15, 0, 10, 500_000_000, time.UTC)
	for _, c := range []struct {
		since   time.Time
		created string
		mine    bool
	}{
		{time.Time{}, "2026-11-26T15:00:20.000000", false}, // no earlier attempt: someone else's
		{since, "2026-11-26T15:00:11.000000", true},        // made after the attempt began
		{since, "2026-11-26T15:00:10.000000", true},        // in the same second (nova truncates)
		{since, "2026-11-26T15:00:09", true},               // within the clock skew
		{since, "2026-11-26T15:00:08.999999", false},       // before: made by someone else
		{since, "2026-11-26T14:00:00Z", false},
		{since, "", false}, // no creation time says nothing
	} {
		if got := keypairMine(&keypair{CreatedAt: c.created}, c.since); got != c.mine {
			t.Errorf("since %v, created %q: mine = %t, want %t", c.since, c.created, got, c.mine)
		}
	}
}
