package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// validUnicode reports whether every string of data, a well-formed JSON document, is valid
// Unicode: UTF-8 bytes, and escapes that never leave half of a surrogate pair alone. Go's decoder
// quietly replaces such a string with U+FFFD, but a raw manifest would keep it and be stored and
// served as JSON that other parsers refuse. When a string is not, it returns the path of the
// deepest member that holds it ("manifest.data.k", "overrides[0].patch"), or "body".
func validUnicode(data []byte) (field string, ok bool) {
	type frame struct {
		object    bool
		expectKey bool
		key       string
		index     int
	}
	var stack []*frame
	path := func() string {
		var b bytes.Buffer
		for _, f := range stack {
			if !f.object {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
				continue
			}
			if f.expectKey { // the key itself is at fault: name its object
				break
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
		if b.Len() == 0 {
			return "body"
		}
		return b.String()
	}
	// next moves the innermost container past the value just read.
	next := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.object {
			top.expectKey = true
		} else {
			top.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var prev int64
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", true // the end; data was decoded once already, so not a syntax error
		}
		raw := data[prev:dec.InputOffset()]
		prev = dec.InputOffset()
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{object: true, expectKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				next()
			}
		case string:
			if !validJSONString(raw) {
				return path(), false
			}
			if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].expectKey {
				stack[len(stack)-1].key, stack[len(stack)-1].expectKey = t, false
				continue
			}
			next()
		default:
			next()
		}
	}
}

// validJSONString checks the last quoted string of raw, as written in the document.
func validJSONString(raw []byte) bool {
	start := bytes.IndexByte(raw, '"')
	if start < 0 || len(raw) < start+2 {
		return true
	}
	s := raw[start+1 : len(raw)-1]
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == 'u':
			r := hex4(s[i+2:])
			i += 6
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return false // a low surrogate with no high one before it
			case r >= 0xD800 && r <= 0xDBFF:
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if lo := hex4(s[i+2:]); lo >= 0xDC00 && lo <= 0xDFFF {
						i += 6
						continue
					}
				}
				return false // a high surrogate with no low one after it
			}
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return false
			}
			i += size
		}
	}
	return true
}

// hex4 is the value of the four hex digits a \u escape starts s with, or -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	v, err := strconv.ParseUint(string(s[:4]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(v)
}
