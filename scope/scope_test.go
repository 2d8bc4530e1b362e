package scope

import (
	"errors"
	"slices"
	"testing"

	"github.com/cheops-io/cheops"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"paris", "paris"},
		{"paris & berlin", "paris & berlin"},
		{"paris|berlin|lyon", "paris | berlin | lyon"},
		{"(paris | lyon) & region=de", "(paris | lyon) & region=de"},
		{"paris & berlin | lyon", "paris & berlin | lyon"},
		{"paris & (berlin | lyon)", "paris & (berlin | lyon)"},
		{"((paris))", "paris"},
		{"tier!=lab & example.com/zone==a", "tier!=lab & example.com/zone=a"},
		{"region=", "region="},
	} {
		x, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := x.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseErrorsSayWhereAndWhat(t *testing.T) {
	for _, tc := range []struct {
		in       string
		pos      int
		expected string
	}{
		{"", 0, `a site name, a label selector such as region=eu, or "("`},
		{"paris &", 7, `a site name, a label selector such as region=eu, or "("`},
		{"(paris | lyon", 13, `")"`},
		{"paris berlin", 6, `"&", "|" or the end`},
		{"paris )", 6, `"&", "|" or the end`},
		{"Paris", 0, "a site name (lowercase letters, digits and '-', at most 63) or a label selector"},
		{"paris & region=a=b", 15, "a label value"},
		{"paris # x", 6, `"&", "|" or the end`},
		{"a & region!x", 10, `"=", "==" or "!="`},
	} {
		_, err := Parse(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a *SyntaxError", tc.in, err)
			continue
		}
		if se.Pos != tc.pos || se.Expected != tc.expected {
			t.Errorf("Parse(%q): position %d expected %q; want position %d expected %q (%v)", tc.in, se.Pos, se.Expected, tc.pos, tc.expected, err)
		}
	}
}

func sites(health map[string]cheops.SiteHealth, labels map[string]map[string]string) []cheops.Site {
	var out []cheops.Site
	for _, name := range []string{"paris", "berlin", "lyon", "munich"} {
		h := health[name]
		if h == "" {
			h = cheops.SiteReady
		}
		out = append(out, cheops.Site{Name: name, Health: h, Labels: labels[name]})
	}
	return out
}

func TestEvaluate(t *testing.T) {
	labels := map[string]map[string]string{"berlin": {"region": "de"}, "munich": {"region": "de"}, "paris": {"region": "fr"}, "lyon": {"region": "fr"}}
	down := func(names ...string) map[string]cheops.SiteHealth {
		m := map[string]cheops.SiteHealth{}
		for _, n := range names {
			m[n] = cheops.SiteUnreachable
		}
		return m
	}
	held := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	for _, tc := range []struct {
		expr    string
		down    []string
		held    []string
		want    []string
		missing []string
	}{
		{expr: "paris & berlin", want: []string{"berlin", "paris"}},
		{expr: "paris & berlin", down: []string{"paris"}, want: []string{"berlin", "paris"}},
		{expr: "paris | berlin", want: []string{"paris"}},
		{expr: "paris | berlin", down: []string{"paris"}, want: []string{"berlin"}},
		// Failed over to berlin: paris coming back does not move the replica again.
		{expr: "paris | berlin", held: []string{"paris", "berlin"}, want: []string{"berlin"}},
		{expr: "paris | berlin", held: []string{"berlin"}, want: []string{"berlin"}},
		// Nothing healthy: the first alternative, whose replica waits for its site.
		{expr: "paris | berlin", down: []string{"paris", "berlin"}, want: []string{"paris"}},
		{expr: "(paris | lyon) & region=de", want: []string{"berlin", "munich", "paris"}},
		{expr: "(paris | lyon) & region=de", down: []string{"paris"}, want: []string{"berlin", "lyon", "munich"}},
		{expr: "region!=de", want: []string{"lyon", "paris"}},
		{expr: "rome | paris", want: []string{"paris"}, missing: []string{"rome"}},
		{expr: "region=it | lyon", want: []string{"lyon"}},
		{expr: "paris & berlin | lyon", down: []string{"berlin"}, want: []string{"lyon"}},
	} {
		x, err := Parse(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		p := Evaluate(x, sites(down(tc.down...), labels), held(tc.held...))
		if !slices.Equal(p.Sites, tc.want) || !slices.Equal(p.Missing, tc.missing) {
			t.Errorf("%q down %v held %v: got %v missing %v, want %v missing %v", tc.expr, tc.down, tc.held, p.Sites, p.Missing, tc.want, tc.missing)
		}
	}
}

// FuzzParse checks that no input makes the parser panic, and that whatever parses renders to text
// that parses back to the same expression.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"paris", "paris & berlin", "(paris | lyon) & region=de", "a|(b&(c|d))", "tier!=lab", "((", "a=b=c", "é", ")|&"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		x, err := Parse(in)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) returned %T, want *SyntaxError", in, err)
			}
			return
		}
		out := x.String()
		y, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) rendered %q, which does not parse: %v", in, out, err)
		}
		if y.String() != out {
			t.Fatalf("round trip of %q: %q then %q", in, out, y.String())
		}
		Evaluate(x, sites(nil, nil), nil)
	})
}

func TestCheckNamesTheFieldAtFault(t *testing.T) {
	sites := []cheops.Site{{Name: "a", Driver: cheops.DriverKubernetes}, {Name: "os", Driver: cheops.DriverOpenStack}}
	for _, tc := range []struct {
		sc    cheops.Scope
		field string
	}{
		{cheops.Scope{}, "scope"},
		{cheops.Scope{Sites: []string{"a"}, Selector: "x=y"}, "scope"},
		{cheops.Scope{Selector: "x==="}, "scope.selector"},
		{cheops.Scope{Expression: "a &"}, "scope.expression"},
		{cheops.Scope{Expression: "a | zz"}, "scope.expression"},
		{cheops.Scope{Expression: "a | os"}, "scope.expression"},
		{cheops.Scope{Sites: []string{"a", "Not_A_Label"}}, "scope.sites[1]"},
		{cheops.Scope{Sites: []string{"a", "zz"}}, "scope.sites"},
		{cheops.Scope{Sites: []string{"os"}}, "scope.sites"},
		{cheops.Scope{Sites: []string{"a"}}, ""},
		{cheops.Scope{Expression: "a & region=eu"}, ""},
	} {
		err := Check(tc.sc, sites, cheops.DriverKubernetes)
		var fe *cheops.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v, want no error", tc.sc, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%+v: %v, want an error on %s", tc.sc, err, tc.field)
		}
	}
}

func TestResolveSelectsOnlySitesOfTheDriver(t *testing.T) {
	sites := []cheops.Site{
		{Name: "b", Driver: cheops.DriverKubernetes, Labels: map[string]string{"region": "eu"}},
		{Name: "a", Driver: cheops.DriverKubernetes, Labels: map[string]string{"region": "eu"}},
		{Name: "os", Driver: cheops.DriverOpenStack, Labels: map[string]string{"region": "eu"}},
	}
	for _, sc := range []cheops.Scope{{Selector: "region=eu"}, {Expression: "region=eu"}, {Sites: []string{"b", "a", "os"}}} {
		p, err := Resolve(sc, sites, cheops.DriverKubernetes, nil)
		if err != nil || !slices.Equal(p.Sites, []string{"a", "b"}) {
			t.Errorf("%+v: %+v, %v; want sites a, b", sc, p, err)
		}
	}
	if _, err := Resolve(cheops.Scope{Selector: "x==="}, sites, cheops.DriverKubernetes, nil); err == nil {
		t.Error("a bad selector resolved")
	}
}

func TestReachCoversEveryAlternative(t *testing.T) {
	sites := []cheops.Site{
		{Name: "paris", Driver: cheops.DriverKubernetes, Labels: map[string]string{"region": "eu"}},
		{Name: "berlin", Driver: cheops.DriverKubernetes, Labels: map[string]string{"region": "eu"}},
		{Name: "ny", Driver: cheops.DriverKubernetes, Labels: map[string]string{"region": "us"}},
		{Name: "os", Driver: cheops.DriverOpenStack, Labels: map[string]string{"region": "us"}},
	}
	for _, c := range []struct {
		sc   cheops.Scope
		want []string
	}{
		{cheops.Scope{Expression: "paris | ny"}, []string{"ny", "paris"}},
		{cheops.Scope{Expression: "(paris | berlin) & region=us"}, []string{"berlin", "ny", "paris"}},
		{cheops.Scope{Expression: "region!=eu"}, []string{"ny"}},
		{cheops.Scope{Selector: "region=eu"}, []string{"berlin", "paris"}},
		{cheops.Scope{Sites: []string{"ny"}}, []string{"ny"}},
	} {
		if got := Reach(c.sc, sites, cheops.DriverKubernetes); !slices.Equal(got, c.want) {
			t.Errorf("Reach(%+v) = %v, want %v", c.sc, got, c.want)
		}
	}
	bound := cheops.Resource{Within: "region=eu"}
	if got := Within(bound, sites); len(got) != 2 || got[0].Name != "paris" || got[1].Name != "berlin" {
		t.Errorf("Within(region=eu) = %v", got)
	}
}
