package workflows

import (
	"errors"
	"slices"
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
// DeleteReplica activity: only the failed sites go again, after retry's backoff, up to its
// MaximumAttempts (none: until done); a site whose failure is Permanent, or of one of retry's
// NonRetryableErrorTypes, is not tried again. It returns each site's last failure, if any.
func (r *resourceRun) removeInWaves(ctx workflow.Context, sites []string, orphan bool, parallel int, retry *temporal.RetryPolicy) map[string]error {
	wait, coefficient, maxWait := retry.InitialInterval, retry.BackoffCoefficient, retry.MaximumInterval
	if wait <= 0 {
		wait = time.Second
	}
	if coefficient < 1 {
		coefficient = 2
	}
	if maxWait <= 0 {
		maxWait = 100 * wait
	}
	errs := map[string]error{}
	for attempt := 1; len(sites) > 0; attempt++ {
		if attempt > 1 {
			if retry.MaximumAttempts == 0 && r.mustContinueAsNew(ctx) {
				// A site down for days must not grow this run's history past Temporal's limits.
				for _, site := range sites {
					errs[site] = errContinueAsNew
				}
				break
			}
			if err := workflow.Sleep(ctx, wait); err != nil {
				break // the run is ending: the sites left keep their failures
			}
			wait = min(time.Duration(float64(wait)*coefficient), maxWait)
		}
		var again []string
		for wave := range slices.Chunk(sites, waveSize) {
			for _, o := range r.deleteWave(ctx, wave, orphan, parallel) {
				if o.Class == "" {
					delete(errs, o.Site)
					continue
				}
				errs[o.Site] = temporal.NewApplicationError(o.Message, string(o.Class))
				stop := o.Class == cheops.Permanent || slices.Contains(retry.NonRetryableErrorTypes, string(o.Class)) ||
					(retry.MaximumAttempts > 0 && attempt >= int(retry.MaximumAttempts))
				if !stop {
					again = append(again, o.Site)
				}
			}
		}
		sites = again
	}
	return errs
}

// deleteWave runs one DeleteWave and returns its outcomes. A wave that fails as a whole (its worker
// kept dying, the store could not be read) counts as a transient failure of each of its sites.
func (r *resourceRun) deleteWave(ctx workflow.Context, sites []string, orphan bool, parallel int) []activities.DeleteOutcome {
	parallel = max(parallel, 1)
	waveCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// Each site has activities.SiteTimeout within the wave; the heartbeat notices a lost worker.
		StartToCloseTimeout: time.Minute + activities.SiteTimeout*time.Duration((len(sites)+parallel-1)/parallel),
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: applyBackoff, BackoffCoefficient: 2, MaximumInterval: applyBackoffMax, MaximumAttempts: 3,
		},
	})
	var out activities.DeleteWaveOutput
	err := workflow.ExecuteActivity(waveCtx, a.DeleteWave, activities.DeleteWaveInput{
		ResourceID: r.status.ResourceID, Sites: sites, Orphan: orphan, MaxParallel: parallel}).Get(ctx, &out)
	if err == nil {
		return out.Sites
	}
	outcomes := make([]activities.DeleteOutcome, len(sites))
	for i, site := range sites {
		outcomes[i] = activities.DeleteOutcome{Site: site, Class: cheops.Transient, Message: rootMessage(err)}
	}
	return outcomes
}
