// Package scope parses and evaluates Cheops' scope-lang: the expressions that say on which sites a
// resource must live. It knows sites only as names, labels and health, and nothing of etcd or Temporal.
//
// The grammar, lowest precedence first:
//
//	expr   = all { "|" all }         exactly one alternative: the first healthy one
//	all    = term { "&" term }       every term
//	term   = "(" expr ")" | site | selector
//	site   = a DNS label, e.g. paris
//	selector = key ("=" | "==" | "!=") value, e.g. region=de
//
// A selector term stands for every site whose labels match it.
package scope

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Expr is a parsed scope expression.
type Expr interface {
	// String renders the expression in scope-lang; parsing it gives the same expression back.
	String() string
}

// Site names one site.
type Site struct{ Name string }

// Selector matches sites by one label requirement.
type Selector struct {
	Key, Op, Value string
}

// All needs every one of its terms.
type All struct{ Terms []Expr }

// Any needs exactly one of its alternatives: the first healthy one, in order.
type Any struct{ Alternatives []Expr }

func (s Site) String() string     { return s.Name }
func (s Selector) String() string { return s.Key + s.Op + s.Value }
func (a All) String() string      { return join(a.Terms, " & ") }
func (a Any) String() string      { return join(a.Alternatives, " | ") }

func join(xs []Expr, sep string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.String()
		if _, nested := x.(Any); nested {
			parts[i] = "(" + parts[i] + ")"
		} else if _, nested := x.(All); nested && sep == " & " {
			parts[i] = "(" + parts[i] + ")"
		}
	}
	return strings.Join(parts, sep)
}

// SyntaxError is a parse failure: where it happened (a byte offset, from 0) and what was expected.
type SyntaxError struct {
	Pos      int
	Found    string
	Expected string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("at position %d: expected %s, found %s", e.Pos+1, e.Expected, e.Found)
}

// MaxLength bounds an expression, so that a hostile input cannot make the parser recurse deeply.
const MaxLength = 4096

// Parse parses a scope expression.
func Parse(src string) (Expr, error) {
	if len(src) > MaxLength {
		return nil, &SyntaxError{Pos: MaxLength, Found: fmt.Sprintf("%d bytes", len(src)), Expected: fmt.Sprintf("at most %d bytes", MaxLength)}
	}
	if !utf8.ValidString(src) {
		return nil, &SyntaxError{Pos: 0, Found: "invalid UTF-8", Expected: "text"}
	}
	p := &parser{src: src}
	p.next()
	x, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.unexpected(`"&", "|" or the end`)
	}
	return x, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokAnd
	tokOr
	tokLParen
	tokRParen
	tokBad
)

type token struct {
	kind tokKind
	text string
	pos  int
}

type parser struct {
	src string
	off int
	tok token
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '/' || c == '=' || c == '!'
}

func (p *parser) next() {
	for p.off < len(p.src) && (p.src[p.off] == ' ' || p.src[p.off] == '\t' || p.src[p.off] == '\n') {
		p.off++
	}
	start := p.off
	if p.off == len(p.src) {
		p.tok = token{kind: tokEOF, pos: start}
		return
	}
	switch c := p.src[p.off]; {
	case c == '&':
		p.off++
		p.tok = token{kind: tokAnd, text: "&", pos: start}
	case c == '|':
		p.off++
		p.tok = token{kind: tokOr, text: "|", pos: start}
	case c == '(':
		p.off++
		p.tok = token{kind: tokLParen, text: "(", pos: start}
	case c == ')':
		p.off++
		p.tok = token{kind: tokRParen, text: ")", pos: start}
	case isWordByte(c):
		for p.off < len(p.src) && isWordByte(p.src[p.off]) {
			p.off++
		}
		p.tok = token{kind: tokWord, text: p.src[start:p.off], pos: start}
	default:
		r, size := utf8.DecodeRuneInString(p.src[p.off:])
		p.off += size
		p.tok = token{kind: tokBad, text: string(r), pos: start}
	}
}

func (p *parser) unexpected(expected string) error {
	found := fmt.Sprintf("%q", p.tok.text)
	if p.tok.kind == tokEOF {
		found = "the end"
	}
	return &SyntaxError{Pos: p.tok.pos, Found: found, Expected: expected}
}

func (p *parser) expr() (Expr, error) {
	first, err := p.all()
	if err != nil {
		return nil, err
	}
	alts := []Expr{first}
	for p.tok.kind == tokOr {
		p.next()
		x, err := p.all()
		if err != nil {
			return nil, err
		}
		alts = append(alts, x)
	}
	if len(alts) == 1 {
		return first, nil
	}
	return Any{Alternatives: alts}, nil
}

func (p *parser) all() (Expr, error) {
	first, err := p.term()
	if err != nil {
		return nil, err
	}
	terms := []Expr{first}
	for p.tok.kind == tokAnd {
		p.next()
		x, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, x)
	}
	if len(terms) == 1 {
		return first, nil
	}
	return All{Terms: terms}, nil
}

func (p *parser) term() (Expr, error) {
	switch p.tok.kind {
	case tokLParen:
		p.next()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokRParen {
			return nil, p.unexpected(`")"`)
		}
		p.next()
		return x, nil
	case tokWord:
		tok := p.tok
		x, err := word(tok)
		if err != nil {
			return nil, err
		}
		p.next()
		return x, nil
	default:
		return nil, p.unexpected(`a site name, a label selector such as region=eu, or "("`)
	}
}

// word turns a word token into a site name or a selector requirement.
func word(tok token) (Expr, error) {
	w := tok.text
	i := strings.IndexAny(w, "=!")
	if i < 0 {
		if errs := validation.IsDNS1123Label(w); len(errs) > 0 {
			return nil, &SyntaxError{Pos: tok.pos, Found: fmt.Sprintf("%q", w), Expected: "a site name (lowercase letters, digits and '-', at most 63) or a label selector"}
		}
		return Site{Name: w}, nil
	}
	key, rest := w[:i], w[i:]
	var op string
	switch {
	case strings.HasPrefix(rest, "!="):
		op = "!="
	case strings.HasPrefix(rest, "=="):
		op = "=="
	case strings.HasPrefix(rest, "="):
		op = "="
	default:
		return nil, &SyntaxError{Pos: tok.pos + i, Found: fmt.Sprintf("%q", rest), Expected: `"=", "==" or "!="`}
	}
	value := rest[len(op):]
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return nil, &SyntaxError{Pos: tok.pos, Found: fmt.Sprintf("%q", key), Expected: "a label key (" + errs[0] + ")"}
	}
	if strings.ContainsAny(value, "=!") {
		return nil, &SyntaxError{Pos: tok.pos + i + len(op), Found: fmt.Sprintf("%q", value), Expected: "a label value"}
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return nil, &SyntaxError{Pos: tok.pos + i + len(op), Found: fmt.Sprintf("%q", value), Expected: "a label value (" + errs[0] + ")"}
	}
	if op == "==" {
		op = "="
	}
	return Selector{Key: key, Op: op, Value: value}, nil
}
