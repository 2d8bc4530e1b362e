package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// errContinueAsNew is the error of a site whose removal, retried without limit, was cut short
// because the history grew long: the run continues as new, and the next one removes it.
var errContinueAsNew = errors.New("the history is long: the removal goes on in the next run")

// removeInWaves removes replicas in waves of at most waveSize sites, one DeleteWave activity per
// wave, each removing parallel sites at once. Each site is retried as retry would retry its own
// DeleteReplica activity (see inWaves). It returns each site's last failure, if any.
func (r *resourceRun) removeInWaves(ctx workflow.Context, sites []string, orphan bool, parallel int, retry *temporal.RetryPolicy) map[string]error {
	failures := r.inWaves(ctx, sites, retry, time.Time{}, func(wave []string, _ int) []waveOutcome {
		var out []waveOutcome
		for _, o := range r.deleteWave(ctx, wave, orphan, parallel) {
			out = append(out, waveOutcome{o.Site, siteFailure{class: o.Class, message: o.Message}})
		}
		return out
	})
	errs := map[string]error{}
	for site, f := range failures {
		if f.class == classContinueAsNew {
			errs[site] = errContinueAsNew
		} else {
			errs[site] = temporal.NewApplicationError(f.message, string(f.class))
		}
	}
	return errs
}

// deleteWave runs one DeleteWave and returns its outcomes. A wave that fails as a whole (its worker
// kept dying, the store could not be read) counts as a transient failure of each of its sites.
func (r *resourceRun) deleteWave(ctx workflow.Context, sites []string, orphan bool, parallel int) []activities.DeleteOutcome {
	var out activities.DeleteWaveOutput
	err := workflow.ExecuteActivity(waveOptions(ctx, len(sites), parallel, 0), a.DeleteWave, activities.DeleteWaveInput{
		ResourceID: r.status.ResourceID, Sites: sites, Orphan: orphan, MaxParallel: max(parallel, 1)}).Get(ctx, &out)
	if err == nil {
		return out.Sites
	}
	outcomes := make([]activities.DeleteOutcome, len(sites))
	for i, site := range sites {
		outcomes[i] = activities.DeleteOutcome{Site: site, Class: cheops.Transient, Message: rootMessage(err)}
	}
	return outcomes
}
