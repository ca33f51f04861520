package postgrescdc

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestDecodeValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		oid  uint32
		text string
		want string
	}{
		{"int2", pgtype.Int2OID, "-12", `-12`},
		{"int4", pgtype.Int4OID, "42", `42`},
		{"int8 beyond 2^53", pgtype.Int8OID, "9007199254740993", `9007199254740993`},
		{"float8", pgtype.Float8OID, "1.5e+30", `1.5e+30`},
		{"float8 NaN", pgtype.Float8OID, "NaN", `"NaN"`},
		{"float4 -Infinity", pgtype.Float4OID, "-Infinity", `"-Infinity"`},
		{"bool true", pgtype.BoolOID, "t", `true`},
		{"bool false", pgtype.BoolOID, "f", `false`},
		{"numeric keeps its digits", pgtype.NumericOID, "12345678901234567890.000000001", `"12345678901234567890.000000001"`},
		{"numeric NaN", pgtype.NumericOID, "NaN", `"NaN"`},
		{"jsonb", pgtype.JSONBOID, `{"a": [1, {"b": null}]}`, `{"a": [1, {"b": null}]}`},
		{"json scalar", pgtype.JSONOID, `"x"`, `"x"`},
		{"text escapes", pgtype.TextOID, "a\"b\\c\nd\x01é</>", `"a\"b\\c\nd\u0001é</>"`},
		{"text invalid utf-8", pgtype.TextOID, "a\xffb", `"a\ufffdb"`},
		{"uuid", pgtype.UUIDOID, "0195f3b4-0000-7000-8000-000000000001", `"0195f3b4-0000-7000-8000-000000000001"`},
		{"date", pgtype.DateOID, "2026-01-02", `"2026-01-02"`},
		{"timestamp", pgtype.TimestampOID, "2026-01-02 03:04:05.123", `"2026-01-02 03:04:05.123"`},
		{"timestamptz to UTC", pgtype.TimestamptzOID, "2026-01-02 03:04:05.5+02", `"2026-01-02T01:04:05.5Z"`},
		{"timestamptz infinity", pgtype.TimestamptzOID, "infinity", `"infinity"`},
		{"bytea base64", pgtype.ByteaOID, `\x0102ff`, `"AQL/"`},
		{"int4 array", pgtype.Int4ArrayOID, "{1,2,NULL}", `[1,2,null]`},
		{"text array", pgtype.TextArrayOID, `{a,"b c"}`, `["a","b c"]`},
		{"unknown type (enum)", 987654, "happy", `"happy"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(newDecoder().appendValue(nil, tc.oid, []byte(tc.text)))
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("%s is not valid JSON", got)
			}
		})
	}
}
