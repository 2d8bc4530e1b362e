package client

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/cheops-io/cheops"
)

// ResourcePatch is the body of PatchResource, a JSON merge patch (RFC 7386) of the resource's
// declaration. A nil field is left out of the patch and keeps its stored value.
type ResourcePatch struct {
	// Manifest is merged into the stored manifest: keys it leaves out are kept and a null removes
	// one. ManifestPatch builds the patch that turns a manifest into another.
	Manifest json.RawMessage
	// Scope replaces the scope. The patch names the two forms Scope does not use as null, so that a
	// scope given by sites replaces one given by a selector instead of adding to it.
	Scope *cheops.Scope
	// Overrides replaces the list of overrides (a merge patch replaces arrays whole).
	Overrides *[]cheops.Override
	// DependsOn replaces the list of resources depended on; an empty list removes them all.
	DependsOn *[]string
	// Policy changes only the policy fields it sets.
	Policy *PolicyPatch
}

// PolicyPatch changes single fields of a resource's policy; a nil field keeps its value.
type PolicyPatch struct {
	Consistency  *cheops.Consistency     `json:"consistency,omitempty"`
	MaxParallel  *int                    `json:"maxParallel,omitempty"`
	Timeout      *cheops.Duration        `json:"timeout,omitempty"`
	RetryInitial *cheops.Duration        `json:"retryInitial,omitempty"`
	RetryMax     *cheops.Duration        `json:"retryMax,omitempty"`
	Readiness    *cheops.ReadinessPolicy `json:"readiness,omitempty"`
	ReadyTimeout *cheops.Duration        `json:"readyTimeout,omitempty"`
	Conflict     *cheops.ConflictPolicy  `json:"conflict,omitempty"`
	Adopted      *cheops.AdoptedDeletion `json:"adopted,omitempty"`
	// Rollout changes only the rollout fields it sets (a merge patch merges objects).
	Rollout *cheops.Rollout     `json:"rollout,omitempty"`
	Drift   *cheops.DriftPolicy `json:"drift,omitempty"`
}

// Empty reports whether the patch changes nothing.
func (p ResourcePatch) Empty() bool {
	return len(p.Manifest) == 0 && p.Scope == nil && p.Overrides == nil && p.DependsOn == nil && (p.Policy == nil || *p.Policy == PolicyPatch{})
}

// MarshalJSON writes the merge patch.
func (p ResourcePatch) MarshalJSON() ([]byte, error) {
	doc := map[string]any{}
	if len(p.Manifest) > 0 {
		doc["manifest"] = p.Manifest
	}
	if p.Scope != nil {
		// nil (not an empty list) for no sites, so that the key is written as null.
		var sites any
		if len(p.Scope.Sites) > 0 {
			sites = p.Scope.Sites
		}
		doc["scope"] = map[string]any{"sites": sites, "selector": nullIfEmpty(p.Scope.Selector),
			"expression": nullIfEmpty(p.Scope.Expression)}
	}
	if p.Overrides != nil {
		ov := *p.Overrides
		if ov == nil {
			ov = []cheops.Override{}
		}
		doc["overrides"] = ov
	}
	if p.DependsOn != nil {
		// null, not an empty list, for none: the member is then removed.
		var deps any
		if len(*p.DependsOn) > 0 {
			deps = *p.DependsOn
		}
		doc["dependsOn"] = deps
	}
	if p.Policy != nil && *p.Policy != (PolicyPatch{}) {
		doc["policy"] = p.Policy
	}
	return json.Marshal(doc)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ManifestPatch returns the merge patch (RFC 7386) that turns the manifest current into desired:
// desired itself, with null for each key of current that desired no longer has, at every depth
// where both are objects. Applied to current it gives desired exactly — except that a null inside
// desired removes its key, as merge patches cannot express a null value.
func ManifestPatch(current, desired json.RawMessage) (json.RawMessage, error) {
	cur, err := decodeNumbers(current)
	if err != nil {
		return nil, fmt.Errorf("current manifest: %w", err)
	}
	want, err := decodeNumbers(desired)
	if err != nil {
		return nil, fmt.Errorf("desired manifest: %w", err)
	}
	return json.Marshal(mergeDiff(cur, want))
}

func decodeNumbers(doc json.RawMessage) (any, error) {
	if len(doc) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber() // keep integers beyond 2^53 as they are
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func mergeDiff(cur, want any) any {
	c, cok := cur.(map[string]any)
	w, wok := want.(map[string]any)
	if !cok || !wok {
		return want
	}
	out := make(map[string]any, len(w))
	for k, v := range w {
		out[k] = mergeDiff(c[k], v)
	}
	for k := range c {
		if _, ok := w[k]; !ok {
			out[k] = nil
		}
	}
	return out
}
