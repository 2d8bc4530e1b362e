package workflows

import (
	"encoding/json"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
)

// Search attributes every resource workflow sets, so runs can be found in the Web UI and with
// `temporal workflow list --query 'CheopsState="Degraded"'`. They must be registered on the namespace
// (the dev server does it; see SearchAttributes).
var (
	SearchResourceName = temporal.NewSearchAttributeKeyKeyword("CheopsResourceName")
	SearchState        = temporal.NewSearchAttributeKeyKeyword("CheopsState")
	SearchConsistency  = temporal.NewSearchAttributeKeyKeyword("CheopsConsistency")
	// SearchSites lists the resource's sites, unless they are too many to fit (see searchSites).
	SearchSites = temporal.NewSearchAttributeKeyKeywordList("CheopsSites")
)

// SearchAttributes lists the search attributes above with their types, for registration.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	SearchResourceName.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchState.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchConsistency.GetName():  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SearchSites.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}

// searchSitesLimit is the most bytes CheopsSites may take, encoded: Temporal refuses a search
// attribute value over 2 KiB by default (limit.searchAttributes.sizeOfValue), and a workflow task
// that sets one fails and its workflow is terminated.
const searchSitesLimit = 2000

// searchSites is the value of CheopsSites: the resource's sites, or none when they do not fit in
// searchSitesLimit (about 250 sites). Never a part of them: a list cut short would make a filter on
// a site miss the resource without saying so.
func searchSites(sites []string) []string {
	b, _ := json.Marshal(sites)
	if sites == nil || len(b) > searchSitesLimit {
		return []string{}
	}
	return slices.Clone(sites)
}

// searchStateOf is the workflow's summary of the resource for CheopsState.
func (r *resourceRun) searchStateOf() string {
	switch {
	case r.status.Paused:
		return "Paused"
	case r.status.RolledBack:
		return string(cheops.ResourceRolledBack)
	case len(r.status.Failed) > 0 || len(r.status.Parked) > 0 || len(r.status.Rejected) > 0:
		return string(cheops.ResourceDegraded)
	case len(r.status.Waiting) > 0:
		// Sites wait for their dependencies: on their way, not failed. (Only runs at the
		// "dependencies" version have such sites.)
		return string(cheops.ResourceProgressing)
	default:
		return string(cheops.ResourceReady)
	}
}

// publish upserts the search attributes when they changed since the last round; each upsert is an
// event in the history, so an unchanged round writes none.
func (r *resourceRun) publish(ctx workflow.Context, plan cheops.Plan) error {
	key := strings.Join(append([]string{r.searchStateOf(), plan.Name, string(plan.Consistency)}, plan.Sites...), "\x00")
	if key == r.searchState {
		return nil
	}
	r.searchState = key
	sites := searchSites(plan.Sites)
	return workflow.UpsertTypedSearchAttributes(ctx,
		SearchResourceName.ValueSet(plan.Name),
		SearchState.ValueSet(r.searchStateOf()),
		SearchConsistency.ValueSet(string(plan.Consistency)),
		SearchSites.ValueSet(sites),
	)
}
