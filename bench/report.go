package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

type results struct {
	Date       string           `json:"date"`
	Machine    string           `json:"machine"`
	Stack      string           `json:"stack"`
	Latency    []latencyResult  `json:"latency"`
	Update     Distribution     `json:"updatePropagation10Sites"`
	Delete     Distribution     `json:"deletePropagation10Sites"`
	Throughput throughputResult `json:"throughput"`
	Cost       costResult       `json:"cost"`
}

func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s, %s", runtime.NumCPU(), cpu, runtime.Version())
}

func ratio(a, b Duration) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f×", float64(a)/float64(b))
}

func (r results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cheops benchmark, %s, %s, on the %s stack\n\n", r.Date, r.Machine, r.Stack)
	b.WriteString("Latency: POST → every replica Ready as the API reports it (polled every 5 ms), against direct server-side apply of the same object to the same sites in parallel from one process.\n\n")
	b.WriteString("| sites | samples | cheops p50 | p95 | p99 | max | direct p50 | p95 | p99 | max | ratio p50 | ratio p99 | history events / generation | etcd txns / replica |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range r.Latency {
		c, d := l.Cheops, l.Direct
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %.2f |\n", l.Sites, c.N,
			c.P50, c.P95, c.P99, c.Max, d.P50, d.P95, d.P99, d.Max, ratio(c.P50, d.P50), ratio(c.P99, d.P99),
			l.Writes.HistoryEventsPerGeneration, l.Writes.EtcdTxnsPerReplica)
	}
	b.WriteString("\nHistory events: the median over up to 20 of the resources measured, each created once and settled (one generation). etcd transactions: the rise of etcd's revision over the samples, divided by the replicas made; it counts every write, the API's and the worker's.\n")
	b.WriteString("\n| propagation (10 sites) | samples | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| update: PUT → all at new generation | %d | %s | %s | %s | %s |\n", r.Update.N, r.Update.P50, r.Update.P95, r.Update.P99, r.Update.Max)
	fmt.Fprintf(&b, "| delete: DELETE → resource gone | %d | %s | %s | %s | %s |\n", r.Delete.N, r.Delete.P50, r.Delete.P95, r.Delete.P99, r.Delete.Max)
	t := r.Throughput
	fmt.Fprintf(&b, "\nThroughput: %d clients creating resources of %d sites for %s: %d resources, **%.0f replicas Ready per second** in the window (%d replicas), drained %.1f s after; API POST p50 %s, p99 %s; %d errors; %d history events per generation, %.2f etcd transactions per replica.\n",
		t.Clients, t.SitesPerResource, t.Duration, t.Resources, t.ReplicasPerSecond, t.ReplicasInWindow, t.DrainSeconds, t.API.P50, t.API.P99, t.Errors,
		t.Writes.HistoryEventsPerGeneration, t.Writes.EtcdTxnsPerReplica)
	var names []string
	for k := range r.Cost.PeakRSSMiB {
		names = append(names, k)
	}
	sort.Strings(names)
	b.WriteString("\nCost: peak RSS")
	for _, k := range names {
		fmt.Fprintf(&b, " %s %.0f MiB;", k, r.Cost.PeakRSSMiB[k])
	}
	fmt.Fprintf(&b, " %.2f ms of CPU per replica (every process of the stack, throughput run).\n", t.CPUSecondsPerRep*1000)
	return b.String()
}

func (r results) write(dir string) error {
	md := r.markdown()
	fmt.Print(md)
	stamp := time.Now().UTC().Format("20060102-150405")
	if err := os.WriteFile(filepath.Join(dir, "bench-"+stamp+".md"), []byte(md), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-"+stamp+".json"), js, 0o644); err != nil {
		return err
	}
	png := filepath.Join(dir, "bench-"+stamp+".png")
	if err := r.plot(png); err != nil {
		return err
	}
	logf("wrote %s.{md,json,png}", filepath.Join(dir, "bench-"+stamp))
	return nil
}

// plot draws the cumulative distribution of each latency series, cheops solid and direct dashed.
func (r results) plot(path string) error {
	p := plot.New()
	p.Title.Text = "Replication latency: cheops (solid) vs direct apply (dashed)"
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of samples"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	colors := []color.RGBA{{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, {R: 0xff, G: 0x7f, B: 0x0e, A: 255}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 255}, {R: 0xd6, G: 0x27, B: 0x28, A: 255}}
	for i, l := range r.Latency {
		for j, series := range l.raw {
			pts := cdf(series)
			if len(pts) == 0 {
				continue
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			line.Color = colors[i%len(colors)]
			line.Width = vg.Points(1.5)
			name := fmt.Sprintf("%d sites, cheops", l.Sites)
			if j == 1 {
				line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				name = fmt.Sprintf("%d sites, direct", l.Sites)
			}
			p.Add(line)
			p.Legend.Add(name, line)
		}
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(60)
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

func cdf(ds []time.Duration) plotter.XYs {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	pts := make(plotter.XYs, len(s))
	for i, d := range s {
		pts[i].X = max(float64(d)/1e6, 0.01)
		pts[i].Y = float64(i+1) / float64(len(s))
	}
	return pts
}
