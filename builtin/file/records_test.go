package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" backslash \\ nl \n tab \t", "\x00\x1f\x7f", "é ü 漢字 🙂", "bad \xff\xfe utf8", "\u2028<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, enc, err)
		}
		// encoding/json's own round trip is the reference (invalid UTF-8
		// becomes U+FFFD in both).
		ref, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Fatalf("%q round-trips to %q, want %q", s, got, want)
		}
	})
}

// FuzzRecordReaders feeds arbitrary files to the line, JSON-lines and CSV
// readers: no panic, every record is valid JSON where it must be, and the
// offsets only grow and stay within the file.
func FuzzRecordReaders(f *testing.F) {
	for _, s := range []string{"a,b\n1,2\n", "\ufeffa;b\r\n\"x\ny\";2", "{\"a\":1}\n\n[1]\n", "a,b\n1\n", "\"unterminated", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		check := func(name string, rr recordReader, wantJSON bool) {
			last := int64(-1)
			for range len(data) + 2 {
				rec, err := rr.next()
				if errors.Is(err, io.EOF) {
					return
				}
				var pe *parseError
				if errors.As(err, &pe) {
					if pe.Line < 1 {
						t.Fatalf("%s: parse error on line %d", name, pe.Line)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if wantJSON && !json.Valid(rec) {
					t.Fatalf("%s: record %q is not JSON", name, rec)
				}
				if off := rr.offset(); off < last || off > size {
					t.Fatalf("%s: offset %d after %d, size %d", name, off, last, size)
				} else {
					last = off
				}
			}
			t.Fatalf("%s: more records than bytes", name)
		}
		check("lines", newLineReader(bytes.NewReader(data), 0, 0, 64, false), false)
		check("jsonl", newLineReader(bytes.NewReader(data), 0, 0, 1<<20, true), true)
		keys, end, err := readCSVHeader(bytes.NewReader(data), ';')
		if err == nil {
			check("csv", newCSVReader(bytes.NewReader(data[end:]), keys, end, int64(bytes.Count(data[:end], []byte{'\n'})), ';', 1<<20), true)
		}
	})
}
