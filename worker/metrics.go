package worker

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"

	"github.com/cheops-io/cheops/metrics"
)

// failureCounter counts failed activity attempts by error class from outside the activities, so
// they stay free of metrics code.
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
	if err != nil {
		a.m.ActivityFailed(activity.GetInfo(ctx).ActivityType.Name, err)
	}
	return out, err
}
