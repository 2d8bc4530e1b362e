package workflows

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// A resource on more sites than CheopsSites can hold (Temporal refuses a value over 2 KiB, and
// terminates the workflow that tries) publishes no site list; a resource on fewer publishes all.
func TestSearchSitesFitTemporalsLimit(t *testing.T) {
	for _, n := range []int{3, 1000} {
		env := newEnv(t)
		sites := siteNames(n)
		env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
			cheops.Plan{Exists: true, Name: "web", Generation: 1, MaxParallel: 20, Sites: sites, Apply: sites}, nil).Once()
		env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
		env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil)
		onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
			return activities.SiteOutcome{Site: site, Generation: 1}
		})
		var published []string
		env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
			published, _ = args.Get(0).(temporal.SearchAttributes).GetKeywordList(SearchSites)
		}).Return(nil)
		env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		switch {
		case n == 3 && !slices.Equal(published, sites):
			t.Errorf("3 sites: CheopsSites = %v, want all of them", published)
		case n == 1000 && len(published) != 0:
			t.Errorf("1,000 sites: CheopsSites holds %d sites, want none: they cannot all fit", len(published))
		}
	}
	if got := searchSites(siteNames(150)); len(got) != 150 {
		t.Errorf("150 sites of 9 letters: %d published, want all (they fit in %d bytes)", len(got), searchSitesLimit)
	}
}
