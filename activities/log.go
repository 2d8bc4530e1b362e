package activities

import (
	"context"
	"log/slog"

	"github.com/cheops-io/cheops"
)

// siteLine is one site's outcome of a wave, as logWave logs it.
type siteLine struct {
	site    string
	class   cheops.ErrorClass
	message string
}

// logWave logs what a wave did: one line for the wave (INFO), and one per site, each carrying the
// resource, the generation and the site. A site that converged is a DEBUG line; one that failed
// transiently or cannot be reached is INFO, since it is retried (a wait is not an error); one that
// rejected the generation is WARN, since only a new generation or an operator's retry helps.
// Messages are the drivers' own words, which never quote a credential.
func (a *Activities) logWave(ctx context.Context, wave, resourceID string, generation int64, attempt int, sites []siteLine) {
	if a.Log == nil {
		return
	}
	failed := 0
	for _, s := range sites {
		level, msg := slog.LevelDebug, "site done"
		switch s.class {
		case "":
		case cheops.Permanent:
			level, msg = slog.LevelWarn, "site rejected"
		default:
			level, msg = slog.LevelInfo, "site not done yet; retried"
		}
		if s.class != "" {
			failed++
		}
		if a.Log.Enabled(ctx, level) {
			a.Log.Log(ctx, level, msg, "wave", wave, "resource", resourceID, "generation", generation, "site", s.site,
				"attempt", attempt, "class", string(s.class), "message", s.message)
		}
	}
	a.Log.Info("wave done", "wave", wave, "resource", resourceID, "generation", generation, "attempt", attempt,
		"sites", len(sites), "failed", failed)
}
