package call

import (
	"encoding/json"
	"math"
	"strconv"
)

// A fast path for the JSON this package reads on every call: the
// envelope, the call.requested and call.responded payloads. A message was
// scanned by encoding/json three times on arrival (envelope, payload, the
// typed payload) and each raw value copied; the scanner below reads the
// common form in one pass and hands out sub-slices of the frame. It never
// decides anything on its own: whatever it does not take as plain (a
// syntax error, a key it does not know or sees twice, a string with
// escapes, a number out of range) sends the caller to encoding/json,
// whose answer, and error message, stand. So what it accepts is what
// encoding/json accepts, with the same result.

// scanner reads a JSON text that is valid UTF-8.
type scanner struct {
	b []byte
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// value skips one value, checking its syntax, and returns its bytes.
func (s *scanner) value(depth int) ([]byte, bool) {
	s.skipSpace()
	if s.i >= len(s.b) || depth > 10000 {
		return nil, false
	}
	start := s.i
	var ok bool
	switch c := s.b[s.i]; {
	case c == '{':
		ok = s.object(depth+1, nil)
	case c == '[':
		ok = s.array(depth + 1)
	case c == '"':
		_, ok = s.str()
	case c == '-' || c >= '0' && c <= '9':
		ok = s.number()
	case c == 't':
		ok = s.literal("true")
	case c == 'f':
		ok = s.literal("false")
	case c == 'n':
		ok = s.literal("null")
	}
	return s.b[start:s.i], ok
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// str skips a string and reports whether it holds an escape.
func (s *scanner) str() (escaped, ok bool) {
	s.i++ // the quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, true
		case c < 0x20:
			return false, false
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.b)-s.i < 5 {
					return false, false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false, false
					}
				}
				s.i += 5
			default:
				return false, false
			}
		default:
			s.i++
		}
	}
	return false, false
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *scanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case !s.digits():
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

func (s *scanner) array(depth int) bool {
	s.i++ // [
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		if _, ok := s.value(depth); !ok {
			return false
		}
		if end, ok := s.separator(']'); !ok || end {
			return ok
		}
	}
}

// separator reads what follows an array element or an object member: a
// comma (more follow) or closer (the end); ok is false for anything else.
func (s *scanner) separator(closer byte) (end, ok bool) {
	s.skipSpace()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return false, true
	case closer:
		s.i++
		return true, true
	}
	return false, false
}

// object skips an object. field, if not nil, is called with each key
// (raw, without its quotes; escaped if it holds an escape) and value;
// false from it stops the scan, a failure.
func (s *scanner) object(depth int, field func(key []byte, escaped bool, val []byte) bool) bool {
	s.i++ // {
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		ks := s.i
		esc, ok := s.str()
		if !ok {
			return false
		}
		key := s.b[ks+1 : s.i-1]
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		val, ok := s.value(depth)
		if !ok {
			return false
		}
		if field != nil && !field(key, esc, val) {
			return false
		}
		if end, ok := s.separator('}'); !ok || end {
			return ok
		}
	}
}

// plainObject scans b, a JSON object and nothing after it, handing each
// member to field. It fails on a syntax error, a key with an escape, or
// when field refuses a member.
func plainObject(b []byte, field func(key string, val []byte) bool) bool {
	s := scanner{b: b}
	s.skipSpace()
	if s.i >= len(b) || b[s.i] != '{' {
		return false
	}
	if !s.object(1, func(key []byte, escaped bool, val []byte) bool {
		return !escaped && field(string(key), val)
	}) {
		return false
	}
	s.skipSpace()
	return s.i == len(b)
}

// plainString returns the value of a JSON string token without escapes.
func plainString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' {
			return "", false
		}
	}
	return string(v[1 : len(v)-1]), true
}

// fastEnvelope decodes the envelope's plain form: the three keys once
// each, string type and id without escapes, and nothing else. ok false
// leaves the frame to encoding/json.
func fastEnvelope(body []byte) (env Envelope, ok bool) {
	var seen [3]bool
	ok = plainObject(body, func(key string, val []byte) bool {
		var good bool
		switch key {
		case "type":
			if !seen[0] {
				seen[0] = true
				env.Type, good = plainType(val)
			}
		case "id":
			if !seen[1] {
				seen[1] = true
				env.ID, good = plainString(val)
			}
		case "payload":
			if !seen[2] {
				seen[2], good = true, true
				env.Payload = val
			}
		}
		return good
	})
	return env, ok && seen[0] && seen[1] && seen[2]
}

// plainType is plainString for an envelope's type: a known type is the
// package's constant, not a string allocated per frame.
func plainType(v []byte) (string, bool) {
	if len(v) >= 2 && v[0] == '"' {
		switch string(v[1 : len(v)-1]) {
		case TypeRequested:
			return TypeRequested, true
		case TypeResponded:
			return TypeResponded, true
		case TypeCompleted:
			return TypeCompleted, true
		case TypeAborted:
			return TypeAborted, true
		case TypeError:
			return TypeError, true
		case TypeCredit:
			return TypeCredit, true
		case TypeShared:
			return TypeShared, true
		}
	}
	return plainString(v)
}

// fastRequest decodes a call.requested payload's plain form; see
// fastEnvelope. forwarded_for goes to encoding/json on its own.
func fastRequest(b []byte) (p RequestPayload, ok bool) {
	var seen [5]bool
	once := func(i int) bool {
		if seen[i] {
			return false
		}
		seen[i] = true
		return true
	}
	ok = plainObject(b, func(key string, val []byte) bool {
		switch key {
		case "operationId":
			if !once(0) {
				return false
			}
			var good bool
			p.OperationID, good = plainString(val)
			return good
		case "input":
			if !once(1) {
				return false
			}
			p.Input = val
			return true
		case "auth_token":
			if !once(2) {
				return false
			}
			var good bool
			p.AuthToken, good = plainString(val)
			return good
		case "window":
			if !once(3) {
				return false
			}
			n, err := strconv.ParseUint(string(val), 10, 64)
			p.Window = n
			return err == nil
		case "forwarded_for":
			if !once(4) {
				return false
			}
			if f, good := fastForwarded(val); good {
				p.ForwardedFor = f
				return true
			}
			return json.Unmarshal(val, &p.ForwardedFor) == nil
		}
		return false
	})
	return p, ok
}

// fastForwarded decodes forwarded_for's plain form, as a head writes it
// (encodeRequest): "id" and "scopes" once each, strings without escapes.
// A worker reads it with every routed call; ok false leaves it to
// encoding/json.
func fastForwarded(b []byte) (f *Forwarded, ok bool) {
	var seen [2]bool
	fw := Forwarded{}
	ok = plainObject(b, func(key string, val []byte) bool {
		var good bool
		switch key {
		case "id":
			if seen[0] {
				return false
			}
			seen[0] = true
			fw.ID, good = plainString(val)
		case "scopes":
			if seen[1] {
				return false
			}
			seen[1] = true
			fw.Scopes, good = plainStrings(val)
		}
		return good
	})
	if !ok {
		return nil, false
	}
	return &fw, true
}

// plainStrings returns the strings of a JSON array of strings without
// escapes; an empty array gives an empty slice, as encoding/json does.
func plainStrings(v []byte) ([]string, bool) {
	s := scanner{b: v}
	if len(v) < 2 || v[0] != '[' {
		return nil, false
	}
	s.i++
	out := []string{}
	s.skipSpace()
	if s.i < len(v) && v[s.i] == ']' {
		return out, s.i == len(v)-1
	}
	for {
		s.skipSpace()
		start := s.i
		if s.i >= len(v) || v[s.i] != '"' {
			return nil, false
		}
		if esc, ok := s.str(); !ok || esc {
			return nil, false
		}
		out = append(out, string(v[start+1:s.i-1]))
		end, ok := s.separator(']')
		if !ok {
			return nil, false
		}
		if end {
			return out, s.i == len(v)
		}
	}
}

// fastOutput returns the output of a call.responded payload's plain form.
func fastOutput(b []byte) (json.RawMessage, bool) {
	var out json.RawMessage
	seen := false
	ok := plainObject(b, func(key string, val []byte) bool {
		if key != "output" || seen {
			return false
		}
		seen, out = true, val
		return true
	})
	return out, ok && seen
}

// A compiled input schema: the common subset the schemas derived from Go
// types use (type, properties, required, additionalProperties, items),
// checked on the raw input without decoding it into Go values. Like the
// decoders above, it only ever says "valid": an input it cannot vouch for
// (it fails, or holds a duplicate key, a key with an escape, a number it
// cannot classify) goes to the full validator, whose verdict and error
// message stand. A schema with any other keyword is not compiled.

// JSON kinds, as bits of vnode.types.
const (
	kObject = 1 << iota
	kArray
	kString
	kNumber
	kInteger
	kBoolean
	kNull
)

var kinds = map[string]uint8{"object": kObject, "array": kArray, "string": kString, "number": kNumber, "integer": kInteger, "boolean": kBoolean, "null": kNull}

// vnode is one compiled schema.
type vnode struct {
	types    uint8 // allowed kinds; 0: any
	props    map[string]*vnode
	required []string
	closed   bool   // additionalProperties: false
	addl     *vnode // additionalProperties as a schema; nil: anything
	items    *vnode // nil: anything
}

// compileSchema compiles a schema in its JSON form, or returns nil when it
// uses anything outside the subset.
func compileSchema(raw json.RawMessage) *vnode {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return compileNode(v, 0)
}

func compileNode(v any, depth int) *vnode {
	if depth > 32 {
		return nil
	}
	if b, ok := v.(bool); ok {
		if b {
			return &vnode{}
		}
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	n := &vnode{}
	for k, x := range m {
		switch k {
		case "description", "title":
		case "type":
			switch t := x.(type) {
			case string:
				if kinds[t] == 0 {
					return nil
				}
				n.types |= kinds[t]
			case []any:
				for _, e := range t {
					s, _ := e.(string)
					if kinds[s] == 0 {
						return nil
					}
					n.types |= kinds[s]
				}
				if n.types == 0 {
					return nil
				}
			default:
				return nil
			}
		case "properties":
			ps, ok := x.(map[string]any)
			if !ok {
				return nil
			}
			n.props = make(map[string]*vnode, len(ps))
			for name, p := range ps {
				if n.props[name] = compileNode(p, depth+1); n.props[name] == nil {
					return nil
				}
			}
		case "required":
			rs, ok := x.([]any)
			if !ok {
				return nil
			}
			for _, r := range rs {
				s, ok := r.(string)
				if !ok {
					return nil
				}
				n.required = append(n.required, s)
			}
		case "additionalProperties":
			if b, ok := x.(bool); ok {
				n.closed = !b
				continue
			}
			if n.addl = compileNode(x, depth+1); n.addl == nil {
				return nil
			}
		case "items":
			if n.items = compileNode(x, depth+1); n.items == nil {
				return nil
			}
		default:
			return nil
		}
	}
	return n
}

// validInput reports whether raw, one JSON value and nothing after it,
// is surely valid against n.
func (n *vnode) validInput(raw []byte) bool {
	s := scanner{b: raw}
	v, ok := s.value(0)
	if !ok {
		return false
	}
	s.skipSpace()
	return s.i == len(raw) && n.valid(v)
}

// valid reports whether v, a value of valid syntax, is surely valid.
func (n *vnode) valid(v []byte) bool {
	var kind uint8
	switch v[0] {
	case '{':
		kind = kObject
	case '[':
		kind = kArray
	case '"':
		kind = kString
	case 't', 'f':
		kind = kBoolean
	case 'n':
		kind = kNull
	default:
		var ok bool
		if kind, ok = numberKind(v); !ok {
			return false
		}
	}
	if n.types != 0 && n.types&kind == 0 && !(kind == kInteger && n.types&kNumber != 0) {
		return false
	}
	switch {
	case kind == kObject && (n.props != nil || n.required != nil || n.closed || n.addl != nil):
		return n.validObject(v)
	case kind == kArray && n.items != nil:
		s := scanner{b: v}
		s.i++ // [
		for {
			s.skipSpace()
			if s.b[s.i] == ']' {
				return true
			}
			e, ok := s.value(0)
			if !ok || !n.items.valid(e) {
				return false
			}
			s.skipSpace()
			if s.b[s.i] == ',' {
				s.i++
			}
		}
	}
	return true
}

func (n *vnode) validObject(v []byte) bool {
	var seen []string
	s := scanner{b: v}
	ok := s.object(1, func(key []byte, escaped bool, val []byte) bool {
		if escaped {
			return false
		}
		k := string(key)
		for _, o := range seen {
			if o == k {
				return false // a duplicate: the last one counts for the validator
			}
		}
		seen = append(seen, k)
		if p := n.props[k]; p != nil {
			return p.valid(val)
		}
		switch {
		case n.closed:
			return false
		case n.addl != nil:
			return n.addl.valid(val)
		}
		return true
	})
	if !ok {
		return false
	}
	for _, r := range n.required {
		found := false
		for _, o := range seen {
			if o == r {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// numberKind classifies a number token as the validator does: integer
// when its value has no fraction.
func numberKind(v []byte) (uint8, bool) {
	plain := len(v) <= 18
	for _, c := range v {
		if c == '.' || c == 'e' || c == 'E' {
			plain = false
			break
		}
	}
	if plain {
		return kInteger, true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, false
	}
	if _, frac := math.Modf(f); frac == 0 {
		return kInteger, true
	}
	return kNumber, true
}

// validJSON reports whether b is one JSON value, spaces around it allowed.
func validJSON(b []byte) bool {
	s := scanner{b: b}
	if _, ok := s.value(0); !ok {
		return false
	}
	s.skipSpace()
	return s.i == len(b)
}

// encodeResponded returns the frame of a call.responded with output out,
// written directly when out is valid JSON (json.Marshal would scan and
// compact it again).
func encodeResponded(id string, out json.RawMessage) ([]byte, error) {
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	if validJSON(out) {
		return encodeFrame(TypeResponded, id, `{"output":`, out, "}")
	}
	return EncodeEnvelope(TypeResponded, id, RespondedPayload{Output: out})
}

// encodeRequest returns the frame of a call.requested, written directly
// when its input is valid JSON; see encodeResponded.
func encodeRequest(id string, p RequestPayload) ([]byte, error) {
	if len(p.Input) > 0 && !validJSON(p.Input) {
		return EncodeEnvelope(TypeRequested, id, p)
	}
	b := make([]byte, 0, 64+len(p.OperationID)+len(p.Input)+len(p.AuthToken))
	b = append(b, `{"operationId":`...)
	b = appendString(b, p.OperationID)
	if len(p.Input) > 0 {
		b = append(b, `,"input":`...)
		b = append(b, p.Input...)
	}
	if p.AuthToken != "" {
		b = append(b, `,"auth_token":`...)
		b = appendString(b, p.AuthToken)
	}
	if f := p.ForwardedFor; f != nil {
		// As json.Marshal writes it, without its reflection: a head
		// forwards every routed call with it.
		b = append(b, `,"forwarded_for":{"id":`...)
		b = appendString(b, f.ID)
		if len(f.Scopes) > 0 {
			b = append(b, `,"scopes":[`...)
			for i, sc := range f.Scopes {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, sc)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if p.Window > 0 {
		b = append(b, `,"window":`...)
		b = strconv.AppendUint(b, p.Window, 10)
	}
	b = append(b, '}')
	return encodeFrame(TypeRequested, id, "", b, "")
}
