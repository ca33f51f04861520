package postgrescdc

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vrsky/vrsky/internal/jsonenc"
)

// decoder turns PostgreSQL's text representation of a column into JSON,
// by the column's type OID. It is not safe for concurrent use (the pgx
// type map caches per OID).
type decoder struct {
	types *pgtype.Map
}

func newDecoder() *decoder { return &decoder{types: pgtype.NewMap()} }

// appendValue appends the JSON form of text, a value of type oid in
// PostgreSQL's text format (see the package comment for the mapping).
func (d *decoder) appendValue(dst []byte, oid uint32, text []byte) []byte {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		if isInteger(text) {
			return append(dst, text...)
		}
	case pgtype.Float4OID, pgtype.Float8OID:
		if _, err := strconv.ParseFloat(string(text), 64); err == nil && isNumber(text) {
			return append(dst, text...)
		}
		return jsonenc.AppendString(dst, text) // NaN, Infinity, -Infinity
	case pgtype.BoolOID:
		if len(text) == 1 && text[0] == 't' {
			return append(dst, "true"...)
		}
		if len(text) == 1 && text[0] == 'f' {
			return append(dst, "false"...)
		}
	case pgtype.JSONOID, pgtype.JSONBOID:
		if json.Valid(text) {
			return append(dst, text...)
		}
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.NumericOID,
		pgtype.UUIDOID, pgtype.DateOID, pgtype.TimestampOID, pgtype.TimeOID, pgtype.IntervalOID:
		return jsonenc.AppendString(dst, text)
	case pgtype.TimestamptzOID:
		// PostgreSQL's text form depends on the session's DateStyle and
		// TimeZone; RFC 3339 in UTC does not.
		var ts pgtype.Timestamptz
		if err := d.types.Scan(oid, pgtype.TextFormatCode, text, &ts); err == nil && ts.Valid && ts.InfinityModifier == pgtype.Finite {
			return jsonenc.AppendString(dst, ts.Time.UTC().AppendFormat(nil, time.RFC3339Nano))
		}
		return jsonenc.AppendString(dst, text)
	}
	if t, ok := d.types.TypeForOID(oid); ok {
		if v, err := t.Codec.DecodeValue(d.types, oid, pgtype.TextFormatCode, text); err == nil {
			if b, err := json.Marshal(v); err == nil {
				return append(dst, b...)
			}
		}
	}
	return jsonenc.AppendString(dst, text)
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isNumber: a float text that is also a JSON number (no "NaN", no "+1",
// no ".5").
func isNumber(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	return len(b) > 0 && b[0] >= '0' && b[0] <= '9' && (len(b) == 1 || b[0] != '0' || b[1] == '.' || b[1] == 'e' || b[1] == 'E')
}
