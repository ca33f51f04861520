package file

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/vrsky/vrsky/internal/jsonenc"
)

// parseError is a record the source cannot read: the file goes to failed/.
type parseError struct {
	Line   int64 // 1-based line of the file where the broken record starts
	Reason string
}

func (e *parseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// recordReader yields a file's records in order.
type recordReader interface {
	// next returns the next record, ready to be a payload (a JSON object
	// for csv, the line for lines and jsonl), valid until the following
	// call; io.EOF at the end; a *parseError for a broken record.
	next() ([]byte, error)
	// offset is the file offset just after the last record returned.
	offset() int64
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// skipBOM drops a UTF-8 byte-order mark at the start of the file.
func skipBOM(br *bufio.Reader, off int64) int64 {
	if off != 0 {
		return off
	}
	if b, _ := br.Peek(3); bytes.Equal(b, bom) {
		_, _ = br.Discard(3)
		return 3
	}
	return off
}

// lineReader reads lines (mode lines) or JSON lines (mode jsonl).
type lineReader struct {
	br    *bufio.Reader
	off   int64 // offset after the last line consumed
	line  int64 // lines consumed
	max   int
	jsonl bool
	buf   []byte
}

// newLineReader reads from r, which starts at file offset off, after
// lines lines.
func newLineReader(r io.Reader, off, lines int64, max int, jsonl bool) *lineReader {
	br := bufio.NewReaderSize(r, 256<<10)
	off = skipBOM(br, off)
	return &lineReader{br: br, off: off, line: lines, max: max, jsonl: jsonl}
}

func (r *lineReader) offset() int64 { return r.off }

func (r *lineReader) next() ([]byte, error) {
	for {
		l, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if !r.jsonl {
			return l, nil
		}
		t := bytes.Trim(l, " \t\r") // JSON's white space (\n is gone)
		if len(t) == 0 {
			continue // blank lines are not records in jsonl
		}
		if !json.Valid(t) {
			return nil, &parseError{Line: r.line, Reason: "not valid JSON: " + jsonErr(t)}
		}
		return t, nil
	}
}

// jsonErr says what is wrong with a line that json.Valid refused.
func jsonErr(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err.Error()
	}
	return "invalid JSON"
}

// readLine returns the next line without its line break; io.EOF once
// nothing is left.
func (r *lineReader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		s, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(r.buf)+len(s) > r.max+2 {
				return nil, &parseError{Line: r.line + 1, Reason: fmt.Sprintf("line longer than max_record_bytes (%d)", r.max)}
			}
			r.buf = append(r.buf, s...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read line %d: %w", r.line+1, err)
		}
		l := s
		if len(r.buf) > 0 {
			r.buf = append(r.buf, s...)
			l = r.buf
		}
		if len(l) == 0 { // EOF
			return nil, io.EOF
		}
		r.off += int64(len(l))
		r.line++
		l = bytes.TrimSuffix(l, []byte{'\n'})
		l = bytes.TrimSuffix(l, []byte{'\r'})
		if len(l) > r.max {
			return nil, &parseError{Line: r.line, Reason: fmt.Sprintf("line longer than max_record_bytes (%d)", r.max)}
		}
		return l, nil
	}
}

// csvReader turns CSV rows into JSON objects keyed by the header row.
type csvReader struct {
	cr    *csv.Reader
	base  int64 // file offset where cr started
	lines int64 // lines before base
	keys  [][]byte
	max   int
	out   []byte
	last  int64 // cr.InputOffset after the last row
}

// readCSVHeader reads the header row at the start of the file.
func readCSVHeader(r io.Reader, delim rune) (keys [][]byte, end int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	base := skipBOM(br, 0)
	cr := newCSV(br, delim)
	h, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, base, io.EOF
	}
	if err != nil {
		return nil, 0, csvErr(err, 0)
	}
	seen := make(map[string]bool, len(h))
	for _, name := range h {
		if seen[name] {
			return nil, 0, &parseError{Line: 1, Reason: fmt.Sprintf("duplicate column %q in the header row", name)}
		}
		seen[name] = true
		keys = append(keys, jsonenc.AppendString(nil, name))
	}
	return keys, base + cr.InputOffset(), nil
}

func newCSV(r io.Reader, delim rune) *csv.Reader {
	cr := csv.NewReader(r)
	cr.Comma = delim
	cr.ReuseRecord = true
	return cr
}

// newCSVReader reads rows from r, which starts at file offset off (just
// after the header row, or a checkpoint), after lines lines.
func newCSVReader(r io.Reader, keys [][]byte, off, lines int64, delim rune, max int) *csvReader {
	cr := newCSV(bufio.NewReaderSize(r, 256<<10), delim)
	cr.FieldsPerRecord = len(keys)
	return &csvReader{cr: cr, base: off, lines: lines, keys: keys, max: max}
}

func (r *csvReader) offset() int64 { return r.base + r.last }

func (r *csvReader) next() ([]byte, error) {
	rec, err := r.cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
			return nil, &parseError{Line: r.lines + int64(pe.StartLine),
				Reason: fmt.Sprintf("wrong number of fields: the header has %d, this row %d", len(r.keys), len(rec))}
		}
		return nil, csvErr(err, r.lines)
	}
	end := r.cr.InputOffset()
	if end-r.last > int64(r.max) {
		line, _ := r.cr.FieldPos(0)
		return nil, &parseError{Line: r.lines + int64(line), Reason: fmt.Sprintf("row longer than max_record_bytes (%d)", r.max)}
	}
	r.last = end
	r.out = appendCSVObject(r.out[:0], r.keys, rec)
	return r.out, nil
}

// csvErr turns a csv.Reader error into a *parseError when it is one.
func csvErr(err error, lines int64) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &parseError{Line: lines + int64(pe.StartLine), Reason: pe.Err.Error()}
	}
	return fmt.Errorf("read csv: %w", err)
}

// appendCSVObject appends {"k1":"v1",...}; keys are JSON strings already.
func appendCSVObject(dst []byte, keys [][]byte, rec []string) []byte {
	dst = append(dst, '{')
	for i, v := range rec {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, keys[i]...)
		dst = append(dst, ':')
		dst = jsonenc.AppendString(dst, v)
	}
	return append(dst, '}')
}
