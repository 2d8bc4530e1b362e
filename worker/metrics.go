package worker

import (
	"context"
	"slices"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
	"github.com/cheops-io/cheops/metrics"
)

// failureCounter counts, from outside the activities so they stay free of metrics code, failed
// activity attempts and the sites that failed inside a wave, by error class, and how long after
// its declaration each site a wave applied was Ready.
type failureCounter struct {
	interceptor.WorkerInterceptorBase
	m *metrics.Metrics
}

func (f *failureCounter) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &activityFailures{m: f.m}
	a.Next = next
	return a
}

type activityFailures struct {
	interceptor.ActivityInboundInterceptorBase
	m *metrics.Metrics
}

func (a *activityFailures) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	out, err := a.Next.ExecuteActivity(ctx, in)
	name := activity.GetInfo(ctx).ActivityType.Name
	if err != nil {
		a.m.ActivityFailed(name, err)
		return out, err
	}
	for _, class := range failedSites(out) {
		a.m.SiteFailed(name, class)
	}
	var driver cheops.DriverName
	var sites []activities.SiteOutcome
	switch w := out.(type) {
	case activities.WaveOutput:
		driver, sites = w.Driver, w.Sites
	case activities.ReadinessOutput:
		driver, sites = w.Driver, w.Sites
	}
	for _, s := range sites {
		if s.SinceDeclared > 0 {
			a.m.ReplicaReady(string(driver), s.SinceDeclared)
		}
	}
	return out, err
}

// failedSites returns the class of each site that failed in a wave's output; nothing for any other
// activity's result.
func failedSites(out any) []cheops.ErrorClass {
	var classes []cheops.ErrorClass
	switch o := out.(type) {
	case activities.WaveOutput:
		for _, s := range o.Sites {
			classes = append(classes, s.Class)
		}
	case activities.DeleteWaveOutput:
		for _, s := range o.Sites {
			classes = append(classes, s.Class)
		}
	case activities.ReadinessOutput:
		for _, s := range o.Sites {
			classes = append(classes, s.Class)
		}
	case activities.CompensateWaveOutput:
		for _, s := range o.Sites {
			classes = append(classes, s.Class)
		}
	}
	return slices.DeleteFunc(classes, func(c cheops.ErrorClass) bool { return c == "" })
}
