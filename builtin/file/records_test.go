package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/vrsky/vrsky/runtime"
)

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

// collect reads every record, the offset after each, and the final error.
func collect(t *testing.T, rr recordReader) (recs []string, offs []int64, last error) {
	t.Helper()
	for {
		rec, err := rr.next()
		if errors.Is(err, io.EOF) {
			return recs, offs, nil
		}
		if err != nil {
			return recs, offs, err
		}
		recs = append(recs, string(rec))
		offs = append(offs, rr.offset())
	}
}

// TestResumeFromEveryRecord opens each file at every checkpoint a run can
// leave (after each record) and checks that the rest is exactly what a
// run from the start reads after it, broken line number included.
func TestResumeFromEveryRecord(t *testing.T) {
	for _, tc := range []struct{ name, mode, content, wantErr string }{
		{"csv", ModeCSV, "\ufeffid,note\n1,\"multi\nline\"\n2,x\r\n\n3,\"a,b\"\n4\n5,y\n", "line 7: wrong number of fields: the header has 2, this row 1"},
		{"jsonl", ModeJSONL, "{\"a\":1}\n\n  [2]  \r\n\"3\"\n{bad\n", "line 5: not valid JSON: invalid character 'b' looking for beginning of object key string"},
		{"lines", ModeLines, "\ufeffone\r\ntwo\n\nfour", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/f"
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c, err := parseSourceConfig(json.RawMessage(`{"dir":"/x","mode":"` + tc.mode + `"}`))
			if err != nil {
				t.Fatal(err)
			}
			s := newSource(c, runtime.Env{})
			size := int64(len(tc.content))
			rr, err := s.openRecords(f, size, checkpoint{})
			if err != nil {
				t.Fatal(err)
			}
			all, offs, last := collect(t, rr)
			if fmt.Sprint(last) != fmt.Sprint(tc.wantErr) && !(last == nil && tc.wantErr == "") {
				t.Fatalf("error %v, want %s", last, tc.wantErr)
			}
			if len(all) < 3 {
				t.Fatalf("only %d records: %q", len(all), all)
			}
			for k := 1; k <= len(all); k++ {
				rr, err := s.openRecords(f, size, checkpoint{Records: int64(k), Offset: offs[k-1]})
				if err != nil {
					t.Fatal(err)
				}
				rest, _, err := collect(t, rr)
				if fmt.Sprintf("%q %v", rest, err) != fmt.Sprintf("%q %v", all[k:], last) {
					t.Fatalf("resumed after record %d: %q %v, want %q %v", k, rest, err, all[k:], last)
				}
			}
		})
	}
}

// TestCheckpointStopsBeforeABrokenRecord: the last chunk before a broken
// record ends at the offset after the last good one, so a checkpoint taken
// there (and a restart before the file moved) never skips the broken line.
func TestCheckpointStopsBeforeABrokenRecord(t *testing.T) {
	const content = "{\"a\":1}\n{\"a\":2}\n{bad\n{\"a\":4}\n"
	for _, per := range []int{1, 10} {
		c, err := parseSourceConfig(json.RawMessage(fmt.Sprintf(`{"dir":"/x","mode":"jsonl","records_per_message":%d}`, per)))
		if err != nil {
			t.Fatal(err)
		}
		s := newSource(c, runtime.Env{})
		out := make(chan chunk, 4)
		s.produce(t.Context(), newLineReader(bytes.NewReader([]byte(content)), 0, 0, 1<<20, true), "f", "id", 0, out)
		var got []chunk
		for c := range out {
			got = append(got, c)
		}
		if len(got) != 1 || got[0].records != 2 || got[0].end != int64(len("{\"a\":1}\n{\"a\":2}\n")) {
			t.Fatalf("per %d: chunks %+v, want one of 2 records ending before the broken line", per, got)
		}
		var pe *parseError
		if !errors.As(got[0].err, &pe) || pe.Line != 3 {
			t.Fatalf("per %d: error %v, want a parse error on line 3", per, got[0].err)
		}
	}
}
