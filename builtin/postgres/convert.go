package postgres

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/valyala/fastjson"
)

// kind is a column type the sink converts JSON values to.
type kind uint8

const (
	kUnsupported kind = iota
	kInt2
	kInt4
	kInt8
	kFloat4
	kFloat8
	kNumeric
	kBool
	kText
	kDate
	kTimestamp
	kTimestamptz
	kUUID
	kJSON
	kBytea
)

// kindOf maps a (base) type OID to its kind.
func kindOf(oid uint32) kind {
	switch oid {
	case pgtype.Int2OID:
		return kInt2
	case pgtype.Int4OID:
		return kInt4
	case pgtype.Int8OID:
		return kInt8
	case pgtype.Float4OID:
		return kFloat4
	case pgtype.Float8OID:
		return kFloat8
	case pgtype.NumericOID:
		return kNumeric
	case pgtype.BoolOID:
		return kBool
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		return kText
	case pgtype.DateOID:
		return kDate
	case pgtype.TimestampOID:
		return kTimestamp
	case pgtype.TimestamptzOID:
		return kTimestamptz
	case pgtype.UUIDOID:
		return kUUID
	case pgtype.JSONOID, pgtype.JSONBOID:
		return kJSON
	case pgtype.ByteaOID:
		return kBytea
	}
	return kUnsupported
}

// supportedTypes is listed in errors about unsupported columns.
const supportedTypes = "smallint, integer, bigint, real, double precision, numeric, boolean, text, varchar, char, " +
	"date, timestamp, timestamptz, uuid, json, jsonb, bytea (and domains over them)"

// convError says what a value is, for a message naming the field and
// the column type: `field "qty": cannot store "abc" in column qty (integer)`.
type convError string

func (e convError) Error() string { return string(e) }

// convertJSON converts one JSON value to what pgx encodes for kind k. JSON
// null is SQL NULL (nil); so is an empty string for any non-text kind,
// since CSV writes an empty cell for a missing value.
func convertJSON(v *fastjson.Value, k kind) (any, error) {
	switch v.Type() {
	case fastjson.TypeNull:
		return nil, nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		if k == kJSON {
			return jsonFromString(b, v), nil
		}
		return convertString(string(b), k)
	case fastjson.TypeNumber:
		raw := string(v.MarshalTo(nil))
		switch k {
		case kInt2, kInt4, kInt8, kFloat4, kFloat8, kNumeric, kText:
			return convertString(raw, k)
		case kBool:
			switch raw {
			case "1":
				return true, nil
			case "0":
				return false, nil
			}
		case kJSON:
			return []byte(raw), nil
		}
		return nil, convError("the number " + raw)
	case fastjson.TypeTrue, fastjson.TypeFalse:
		b := v.Type() == fastjson.TypeTrue
		switch k {
		case kBool:
			return b, nil
		case kText:
			return strconv.FormatBool(b), nil
		case kJSON:
			return v.MarshalTo(nil), nil
		}
		return nil, convError("the boolean " + strconv.FormatBool(b))
	default: // object or array
		if k == kJSON {
			return v.MarshalTo(nil), nil
		}
		if k == kText {
			return string(v.MarshalTo(nil)), nil
		}
		return nil, convError("a JSON " + v.Type().String())
	}
}

// jsonFromString stores a string that holds a JSON object or array (a CSV
// cell) as that document, any other string as a JSON string.
func jsonFromString(b []byte, v *fastjson.Value) []byte {
	t := strings.TrimSpace(string(b))
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') && fastjson.Validate(t) == nil {
		return []byte(t)
	}
	return v.MarshalTo(nil)
}

// convertString converts text (a CSV cell, a message id, a JSON number's
// literal) to what pgx encodes for kind k.
func convertString(s string, k kind) (any, error) {
	if k == kText {
		return s, nil
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, nil
	}
	fail := func() (any, error) { return nil, convError(strconv.Quote(s)) }
	switch k {
	case kInt2, kInt4, kInt8:
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			// 42.0 and 1e3 are integers too.
			f, ferr := strconv.ParseFloat(t, 64)
			if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
				return fail()
			}
			n = int64(f)
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		switch k {
		case kInt2:
			lo, hi = math.MinInt16, math.MaxInt16
		case kInt4:
			lo, hi = math.MinInt32, math.MaxInt32
		}
		if n < lo || n > hi {
			return nil, convError(t + " (out of range)")
		}
		return n, nil
	case kFloat4, kFloat8:
		bits := 64
		if k == kFloat4 {
			bits = 32
		}
		f, err := strconv.ParseFloat(t, bits)
		if err != nil {
			return fail()
		}
		if k == kFloat4 {
			return float32(f), nil
		}
		return f, nil
	case kNumeric:
		switch strings.ToLower(t) {
		case "nan":
			return pgtype.Numeric{NaN: true, Valid: true}, nil
		case "infinity", "+infinity":
			return pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}, nil
		case "-infinity":
			return pgtype.Numeric{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, nil
		}
		var n pgtype.Numeric
		if !numericText(t) {
			return fail()
		}
		if err := n.ScanScientific(t); err != nil {
			return fail()
		}
		return n, nil
	case kBool:
		switch strings.ToLower(t) {
		case "t", "true", "y", "yes", "on", "1":
			return true, nil
		case "f", "false", "n", "no", "off", "0":
			return false, nil
		}
		return fail()
	case kDate:
		d, ok := parseTime(t, false)
		if !ok {
			return fail()
		}
		return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC), nil
	case kTimestamp, kTimestamptz:
		ts, ok := parseTime(t, k == kTimestamptz)
		if !ok {
			return fail()
		}
		return ts, nil
	case kUUID:
		u, err := uuid.Parse(t)
		if err != nil {
			return fail()
		}
		return [16]byte(u), nil
	case kJSON:
		if (t[0] == '{' || t[0] == '[') && fastjson.Validate(t) == nil {
			return []byte(t), nil
		}
		b, _ := json.Marshal(s) // anything else: a JSON string
		return b, nil
	case kBytea:
		if rest, ok := strings.CutPrefix(t, `\x`); ok {
			b, err := hex.DecodeString(rest)
			if err != nil {
				return fail()
			}
			return b, nil
		}
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return fail()
		}
		return b, nil
	}
	return fail()
}

// numericText accepts a decimal number in plain or scientific notation.
func numericText(s string) bool {
	if s[0] == '+' || s[0] == '-' {
		s = s[1:]
	}
	digits, dot, exp := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && digits > 0 && !exp:
			exp = true
			if i+1 < len(s) && (s[i+1] == '+' || s[i+1] == '-') {
				i++
			}
			if i+1 >= len(s) {
				return false
			}
		default:
			return false
		}
	}
	return digits > 0
}

// Layouts for timestamps, tried in order. Those without a zone are read
// as UTC for timestamptz; a timestamp without time zone keeps the wall
// clock and drops any zone, as PostgreSQL does.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

func parseTime(s string, keepZone bool) (time.Time, bool) {
	layouts := timeLayouts
	if len(s) == len("2006-01-02") {
		layouts = timeLayouts[len(timeLayouts)-1:] // the common date-only cell, without failed attempts
	}
	for _, l := range layouts {
		t, err := time.Parse(l, s)
		if err != nil {
			continue
		}
		if !keepZone {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
		}
		return t, true
	}
	return time.Time{}, false
}
