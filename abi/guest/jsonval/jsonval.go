// Package jsonval converts JSON to and from plain Go values (map[string]any,
// []any, string, float64, int, bool, nil) without reflection, for guests:
// encoding/json's reflection costs ~20× more under Wasm than natively.
// Parsing uses valyala/fastjson; encoding appends bytes.
package jsonval

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Decoder parses JSON into Go values. It reuses its parser's memory: keep
// one per instance, not per message. Not safe for concurrent use (a guest
// instance is single-threaded).
type Decoder struct{ p fastjson.Parser }

// Decode parses data into a Go value: objects become map[string]any, arrays
// []any, numbers int when integral and in range (else float64). Of
// duplicate keys, the first wins (as fastjson's Get finds it).
func (d *Decoder) Decode(data []byte) (any, error) {
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return nil, err
	}
	return Value(v), nil
}

// Value converts a parsed fastjson value.
func Value(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, e *fastjson.Value) {
			if _, dup := m[string(k)]; !dup { // duplicate keys: the first wins
				m[string(k)] = Value(e)
			}
		})
		return m
	case fastjson.TypeArray:
		a, _ := v.Array()
		s := make([]any, len(a))
		for i, e := range a {
			s[i] = Value(e)
		}
		return s
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b)
	case fastjson.TypeNumber:
		if i, f, isInt := Number(v); !isInt {
			return f
		} else {
			return i
		}
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}

// Number returns a number value as an int when it is integral and fits,
// else as a float64 ("1.0" is the int 1: every output writes them alike).
// It does not allocate for ordinary numbers (fastjson's Int64 builds an
// error for every non-integer, which is costly in Wasm).
func Number(v *fastjson.Value) (i int, f float64, isInt bool) {
	f, _ = v.Float64()
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f), 0, true
	}
	if math.Abs(f) >= 1<<53 && !math.IsInf(f, 0) {
		if n, err := v.Int64(); err == nil && n >= math.MinInt && n <= math.MaxInt {
			return int(n), 0, true // exact, beyond float precision
		}
	}
	return 0, f, false
}

// ErrUnsupported is returned by Append for a value of another type.
var ErrUnsupported = errors.New("jsonval: unsupported type")

// Append appends the JSON encoding of v to dst. Object keys are sorted, so
// output is deterministic.
func Append(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case float64:
		return AppendFloat(dst, x), nil
	case *big.Int:
		return x.Append(dst, 10), nil
	case string:
		return AppendString(dst, x), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = Append(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = Append(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("%w: %T", ErrUnsupported, v)
}

// AppendFloat appends f as JSON: integral values without a fraction, NaN
// as null, infinities as the largest finite float (as jq does).
func AppendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "null"...)
	case math.IsInf(f, 1):
		f = math.MaxFloat64
	case math.IsInf(f, -1):
		f = -math.MaxFloat64
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e17 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func AppendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(dst, s[start:]...), '"')
}
